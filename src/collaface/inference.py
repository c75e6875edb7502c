"""Complete faces in real photos: detect -> crop -> generator -> paste back -> blend.

Shared by ``collaface complete`` (one photo or a folder) and the web demo. For one photo:

1. **Detect** the faces (mediapipe, the annotation extra) with the hole pre-filled, retrying on
   padded and turned copies (:mod:`collaface.face_search`): first on the whole photo only (fast);
   the tiled search for small faces runs when that finds no face or the hole is not inside the
   faces found. ``no_detect`` treats the photo as one face crop (for prepared crops): the crop
   of the face found in it, if any and the hole fits, so that the model sees the face at its
   trained scale; else the whole photo.
2. **Crop** each face whose square crop (the rule of ``data/crop.py``, as ``prepare`` and
   training, unaligned) intersects the hole, grown and shifted within the model's trained
   framing to hold the hole (:mod:`collaface.data.crop_fit`; a part of the hole beyond that,
   up to ``MAX_OUTSIDE_SHARE``, gets a classical fill after the faces), resized to the model's
   side S. A face tilted more
   than ``STRAIGHTEN_BEYOND`` degrees (the training augmentation's rotation range; a tilted head, a
   sideways photo) gets the same square turned upright, and named regions are placed in that
   upright frame.
3. **Generate**: the hole is filled with uniform noise (the paper's z, from a seeded generator,
   so results are repeatable) and the generator predicts the image, parsing and landmarks.
4. **Paste back** into the full-resolution photo: the completion is upsampled (cubic; when a
   model pixel covers ``SMOOTH_FROM_SCALE`` or more photo pixels it is first low-passed by a 3x3
   binomial filter, which removes the generator's one-pixel checkerboard texture that the
   magnification would otherwise turn into visible blocks) and Poisson-blended, as the paper
   does, so that it meets the known pixels without a seam, then
   written **only inside the hole**: every known pixel stays bit-identical. The Poisson solve is
   our own coarse-to-fine SOR (:func:`collaface.blending.harmonic_fill`): ``cv2.seamlessClone`` lets the hole's
   old content leak into the result and clears the mask's border pixels.

Faces are completed largest first; a later face sees the earlier completions as known pixels.
Holes: ``(H, W)`` bool, True = hole. Mask files: white or any non-black grey = hole, black =
known; in a mask with transparency every painted pixel is hole (see :func:`read_mask`).
Coordinates are (x, y) pixels of the upright photo, pixel centres at integer coordinates.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError
from tqdm import tqdm

from collaface.blending import poisson_blend
from collaface.config import ConfigError
from collaface.data import io
from collaface.data.annotate import AnnotatorUnavailable, FaceAnnotator
from collaface.data.crop import CropBox, crop_box_from_landmarks, crop_resize, straightened
from collaface.data.crop_fit import Framing, fitted_box, hole_outline
from collaface.data.labels import LABEL_COLORS, LANDMARK_NAMES
from collaface.data.masks import REGIONS, region_mask
from collaface.data.visualize import contact_sheet, draw_landmarks, legend, overlay_parsing
from collaface.engine import (
    RUNTIMES,
    EngineError,
    generator_input,
    heatmap_peaks,
    load_engine,
    parsing_labels,
    to_uint8_image,
)
from collaface.face_search import classical_fill, search_faces
from collaface.timing import THREADS
from collaface.training.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "weights"
LOSSY_MASK_THRESHOLD = 127    # JPEG mask pixels brighter than this are hole (others: any non-zero)
LOSSY_FORMATS = ("JPEG", "MPO")
MASK_RULE = ("white or any non-black grey marks the hole, black the known pixels; in a mask with transparency, "
             "every painted (non-transparent) pixel is hole")
INVERT_HINT = "If black marks the hole in your mask, pass --invert-mask."
INVERTED_SHARE = 0.5          # a refused mask covering more of the photo (or of the surroundings) may be inverted
MAX_HOLE_FRACTION = 0.5       # of a face crop; beyond it too little face is left to complete from
MAX_OUTSIDE_SHARE = 0.25      # of a hole: the most that may lie beyond the faces' crops (filled classically)
BLEND_MODES = ("poisson", "none")
BLEND_MARGIN = 4              # known pixels around the hole's box that the Poisson solve sees
STRAIGHTEN_BEYOND = 10.0      # face roll (degrees) beyond which the crop turns upright: the training rotation range
SMOOTH_FROM_SCALE = 2.0       # photo pixels per model pixel from which the fill is low-passed before upsampling
BINOMIAL_3 = np.array([[0.25, 0.5, 0.25]], np.float32)  # zero gain at the model's Nyquist frequency
WHOLE_PHOTO_TILE = 1 << 30    # FaceAnnotator min_tile that turns off its tiled small-face search
PANEL_SIZE = 256              # side of each face tile in the parsing picture
SIDE_BY_SIDE_HEIGHT = 512     # max height of each panel of the side-by-side picture
HOLE_COLOUR = (255, 0, 160)   # the hole in the side-by-side picture: opaque, no trace of what was there
SIDE_BY_SIDE_CAPTIONS = ("input", "hole", "result")
CAPTION_HEIGHT = 24           # pixels of the caption band above each side-by-side panel
JPEG_QUALITY = 95             # for JPEG/WebP outputs whose source gives no quantisation tables
FAILURE_COLUMNS = ("file", "reason")
MASK_NAME = re.compile(r"^(?P<photo>.+)_mask(?P<suffix>.*)$")  # LaMa: photo.png <-> photo_mask001.png
PROGRESS_AFTER_S = 1.0        # a single run says what it is doing once it takes longer than this

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NO_FACE = 0, 1, 2, 3


class CompletionError(ValueError):
    """Bad input for completion (mask, region, face index, model); the message says what and why."""


class NoFaceError(CompletionError):
    """No face was found where one is needed."""


class ModelNotFoundError(FileNotFoundError):
    """No ``--model`` was given and the shipped weights are not installed."""


# --------------------------------------------------------------------------- model


def default_model_dir() -> Path:
    """The shipped weights (``collaface/weights/``: generator.safetensors + config.json).

    Raises ModelNotFoundError naming the expected files when they are not installed.
    """
    missing = [name for name in (WEIGHTS_FILE, CONFIG_FILE) if not (DEFAULT_MODEL_DIR / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"no --model given and the default weights are not installed: expected "
            f"{', '.join(str(DEFAULT_MODEL_DIR / name) for name in missing)}; pass --model with an "
            "exported model folder (collaface export), a training run folder or a ckpt-*.pt file")
    return DEFAULT_MODEL_DIR


# --------------------------------------------------------------------------- masks


def read_mask(path: str | os.PathLike, shape: tuple[int, int], resize: bool = False,
              invert: bool = False) -> np.ndarray:
    """Read a hole mask for a photo of ``shape`` (H, W) -> (H, W) bool, True = hole.

    The conventions of LaMa, IOPaint and paint programs: white or any non-black grey = hole
    (JPEG masks: brighter than mid-grey, since compression leaves dark noise in the black); a
    mask with transparent pixels is a painted layer: every painted (non-transparent) pixel is
    hole, whatever its colour. invert=True swaps hole and known (masks with black = hole).
    EXIF orientation is applied as for photos. resize=True scales a mask of another size
    (nearest neighbour); otherwise a size mismatch is a CompletionError, like an empty or
    all-hole mask. Undecodable files raise io.ImageDecodeError.
    """
    path = Path(path)
    if not path.is_file():
        raise io.ImageDecodeError(path, "mask file not found")
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
            lossy = opened.format in LOSSY_FORMATS
    except UnidentifiedImageError:
        raise io.ImageDecodeError(path, "mask is not an image (white = hole on black, PNG or JPEG)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise io.ImageDecodeError(path, f"corrupt or unreadable mask ({err})") from None
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        gray = np.asarray(image, np.float64) / 257.0
    else:
        gray = np.asarray(image.convert("L"), np.float64)
    hole = gray > (LOSSY_MASK_THRESHOLD if lossy else 0)
    if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if (alpha < 255).any():
            hole = alpha > 0
    if hole.shape != tuple(shape):
        if not resize:
            raise CompletionError(
                f"{path}: mask is {hole.shape[1]}x{hole.shape[0]} but the photo is {shape[1]}x{shape[0]} "
                "(width x height, upright); make it the photo's size or pass --resize-mask")
        hole = cv2.resize(hole.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    if invert:
        hole = ~hole
    check_hole(hole, str(path), gray)
    return hole


def check_hole(hole: np.ndarray, source: str, gray: np.ndarray | None = None) -> None:
    """CompletionError for a hole with no pixel or with every pixel (both mean a wrong mask)."""
    values = f" (gray values {gray.min():.0f}..{gray.max():.0f})" if gray is not None else ""
    if not hole.any():
        raise CompletionError(
            f"{source}: the mask is empty, no pixel is a hole{values}; {MASK_RULE}")
    if hole.all():
        raise CompletionError(
            f"{source}: every pixel is a hole{values}, nothing is left to complete from; {MASK_RULE}. "
            f"{INVERT_HINT}")


def whole_image_box(height: int, width: int) -> CropBox:
    """The square crop that is the whole photo (centred on the longer side) for ``no_detect``."""
    side = max(height, width)
    return CropBox((width - side) / 2, (height - side) / 2, float(side))


def box_mask(box: CropBox, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the photo pixels whose centres lie in the (turned) crop box."""
    inside = np.zeros(shape, bool)
    corners = box.corners()
    x0, y0 = np.maximum(np.ceil(corners.min(0)).astype(int), 0)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    x1, y1 = min(x1, shape[1]), min(y1, shape[0])
    if x1 <= x0 or y1 <= y0:
        return inside
    if box.roll == 0:  # exact bounds: centre x in [x0, x0 + side)
        inside[y0:y1, x0:x1] = True
        return inside
    (ax, bx, cx), (ay, by, cy) = box.crop_from_source(1)  # crop (u, v) of photo pixel (x, y), in [0, 1)
    xs, ys = np.arange(x0, x1, dtype=np.float64)[None], np.arange(y0, y1, dtype=np.float64)[:, None]
    u, v = ax * xs + bx * ys + cx, ay * xs + by * ys + cy
    inside[y0:y1, x0:x1] = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    return inside


# --------------------------------------------------------------------------- paste back


def paste_back(image: np.ndarray, hole: np.ndarray, crop_prediction: np.ndarray, box: CropBox,
               blend: str = "poisson") -> np.ndarray:
    """Write a completed face crop into the photo, inside ``hole`` only. -> new (H, W, 3) uint8.

    image: (H, W, 3) uint8 photo; hole: (H, W) bool; crop_prediction: (S, S, 3) uint8 generator
    output for ``box`` (the crop of ``crop_resize(image, box, S)``). The prediction is upsampled
    to photo pixels (cubic; low-passed first by a 3x3 binomial when magnified ``SMOOTH_FROM_SCALE``
    times or more), blended per ``blend`` ("poisson" or "none"), and every pixel outside the hole
    is returned bit-identical.
    """
    if blend not in BLEND_MODES:
        raise ValueError(f"blend must be one of {', '.join(BLEND_MODES)}, got {blend!r}")
    out = image.copy()
    rows, cols = np.nonzero(hole)
    if rows.size == 0:
        return out
    height, width = hole.shape
    y0, y1 = max(rows.min() - BLEND_MARGIN, 0), min(rows.max() + 1 + BLEND_MARGIN, height)
    x0, x1 = max(cols.min() - BLEND_MARGIN, 0), min(cols.max() + 1 + BLEND_MARGIN, width)
    size = crop_prediction.shape[0]
    scale = size / box.side
    # photo pixel (x0 + u, y0 + v) -> crop pixel, as crop_resize
    matrix = box.crop_from_source(size)
    matrix[:, 2] += matrix[:, :2] @ [x0, y0]
    interp = cv2.INTER_CUBIC if scale < 1 else cv2.INTER_LINEAR
    if 1 / scale >= SMOOTH_FROM_SCALE:
        smoothed = cv2.sepFilter2D(crop_prediction.astype(np.float32), -1, BINOMIAL_3, BINOMIAL_3,
                                   borderType=cv2.BORDER_REFLECT)
        crop_prediction = np.clip(np.rint(smoothed), 0, 255).astype(np.uint8)
    prediction = cv2.warpAffine(crop_prediction, matrix, (x1 - x0, y1 - y0),
                                flags=interp | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    hole_region = hole[y0:y1, x0:x1]
    if blend == "poisson":
        prediction = poisson_blend(prediction, image[y0:y1, x0:x1], hole_region)
    out[y0:y1, x0:x1][hole_region] = prediction[hole_region]
    return out


# --------------------------------------------------------------------------- completion


@dataclass
class FaceResult:
    """One completed face. box: its square crop in photo pixels. parsing: (S, S) uint8 labels
    (``labels.LABELS``) in crop pixels, None without the parsing task. landmarks: (5, 2) predicted
    points in photo pixels, None without the detection task. detected: (5, 2) detector landmarks
    in photo pixels, None with ``no_detect`` unless a face was found to reframe the photo."""

    box: CropBox
    parsing: np.ndarray | None
    landmarks: np.ndarray | None
    detected: np.ndarray | None


@dataclass
class Completion:
    """image: (H, W, 3) uint8 completed photo; hole: (H, W) bool; faces: the completed faces,
    largest first; timings: seconds spent in detect, model and blend (crop, paste, Poisson)."""

    image: np.ndarray
    hole: np.ndarray
    faces: list[FaceResult]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Face:
    box: CropBox
    detected: np.ndarray | None
    inside: np.ndarray  # (H, W) bool: box_mask(box, photo shape), computed once per face


class FaceCompleter:
    """A loaded generator plus face detectors; call :meth:`complete` per photo. Close when done.

    model: exported model folder, run folder or ckpt-*.pt (None = the shipped weights, see
    :func:`default_model_dir`). device: auto, cpu, cuda or cuda:N. blend: poisson or none.
    seed: seed of the noise that fills the hole (same seed, same result). straighten: turn the
    crops of faces tilted beyond ``STRAIGHTEN_BEYOND`` degrees upright (False: the paper's crop).
    runtime: the generator's runtime (``collaface.engine.RUNTIMES``); threads: its CPU threads
    (None: the runtime's default). on_step: called with a
    few words on each step under way (loading the detector, finding faces, completing...).
    """

    def __init__(self, model: str | os.PathLike | None = None, device: str = "auto",
                 blend: str = "poisson", seed: int = 0, straighten: bool = True, runtime: str = "auto",
                 threads: int | None = None, on_step: Callable[[str], None] = lambda step: None):
        if blend not in BLEND_MODES:
            raise CompletionError(f"blend must be one of {', '.join(BLEND_MODES)}, got {blend!r}")
        self.model_path = Path(model) if model is not None else default_model_dir()
        try:
            self.engine = load_engine(self.model_path, runtime, device, threads)
        except EngineError as err:
            raise CompletionError(str(err)) from None
        self.cfg = self.engine.cfg
        self.tasks = list(self.cfg.model.tasks)
        if "i" not in self.tasks:
            raise CompletionError(
                f"{self.model_path}: this model does not complete images (its tasks: {', '.join(self.tasks)})")
        self.size = self.cfg.data.image_size
        self.blend = blend
        self.seed = seed
        self.straighten_beyond = STRAIGHTEN_BEYOND if straighten else math.inf
        augment = self.cfg.data.augment
        self.framing = Framing.from_augmentation(augment.enabled, augment.scale, augment.shift)
        self.on_step = on_step
        self._detectors: dict[bool, FaceAnnotator] = {}

    def close(self) -> None:
        for detector in self._detectors.values():
            detector.close()
        self._detectors.clear()

    def __enter__(self) -> FaceCompleter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detector(self, thorough: bool) -> FaceAnnotator:
        """The mediapipe FaceAnnotator: whole photo only, or also tiled for small faces (thorough).

        Raises AnnotatorUnavailable (with the install command) without the annotation extra.
        """
        if thorough not in self._detectors:
            self.on_step("loading the face detector")
            self._detectors[thorough] = FaceAnnotator() if thorough else FaceAnnotator(min_tile=WHOLE_PHOTO_TILE)
        return self._detectors[thorough]

    def find_faces(self, image: np.ndarray, thorough: bool = False, hole: np.ndarray | None = None) -> list[_Face]:
        """Faces of an (H, W, 3) uint8 photo with their crop boxes, largest first; a face tilted
        more than ``STRAIGHTEN_BEYOND`` degrees gets a box turned upright (unless straighten is off).
        Searched with the (H, W) bool ``hole`` pre-filled, then (not thorough) on padded and turned
        copies: :func:`collaface.face_search.search_faces`."""
        faces = []
        for found in search_faces(self.detector(thorough).annotate, image, hole, retries=not thorough):
            box = straightened(crop_box_from_landmarks(found.landmarks), found.landmarks, self.straighten_beyond)
            faces.append(_Face(box, found.landmarks, box_mask(box, image.shape[:2])))
        return faces

    # ------------------------------------------------------------------ one photo

    def complete(self, image: np.ndarray, hole: np.ndarray | None = None, region: str | None = None,
                 face: int | None = None, no_detect: bool = False) -> Completion:
        """Complete the hole of an (H, W, 3) uint8 RGB photo. Give exactly one of ``hole``
        ((H, W) bool, True = hole) or ``region`` (a name in ``masks.REGIONS``, placed from each
        face's landmarks). face: only this face (0 = largest) and the parts of the hole that touch
        its crop; default every face whose crop intersects the hole. Raises CompletionError (bad
        input) or NoFaceError."""
        if (hole is None) == (region is None):
            raise CompletionError("give exactly one of a hole mask or a region")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise CompletionError(f"need an (H, W, 3) uint8 RGB photo, got {image.dtype} {image.shape}")
        shape = image.shape[:2]
        if hole is not None and hole.shape != shape:
            raise CompletionError(f"hole is {hole.shape[1]}x{hole.shape[0]}, photo is {shape[1]}x{shape[0]}")
        timings = {"detect": 0.0, "model": 0.0, "blend": 0.0}
        noise = np.random.default_rng(self.seed)

        start = time.perf_counter()
        self.on_step("finding faces")
        faces = self._faces(image, hole, face, no_detect)
        timings["detect"] = time.perf_counter() - start
        if region is not None:
            hole = np.zeros(shape, bool)
            for f in faces:
                landmarks = f.detected if f.detected is not None else self._predict_landmarks(image, f.box, noise)
                hole |= region_hole(region, landmarks, f.box, shape)
            if not hole.any():
                raise CompletionError(f"region {region!r} lies outside the photo")
        check_hole(hole, "hole")
        if face is not None:
            hole = _parts_touching(hole, faces[0].inside)
            if not hole.any():
                raise CompletionError(f"the hole does not touch face {face}'s crop")
        selected = faces if face is not None else [f for f in faces if (hole & f.inside).any()]
        selected = [self._fitted(f, hole, shape) for f in selected]
        self._check_hole_fits(hole, selected, faces, no_detect)

        result, remaining, results = image, hole.copy(), []
        for number, f in enumerate(selected, 1):
            self.on_step(f"completing face {number} of {len(selected)}")
            start = time.perf_counter()
            face_hole = remaining & f.inside
            crop = crop_resize(result, f.box, self.size)
            crop_hole = crop_resize(face_hole.astype(np.float32), f.box, self.size) > 1e-3
            timings["blend"] += time.perf_counter() - start
            start = time.perf_counter()
            outputs = self._generate(crop, crop_hole, noise)
            timings["model"] += time.perf_counter() - start
            start = time.perf_counter()
            prediction = to_uint8_image(outputs["i"][0])
            result = paste_back(result, face_hole, prediction, f.box, self.blend)
            remaining &= ~face_hole
            timings["blend"] += time.perf_counter() - start
            results.append(FaceResult(
                box=f.box,
                parsing=parsing_labels(outputs["s"][0]) if "s" in outputs else None,
                landmarks=f.box.to_source(heatmap_peaks(outputs["d"][0]), self.size) if "d" in outputs else None,
                detected=f.detected,
            ))
        if remaining.any():  # the small part beyond every crop the model handles (MAX_OUTSIDE_SHARE)
            start = time.perf_counter()
            result = classical_fill(result, remaining)
            timings["blend"] += time.perf_counter() - start
        return Completion(image=result, hole=hole, faces=results, timings=timings)

    def _fitted(self, face: _Face, hole: np.ndarray, shape: tuple[int, int]) -> _Face:
        """``face`` with its crop grown and shifted, within the model's trained framing, to hold
        the parts of ``hole`` that touch it (see :func:`collaface.data.crop_fit.fitted_box`)."""
        box, _ = fitted_box(face.box, hole_outline(_parts_touching(hole, face.inside)), self.framing)
        return face if box == face.box else _Face(box, face.detected, box_mask(box, shape))

    def _faces(self, image: np.ndarray, hole: np.ndarray | None, face: int | None, no_detect: bool) -> list[_Face]:
        """The candidate faces: whole photo, or detected (escalating to the tiled search)."""
        if no_detect:
            faces = [self._reframed(image, hole)]
        else:
            # A face index must number every face, so it takes the thorough search at once.
            faces = self.find_faces(image, thorough=face is not None, hole=hole)
            if face is None and (not faces or (hole is not None and _outside_faces(hole, faces).any())):
                faces = self.find_faces(image, thorough=True, hole=hole) or faces  # keeps what the retries found
            if not faces:
                raise NoFaceError(
                    "no face found in the photo; if it is a face crop already (like `collaface "
                    "prepare` makes), use --no-detect to treat the whole photo as the face")
        if face is None:
            return faces
        if not 0 <= face < len(faces):
            raise CompletionError(
                f"face {face} asked for, but the photo has {len(faces)} face(s), numbered 0..{len(faces) - 1} "
                "from the largest")
        return [faces[face]]

    def _reframed(self, image: np.ndarray, hole: np.ndarray | None) -> _Face:
        """``no_detect``'s face: the whole photo as one crop, unless a face is found in it whose
        crop (within the model's framing) holds the whole hole, at most ``MAX_HOLE_FRACTION`` of
        it: then that crop, so that the model
        sees the face at the scale it was trained on (the completion is mapped back)."""
        shape = image.shape[:2]
        whole = whole_image_box(*shape)
        try:
            found = self.find_faces(image, hole=hole)
        except AnnotatorUnavailable:  # --no-detect works without the annotation extra
            found = []
        if found:
            best = found[0]
            if hole is None:
                return best
            box, holds = fitted_box(best.box, hole_outline(hole), self.framing)
            if holds and self._hole_fraction(hole, box) <= MAX_HOLE_FRACTION:
                return _Face(box, best.detected, box_mask(box, shape))
        return _Face(whole, None, box_mask(whole, shape))

    def _check_hole_fits(self, hole: np.ndarray, selected: list[_Face], faces: list[_Face], no_detect: bool) -> None:
        """Refuse holes that reach outside the chosen faces' crops or cover most of a crop; when
        the mask covers most of the photo or of the faces' surroundings, say it may be inverted."""
        problem = self._fit_problem(hole, selected, len(faces), no_detect)
        if problem is None:
            return
        surroundings = ~np.logical_or.reduce([f.inside for f in faces]) if faces else np.ones_like(hole)
        covered = [(share, where) for share, where in ((hole.mean(), "the photo"),
                                                      (hole[surroundings].mean() if surroundings.any() else 0.0,
                                                       "the face's surroundings"))
                   if share > INVERTED_SHARE]
        if covered:
            share, where = covered[0]
            problem += f". The mask covers {share:.0%} of {where}: it may be inverted. {INVERT_HINT}"
        raise CompletionError(problem)

    def _fit_problem(self, hole: np.ndarray, selected: list[_Face], found: int, no_detect: bool) -> str | None:
        """Why ``hole`` cannot be completed with the ``selected`` faces (crops fitted to the
        hole), or None. Up to ``MAX_OUTSIDE_SHARE`` of the hole may lie beyond their crops."""
        outside = int(_outside_faces(hole, selected).sum())
        if not selected:
            return (f"the hole lies outside every face's crop ({found} face(s) found): the model completes holes "
                    "in the square crop around a face (about 3x the eyes-to-mouth size); draw the hole on a face"
                    + ("" if no_detect else ", or use --no-detect to treat the whole photo as one face crop"))
        if outside > MAX_OUTSIDE_SHARE * hole.sum():
            framing = self.framing
            return (f"the hole reaches {outside} pixels ({outside / hole.sum():.0%} of it, at most "
                    f"{MAX_OUTSIDE_SHARE:.0%}) outside the largest crop the model handles around the chosen face "
                    f"({framing.max_zoom_out:.2f}x the rule's crop of about 3x the eyes-to-mouth size, shifted by up "
                    f"to {framing.max_shift:.0%}, from the model's training augmentation); make the hole smaller or "
                    "closer to the face"
                    + ("" if no_detect else ", or use --no-detect to treat the whole photo as one face crop"))
        for f in selected:
            fraction = self._hole_fraction(hole, f.box)
            if fraction > MAX_HOLE_FRACTION:
                return (f"the hole covers {fraction:.0%} of a face's crop (at most {MAX_HOLE_FRACTION:.0%}): "
                        "too little of the face is left to complete it from; make the hole smaller")
        return None

    def _hole_fraction(self, hole: np.ndarray, box: CropBox) -> float:
        """The share of the crop ``box`` (at the model's side) that the (H, W) bool ``hole`` covers."""
        return float((crop_resize(hole.astype(np.float32), box, self.size) > 0.5).mean())

    def _generate(self, crop: np.ndarray, crop_hole: np.ndarray, noise: np.random.Generator) -> dict[str, np.ndarray]:
        """Generator outputs {task: (1, C, S, S)} for an (S, S, 3) uint8 crop and (S, S) bool hole,
        the hole filled with uniform noise from ``noise``."""
        return self.engine(*generator_input(crop, crop_hole, noise))

    def _predict_landmarks(self, image: np.ndarray, box: CropBox, noise: np.random.Generator) -> np.ndarray:
        """(5, 2) photo-pixel landmarks that the model predicts for the unmasked crop (no_detect)."""
        if "d" not in self.tasks:
            raise CompletionError(
                f"--region with --no-detect places the region from the model's landmarks, but "
                f"{self.model_path} predicts none (its tasks: {', '.join(self.tasks)}); give a --mask")
        crop = crop_resize(image, box, self.size)
        heatmaps = self._generate(crop, np.zeros((self.size, self.size), bool), noise)["d"][0]
        return box.to_source(heatmap_peaks(heatmaps), self.size)


def region_hole(region: str, landmarks: np.ndarray, box: CropBox, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool hole over a named region of the face with (5, 2) photo-pixel ``landmarks``;
    placed in the face's upright frame when its crop ``box`` is turned."""
    if box.roll == 0:
        return region_mask(region, landmarks, shape) > 0
    side = max(round(box.side), 1)  # the straightened crop at about one photo pixel per pixel
    upright = region_mask(region, box.to_crop(landmarks, side), side)
    return cv2.warpAffine(upright, box.crop_from_source(side), (shape[1], shape[0]),
                          flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0) > 0


def _parts_touching(hole: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The connected parts (8-neighbour) of ``hole`` that have a pixel in the (H, W) bool ``inside``."""
    _, parts = cv2.connectedComponents(hole.astype(np.uint8), connectivity=8)
    touching = parts[inside]
    return np.isin(parts, np.unique(touching[touching > 0]))


def _outside_faces(hole: np.ndarray, faces: list[_Face]) -> np.ndarray:
    """(H, W) bool: the hole pixels that lie in no face's crop box."""
    outside = hole.copy()
    for f in faces:
        outside[f.inside] = False
    return outside


# --------------------------------------------------------------------------- pictures and files


def parsing_picture(completion: Completion, size: int = PANEL_SIZE) -> np.ndarray:
    """Per face: completed crop with parsing overlay and predicted landmarks | parsing colours;
    faces stacked, legend below. -> (h, w, 3) uint8. CompletionError without the parsing task."""
    if not completion.faces or completion.faces[0].parsing is None:
        raise CompletionError("this model predicts no parsing (it was trained without the s task)")
    tiles = []
    for face in completion.faces:
        crop = crop_resize(completion.image, face.box, size)
        parsing = cv2.resize(face.parsing, (size, size), interpolation=cv2.INTER_NEAREST)
        overlay = overlay_parsing(crop, parsing)
        if face.landmarks is not None:
            overlay = draw_landmarks(overlay, face.box.to_crop(face.landmarks, size))
        tiles += [overlay, LABEL_COLORS[parsing]]
    sheet = contact_sheet(tiles, columns=2)
    return np.concatenate([sheet, legend(sheet.shape[1])], axis=0)


def landmarks_picture(completion: Completion) -> np.ndarray:
    """The completed photo with each face's predicted landmarks drawn. -> (H, W, 3) uint8."""
    out = completion.image
    for face in completion.faces:
        if face.landmarks is None:
            raise CompletionError("this model predicts no landmarks (it was trained without the d task)")
        out = draw_landmarks(out, face.landmarks)
    return out


def landmarks_record(completion: Completion, source: str = "") -> dict:
    """JSON-ready landmarks: per face the 5 predicted points in photo pixels (and the detector's)."""
    if any(face.landmarks is None for face in completion.faces):
        raise CompletionError("this model predicts no landmarks (it was trained without the d task)")
    height, width = completion.image.shape[:2]

    def points(array: np.ndarray | None) -> list[list[float]] | None:
        return None if array is None else np.round(array.astype(np.float64), 2).tolist()

    return {
        "image": source,
        "width": width,
        "height": height,
        "order": list(LANDMARK_NAMES),
        "convention": "x, y pixels of the upright photo, pixel centres at integer coordinates; "
                      "left/right = the image's left/right",
        "faces": [
            {"face": i, "crop_box": [round(face.box.x0, 2), round(face.box.y0, 2), round(face.box.side, 2)],
             "crop_roll": round(face.box.roll, 2),
             "landmarks": points(face.landmarks), "detected_landmarks": points(face.detected)}
            for i, face in enumerate(completion.faces)
        ],
    }


def side_by_side(image: np.ndarray, completion: Completion, height: int = SIDE_BY_SIDE_HEIGHT) -> np.ndarray:
    """input | the hole, painted opaque ``HOLE_COLOUR`` | result, each scaled to at most
    ``height`` rows, with the captions input / hole / result above them."""
    holed = image.copy()
    holed[completion.hole] = HOLE_COLOUR
    panels = [image, holed, completion.image]
    scale = min(1.0, height / image.shape[0])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    if scale < 1:
        panels = [cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in panels[::2]]
        panels.insert(1, cv2.resize(holed, size, interpolation=cv2.INTER_NEAREST))  # the colour stays pure
    captioned = []
    for panel, caption in zip(panels, SIDE_BY_SIDE_CAPTIONS):
        band = np.full((CAPTION_HEIGHT, size[0], 3), 255, np.uint8)
        cv2.putText(band, caption, (4, CAPTION_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        captioned.append(np.concatenate([band, panel], axis=0))
    return contact_sheet(captioned, columns=3, gap=4)


def save_image(path: Path, image: np.ndarray | Image.Image, source: Path | None = None) -> None:
    """Write an (H, W, 3) uint8 image (or a Pillow image) atomically, format from the suffix. A
    JPEG written from a JPEG ``source`` reuses its quantisation tables and subsampling (the
    source's own quality); the source's colour profile is kept. EXIF is not copied: the image is
    already upright."""
    params: dict = {}
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg", ".webp"):
        params["quality"] = JPEG_QUALITY
    if source is not None:
        with Image.open(source) as src:
            if src.info.get("icc_profile"):
                params["icc_profile"] = src.info["icc_profile"]
            if suffix in (".jpg", ".jpeg") and src.format == "JPEG":
                params.pop("quality")
                params["qtables"] = src.quantization
                sampling = JpegImagePlugin.get_sampling(src)
                if sampling >= 0:
                    params["subsampling"] = sampling
    io.save_picture(path, image if isinstance(image, Image.Image) else Image.fromarray(image), **params)


# --------------------------------------------------------------------------- one photo, from files


def complete_file(completer: FaceCompleter, path: Path, out: Path, mask: Path | None = None,
                  region: str | None = None, face: int | None = None, no_detect: bool = False,
                  resize_mask: bool = False, invert_mask: bool = False) -> tuple[np.ndarray, Completion]:
    """Decode ``path``, complete it, write ``out`` (format from its suffix; gray, 16-bit gray and
    alpha photos stay so, see :func:`io.merge_into_photo`). -> (RGB photo, completion).
    A CompletionError names the photo (and the mask) it is about."""
    completer.on_step(f"reading {path}")
    image, photo = io.load_photo(path)
    try:
        hole = read_mask(mask, image.shape[:2], resize_mask, invert_mask) if mask is not None else None
        completion = completer.complete(image, hole=hole, region=region, face=face, no_detect=no_detect)
    except CompletionError as err:
        if str(err).startswith((str(path), str(mask))):
            raise
        about = f"{path}" + (f" with mask {mask}" if mask is not None else "")
        raise type(err)(f"{about}: {err}") from None
    completer.on_step(f"writing {out}")
    save_image(out, io.merge_into_photo(photo, completion.image, completion.hole, io.image_format(out)), source=path)
    return image, completion


# --------------------------------------------------------------------------- batch


@dataclass
class BatchSummary:
    """Counts of one :func:`complete_folder` run."""

    out: Path
    completed: int
    skipped: int
    failed: int
    seconds: float

    def __str__(self) -> str:
        failed = f"{self.failed} failed (see {self.out / 'failures.csv'})" if self.failed else "none failed"
        return (f"completed {self.completed} photos in {self.seconds:.1f} s, {self.skipped} already done, "
                f"{failed}; results in {self.out}")


def mask_photo_stem(path: Path) -> str | None:
    """``NAME`` for a LaMa-style mask file ``NAME_mask<anything>.<ext>``, else None."""
    match = MASK_NAME.match(path.stem)
    return match["photo"] if match else None


def find_masks(folder: Path, stem: str, plain_names: bool = True) -> list[Path]:
    """The masks of photo ``stem`` in ``folder``: ``<stem>_mask<anything>.<ext>`` (LaMa; one
    per suffix, sorted) or, when there is none and plain_names, ``<stem>.<ext>`` (IOPaint's
    same-name layout); any image extension, any case. CompletionError when none match or one
    name has several extensions."""
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in io.IMAGE_EXTENSIONS and path.is_file():
                found.setdefault(path.stem, []).append(path)
    names = sorted(n for n in found if mask_photo_stem(Path(n)) == stem)
    if not names and plain_names and stem in found:
        names = [stem]
    if not names:
        expected = f"{stem}_mask*.png" + (f" or {stem}.png" if plain_names else "")
        raise CompletionError(f"no mask named {expected} (or another image extension) in {folder}")
    for name in names:
        if len(found[name]) > 1:
            raise CompletionError(f"several masks match: {', '.join(p.name for p in found[name])}")
    return [found[name][0] for name in names]


def batch_photos(src: Path, out: Path, masks: Path | None) -> list[Path]:
    """Photos under ``src`` (recursive, sorted): not the output folder's files, not a separate
    masks folder's files, and never a mask (``NAME_mask*`` beside a photo ``NAME``)."""
    out_root = out.resolve()
    masks_root = masks.resolve() if masks is not None and masks.is_dir() else None
    images = [p for p in io.list_images(src) if not p.parent.resolve().is_relative_to(out_root)]
    if masks_root is not None and masks_root != src.resolve():
        images = [p for p in images if not p.parent.resolve().is_relative_to(masks_root)]
    stems = {(p.parent, p.stem) for p in images}
    return [p for p in images if (p.parent, mask_photo_stem(p)) not in stems]


def batch_jobs(src: Path, relative: Path, masks: Path | None) -> list[tuple[Path | None, Path]]:
    """(mask or None, result path under OUT) for photo ``src/relative``. masks: None (a region),
    one mask file for every photo, or a folder (see :func:`find_masks`; the photo folder itself
    for masks beside the photos). A mask named ``NAME_mask`` (or ``NAME``) gives the result
    ``relative``; masks ``NAME_mask<suffix>`` give one result each, named after the mask."""
    if masks is None:
        return [(None, relative)]
    if masks.is_file():
        return [(masks, relative)]
    beside = masks.resolve() == src.resolve()
    found = find_masks(masks / relative.parent, relative.stem, plain_names=not beside)
    return [(m, relative if m.stem in (relative.stem, f"{relative.stem}_mask")
             else relative.with_name(m.stem + relative.suffix)) for m in found]


def output_path(out: Path, relative: Path, inputs: tuple[Path, ...]) -> Path:
    """OUT/relative, refused (CompletionError) if it would resolve outside ``out`` (a symlinked
    subfolder) or onto one of ``inputs``."""
    target = out / relative
    root = out.resolve()
    if not target.parent.resolve().is_relative_to(root):
        raise CompletionError(f"output {target} would be written outside {out} (symlinked folder?); refused")
    if any(target.resolve() == p.resolve() for p in inputs):
        raise CompletionError(f"output {target} is an input file; refused")
    return target


def _is_done(target: Path, sources: tuple[Path, ...]) -> bool:
    """A finished result: written (atomically) after its photo and mask last changed."""
    if not target.is_file():
        return False
    written = target.stat().st_mtime_ns
    return all(p.stat().st_mtime_ns <= written for p in sources)


def complete_folder(completer: FaceCompleter, src: Path, out: Path, masks: Path | None = None,
                    region: str | None = None, face: int | None = None, no_detect: bool = False,
                    resize_mask: bool = False, invert_mask: bool = False, progress: bool = True) -> BatchSummary:
    """Complete every photo under ``src`` into ``out`` (same relative path, format and size).

    Holes come from ``region`` or ``masks``: one mask file for every photo, a folder of masks
    matched by name (IOPaint: ``photo.png`` <-> ``MASKS/photo.png``; also ``photo_mask*.png``), or
    masks beside the photos (LaMa: ``photo.png`` with ``photo_mask001.png``, ...; the default
    when neither is given). Finished results are skipped on a rerun; a photo that fails is
    listed in OUT/failures.csv (file, reason) and the batch goes on. Nothing is written outside
    ``out``; inputs are only read.
    """
    src, out = Path(src), Path(out)
    if masks is not None and region is not None:
        raise CompletionError("give one of a mask (file or folder) or a region, not both")
    if not src.is_dir():
        raise CompletionError(f"{src}: photo folder not found")
    if masks is not None and not masks.exists():
        raise CompletionError(f"{masks}: no such mask file or folder")
    if masks is None and region is None:
        if not any(mask_photo_stem(p) for p in io.list_images(src)):
            raise CompletionError(
                f"{src}: no masks beside the photos (photo_mask*.png) and no --mask or --region given; give the holes: "
                "--mask MASK.png (one for every photo) or MASK_DIR (matched by name), or --region NAME")
        masks = src
    for name, folder in (("photo", src), ("masks", masks)):
        if folder is not None and out.resolve() == folder.resolve():
            raise CompletionError(f"--out {out} is the {name} folder; results must go to a folder of their own")
    if not no_detect:
        completer.detector(thorough=False)  # fail now, not once per photo, without the extra
    photos = batch_photos(src, out, masks)
    out.mkdir(parents=True, exist_ok=True)
    failures, counts, start = [], {"completed": 0, "skipped": 0}, time.perf_counter()
    try:
        bar = tqdm(photos, desc="complete", unit="photo", disable=not progress)
        for path in bar:
            relative = path.relative_to(src)
            try:
                jobs = batch_jobs(src, relative, masks)
            except CompletionError as err:
                failures.append({"file": relative.as_posix(), "reason": str(err)})
                continue
            for mask, result in jobs:
                try:
                    sources = (path,) if mask is None else (path, mask)
                    target = output_path(out, result, sources)
                    if _is_done(target, sources):
                        counts["skipped"] += 1
                        continue
                    complete_file(completer, path, target, mask=mask, region=region, face=face,
                                  no_detect=no_detect, resize_mask=resize_mask, invert_mask=invert_mask)
                    counts["completed"] += 1
                except io.ImageDecodeError as err:
                    failures.append({"file": result.as_posix(), "reason": f"{Path(err.path).name}: {err.reason}"})
                except CompletionError as err:
                    failures.append({"file": result.as_posix(), "reason": str(err)})
                except Exception as err:  # one bad photo must not end a long batch: record it, go on
                    failures.append({"file": result.as_posix(), "reason": f"unexpected {type(err).__name__}: {err}"})
            bar.set_postfix(done=counts["completed"], failed=len(failures), refresh=False)
    finally:  # also after an interrupt
        io.write_csv_atomic(out / "failures.csv", FAILURE_COLUMNS, failures)
    return BatchSummary(out=out, completed=counts["completed"], skipped=counts["skipped"],
                        failed=len(failures), seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------- command line

COMPLETE_DESCRIPTION = """\
Fill a hole in a face photo (sunglasses, a hand, a scratch, a sticker...) and predict the
face's parsing and 5 landmarks.

One photo:  collaface complete PHOTO (--mask MASK.png | --region NAME) [--out OUT.png]
A folder:   collaface complete DIR [--mask MASK.png | --mask MASK_DIR | --region NAME] --out OUT_DIR

Masks, as LaMa and IOPaint make them: WHITE or any non-black grey = HOLE to fill, black =
keep (JPEG masks: brighter than mid-grey); a mask with transparency is a painted layer: every
painted pixel is hole, whatever its colour. --invert-mask for masks with black = hole. Same
size as the photo (or --resize-mask). --region places a hole from the detected landmarks
instead. Faces are found automatically (any size or position; needs
`pip install 'collaface[annotate]'`); each face whose square crop touches the hole is
completed at the model's resolution, upsampled, Poisson-blended and written back into the
full-size photo inside the hole only: every other pixel stays exactly as it was (save as PNG
to keep them bit-exact; JPEG re-encodes every pixel, at the source's own quality).

Folder mode, the holes: --mask MASK.png (one mask for every photo), --mask MASK_DIR (IOPaint:
the same names, photo.jpg <-> MASK_DIR/photo.png, or photo_mask*.png, in the same subfolder),
masks beside the photos (LaMa: photo.png with photo_mask.png or photo_mask001.png,
photo_mask002.png...: one result per mask, named after it; used when no --mask or --region is
given), or --region NAME. Mask files are never taken for photos. Results keep each photo's
relative path, format and size; a rerun skips finished results; photos that fail are listed
in OUT_DIR/failures.csv and the batch goes on.

Exit codes: 0 ok, 1 unexpected failure, 2 bad usage or input (also when any photo of a batch
failed), 3 no face found (use --no-detect for photos that are face crops already)."""


def add_complete_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``collaface complete`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "complete", help="fill a hole in a face photo (or a folder of photos)",
        description=COMPLETE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="a photo, or a folder of photos (searched recursively)")
    hole = p.add_mutually_exclusive_group()
    hole.add_argument("--mask", "--masks", metavar="MASK", dest="mask",
                      help="hole mask (white or non-black grey = hole, or painted pixels of a transparent layer; "
                           "the photo's size): a file, for one photo or every photo of a folder, or a folder of "
                           "masks matched by name")
    hole.add_argument("--region", choices=REGIONS, metavar="NAME",
                      help=f"hole over this face region, placed from the detected landmarks: {', '.join(REGIONS)}")
    p.add_argument("--invert-mask", action="store_true", help="the masks mark the hole in black: swap hole and keep")
    p.add_argument("--out", metavar="OUT",
                   help="output file (one photo: .png, .jpg, .webp or .bmp; default ./<name>_completed.<ext>, PNG "
                        "for other inputs) or folder (batch; required)")
    p.add_argument("--model", metavar="DIR", help="exported model folder, training run folder or ckpt-*.pt "
                                                  f"(default: the shipped weights in {DEFAULT_MODEL_DIR})")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="the generator's runtime: torch, or onnx (onnxruntime, the light install without torch; "
                        "starts faster); default auto = torch where it is installed, else onnx")
    p.add_argument("--face", type=int, metavar="N",
                   help="complete only face N (0 = largest); default: every face the hole touches")
    p.add_argument("--no-detect", action="store_true",
                   help="the photo is one face crop (for prepared crops; never exit 3): when a face is found in "
                        "it, it is reframed to the model's trained scale, else the whole photo is the crop")
    p.add_argument("--resize-mask", action="store_true", help="scale a mask of another size to the photo's size")
    p.add_argument("--parsing", metavar="OUT.png",
                   help="also write the completed face's parsing, colour-coded with a legend")
    p.add_argument("--landmarks", metavar="OUT.json", help="also write the 5 predicted landmarks in photo pixels")
    p.add_argument("--side-by-side", metavar="OUT.png", help="also write input | hole | result, with captions")
    p.add_argument("--blend", choices=BLEND_MODES, default="poisson",
                   help="how the completion meets the known pixels (default poisson; none = the upsampled "
                        "model output as it is)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise filling the hole (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto; torch runtime)")
    p.add_argument("--threads", type=int, default=THREADS,
                   help=f"CPU threads of the generator (default {THREADS}: one photo at a time gains little from "
                        "more, and on a busy machine threads that wait for each other are 10x slower)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (folder mode)")
    p.set_defaults(func=run_complete)
    return p


def _usage_problem(args: argparse.Namespace) -> str | None:
    """The first problem with the arguments' combination, or None."""
    source = Path(args.input)
    if not source.exists():
        return f"{source}: no such photo or folder"
    if args.mask and not Path(args.mask).exists():
        return f"{args.mask}: no such mask file or folder"
    extras = [flag for flag, value in (("--parsing", args.parsing), ("--landmarks", args.landmarks),
                                       ("--side-by-side", args.side_by_side)) if value]
    if source.is_dir():
        if not args.out:
            return "folder mode needs --out OUT_DIR"
        if extras:
            return f"{', '.join(extras)} work on one photo, not a folder"
    else:
        if not (args.mask or args.region):
            return "give the hole: --mask MASK.png (white = hole) or --region NAME"
        outputs = {"--out": args.out, "--parsing": args.parsing, "--side-by-side": args.side_by_side}
        for flag, value in outputs.items():
            if value and Path(value).suffix.lower() not in io.IMAGE_EXTENSIONS:
                return (f"{flag} {value}: the file name must end in an image extension "
                        f"({', '.join(io.IMAGE_EXTENSIONS)})")
        named = [Path(value).resolve() for value in (*outputs.values(), args.landmarks) if value]
        for given in (source, args.mask):
            if given and Path(given).resolve() in named:
                return f"an output names the input {given}; write the results to other files"
        if len(set(named)) < len(named):
            return "two outputs name the same file"
    if args.face is not None and args.face < 0:
        return f"--face must be >= 0, got {args.face}"
    if args.threads < 1:
        return f"--threads must be >= 1, got {args.threads}"
    if args.face is not None and args.no_detect:
        return "--face picks a detected face; it cannot go with --no-detect"
    return None


class Progress:
    """Says on stderr what a run is doing, once it has taken longer than ``after`` seconds:
    then the step under way and every later one, with the time since the start."""

    def __init__(self, after: float, stream=None):
        self._stream = stream if stream is not None else sys.stderr
        self._start = time.perf_counter()
        self._step: str | None = None
        self._shown = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(after, self._show_current)
        self._timer.daemon = True
        self._timer.start()

    def __call__(self, step: str) -> None:
        with self._lock:
            self._step = step
            if self._shown:
                self._print()

    def _show_current(self) -> None:
        with self._lock:
            self._shown = True
            if self._step is not None:
                self._print()

    def _print(self) -> None:
        print(f"collaface: {self._step} ({time.perf_counter() - self._start:.1f} s)", file=self._stream, flush=True)

    def close(self) -> None:
        self._timer.cancel()


def run_complete(args: argparse.Namespace) -> int:
    """``collaface complete``: returns the exit code (see COMPLETE_DESCRIPTION)."""
    problem = _usage_problem(args)
    if problem:
        print(f"collaface complete: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    progress = Progress(PROGRESS_AFTER_S)
    try:
        progress(f"loading the model ({args.runtime} runtime)")
        with FaceCompleter(args.model, device=args.device, blend=args.blend, seed=args.seed,
                           runtime=args.runtime, threads=args.threads, on_step=progress) as completer:
            if Path(args.input).is_dir():
                completer.on_step = lambda step: None  # a folder's progress is its progress bar
                summary = complete_folder(
                    completer, Path(args.input), Path(args.out), masks=Path(args.mask) if args.mask else None,
                    region=args.region, face=args.face, no_detect=args.no_detect, resize_mask=args.resize_mask,
                    invert_mask=args.invert_mask, progress=not args.no_progress)
                print(summary)
                return EXIT_OK if summary.failed == 0 else EXIT_BAD_INPUT
            return _complete_one(completer, args)
    except NoFaceError as err:
        print(f"collaface complete: {err}", file=sys.stderr)
        return EXIT_NO_FACE
    except (CompletionError, io.ImageDecodeError, ModelNotFoundError, CheckpointError, ConfigError) as err:
        print(f"collaface complete: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AnnotatorUnavailable as err:
        print(f"collaface complete: {err}; or pass --no-detect for photos that are face crops already",
              file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:
        print(f"collaface complete: cannot read or write a file: {err}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        progress.close()


def _complete_one(completer: FaceCompleter, args: argparse.Namespace) -> int:
    source = Path(args.input)
    suffix = source.suffix if source.suffix.lower() in io.IMAGE_EXTENSIONS else ".png"
    out = Path(args.out) if args.out else Path.cwd() / f"{source.stem}_completed{suffix}"
    for flag, task, what in (("--parsing", "s", "parsing"), ("--landmarks", "d", "landmarks")):
        if getattr(args, flag[2:]) and task not in completer.tasks:
            raise CompletionError(f"{flag}: the model predicts no {what} (its tasks: {', '.join(completer.tasks)})")
    mask = Path(args.mask) if args.mask else None
    if mask is not None and mask.is_dir():
        found = find_masks(mask, source.stem)
        if len(found) > 1:
            raise CompletionError(f"{source}: {len(found)} masks match in {mask} ({', '.join(p.name for p in found)}); "
                                  "give one with --mask, or complete the folder")
        mask = found[0]
    image, completion = complete_file(
        completer, source, out, mask=mask, region=args.region, face=args.face, no_detect=args.no_detect,
        resize_mask=args.resize_mask, invert_mask=args.invert_mask)
    lines = [f"completed {len(completion.faces)} face(s) of {source}; result: {out}"]
    if out.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        lines.append("note: lossy output re-encodes every pixel; use a .png --out to keep the known pixels exact")
    if args.parsing:
        save_image(Path(args.parsing), parsing_picture(completion))
        lines.append(f"parsing: {args.parsing}")
    if args.landmarks:
        record = landmarks_record(completion, str(source))
        Path(args.landmarks).parent.mkdir(parents=True, exist_ok=True)
        Path(args.landmarks).write_text(json.dumps(record, indent=2) + "\n")
        lines.append(f"landmarks: {args.landmarks}")
    if args.side_by_side:
        save_image(Path(args.side_by_side), side_by_side(image, completion))
        lines.append(f"side by side: {args.side_by_side}")
    print("\n".join(lines))
    return EXIT_OK
