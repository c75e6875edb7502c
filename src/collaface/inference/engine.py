"""The completion engine: :class:`FaceCompleter` completes the hole of one photo in memory
(detect, crop, generate, paste back; see the package docstring); errors of bad input."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from collaface.contracts import LABELS
from collaface.data.annotate import AnnotatorUnavailable, FaceAnnotator
from collaface.data.crop import (
    BLEND_MODES,
    CropBox,
    box_mask,
    crop_box_from_landmarks,
    crop_resize,
    paste_back,
    region_hole,
    straightened,
    whole_image_box,
)
from collaface.data.crop_fit import Framing, fitted_box, hole_outline
from collaface.data.face_search import classical_fill, search_faces
from collaface.device import DeviceError
from collaface.inference.runtime import (
    EngineError,
    generator_input,
    heatmap_peaks,
    load_engine,
    parsing_labels,
    to_uint8_image,
)
from collaface.model_format import default_model_dir

MASK_RULE = ("white or any non-black grey marks the hole, black the known pixels; in a mask with transparency, "
             "every painted (non-transparent) pixel is hole")
INVERT_HINT = "If black marks the hole in your mask, pass --invert-mask."
INVERTED_SHARE = 0.5          # a refused mask covering more of the photo (or of the surroundings) may be inverted
MAX_HOLE_FRACTION = 0.5       # of a face crop; beyond it too little face is left to complete from
MAX_OUTSIDE_SHARE = 0.25      # of a hole: the most that may lie beyond the faces' crops (filled classically)
STRAIGHTEN_BEYOND = 10.0      # face roll (degrees) beyond which the crop turns upright: the training rotation range
WHOLE_PHOTO_TILE = 1 << 30    # FaceAnnotator min_tile that turns off its tiled small-face search
LANDMARK_PARTS = tuple(tuple(LABELS.index(name) for name in names) for names in (
    ("left_eye", "right_eye"), ("left_eye", "right_eye"), ("nose",),
    ("upper_lip", "inner_mouth", "lower_lip"), ("upper_lip", "inner_mouth", "lower_lip")))  # per landmark
CONFIRM_RADIUS = 1 / 32       # of the crop side: how near a landmark the model must parse its part
REFINE_AGREEMENT = 0.1        # of the crop side: the most model and detector landmarks may differ to re-crop
MIN_CONFIRMED = 3             # landmarks on known pixels that a find on the model's fill needs confirmed


class CompletionError(ValueError):
    """Bad input for completion (mask, region, face index, model); the message says what and why."""


class NoFaceError(CompletionError):
    """No face was found where one is needed."""


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


@dataclass
class FaceResult:
    """One completed face. box: its square crop in photo pixels. parsing: (S, S) uint8 labels
    (``contracts.LABELS``) in crop pixels, None without the parsing task. landmarks: (5, 2) predicted
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
    runtime: the generator's runtime (``runtime.RUNTIMES``); threads: its CPU threads
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
        except (EngineError, DeviceError) as err:
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
        copies: :func:`collaface.data.face_search.search_faces`."""
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
            crop_hole = self._crop_hole(face_hole, f.box)
            timings["blend"] += time.perf_counter() - start
            start = time.perf_counter()
            outputs = self._generate(crop, crop_hole, noise)
            box = self._refined_box(f, outputs, face_hole)
            if box is None:
                box = f.box
            else:  # a second pass in the crop placed from the model's own landmarks
                crop = crop_resize(result, box, self.size)
                outputs = self._generate(crop, self._crop_hole(face_hole, box), noise)
            timings["model"] += time.perf_counter() - start
            start = time.perf_counter()
            prediction = to_uint8_image(outputs["i"][0])
            result = paste_back(result, face_hole, prediction, box, self.blend)
            remaining &= ~face_hole
            timings["blend"] += time.perf_counter() - start
            results.append(FaceResult(
                box=box,
                parsing=parsing_labels(outputs["s"][0]) if "s" in outputs else None,
                landmarks=self._landmarks(outputs, box) if "d" in outputs else None,
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

    def _refined_box(self, face: _Face, outputs: dict[str, np.ndarray], hole: np.ndarray) -> CropBox | None:
        """``face``'s crop placed by the crop rule from the landmarks the model predicts for
        its completed crop (``outputs``), fitted to the (H, W) bool ``hole``: the detector's
        landmarks inside a hole are the mesh fit's guess, and a crop off the trained framing costs
        hole PSNR (40 held-out faces, O1-O6 at 0.6-1.0x the rule, shipped weights: +0.25-0.35 dB,
        0.07-0.11 dB short of the crop from the clean landmarks). None when the model predicts no
        landmarks, the photo is the crop (no face found), the new crop would not hold the hole, or
        the model's landmarks disagree with the detector's by more than ``REFINE_AGREEMENT`` of the
        crop side (a model that does not know the face)."""
        if "d" not in outputs or face.detected is None:
            return None
        points = self._landmarks(outputs, face.box)
        if np.linalg.norm(points - face.detected, axis=1).max() > REFINE_AGREEMENT * face.box.side:
            return None
        box = straightened(crop_box_from_landmarks(points), points, self.straighten_beyond)
        box, holds = fitted_box(box, hole_outline(hole), self.framing)
        if not holds or self._hole_fraction(hole, box) > MAX_HOLE_FRACTION:
            return None
        return box

    def _landmarks(self, outputs: dict[str, np.ndarray], box: CropBox) -> np.ndarray:
        """(5, 2) photo-pixel landmarks at the peaks of the generator's heatmaps ``outputs["d"]``
        for the crop ``box``."""
        return box.to_source(heatmap_peaks(outputs["d"][0]), self.size)

    def _faces(self, image: np.ndarray, hole: np.ndarray | None, face: int | None, no_detect: bool) -> list[_Face]:
        """The candidate faces: whole photo, or detected (escalating to the tiled search)."""
        if no_detect:
            faces = [self._reframed(image, hole)]
        else:
            # A face index must number every face, so it takes the thorough search at once.
            faces = self.find_faces(image, thorough=face is not None, hole=hole)
            if face is None and (not faces or (hole is not None and _outside_faces(hole, faces).any())):
                faces = self.find_faces(image, thorough=True, hole=hole) or faces  # keeps what the retries found
            if not faces and hole is not None:
                faces = self._found_on_model_fill(image, hole)
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

    def _found_on_model_fill(self, image: np.ndarray, hole: np.ndarray) -> list[_Face]:
        """The last try for a face that fills the frame with its eyes or half hidden, where a
        classical pre-fill leaves no face to find: the faces found (with the retries) on the photo
        with ``hole`` completed by the model itself, the whole photo as its crop. A face painted
        into a photo without one has no face around it, so a find counts only when at least
        ``MIN_CONFIRMED`` of its landmarks lie on known pixels and the model, given the find's own
        crop, parses each of those as its part (an eye, the nose, the lips) within
        ``CONFIRM_RADIUS``. Measured: 100 held-out faces framed 1.5x the crop rule with an O3 or O5
        hole: 17 found by no other try, 15 of them found here (the other two show only two
        landmarks, or wrong ones); 60 smooth colour fields with a greyed band: 14 painted faces
        found on the shipped weights' fill, none confirmed."""
        if "s" not in self.tasks:
            return []
        self.on_step("finding faces on the model's fill")
        whole = whole_image_box(*image.shape[:2])
        if self._hole_fraction(hole, whole) > MAX_HOLE_FRACTION:
            return []
        noise = np.random.default_rng(self.seed)
        fill = self._generate(crop_resize(image, whole, self.size), self._crop_hole(hole, whole), noise)["i"][0]
        filled = paste_back(image, hole, to_uint8_image(fill), whole, blend="none")
        return [f for f in self.find_faces(filled) if self._parts_confirmed(image, hole, f, noise)]

    def _parts_confirmed(self, image: np.ndarray, hole: np.ndarray, face: _Face, noise: np.random.Generator) -> bool:
        """Whether at least ``MIN_CONFIRMED`` of ``face``'s landmarks lie on known pixels and the
        model parses each of those as its part (``LANDMARK_PARTS``) near it."""
        crop_hole = self._crop_hole(hole, face.box)
        parsing = parsing_labels(self._generate(crop_resize(image, face.box, self.size), crop_hole, noise)["s"][0])
        radius = max(1, round(CONFIRM_RADIUS * self.size))
        confirmed = 0
        for (x, y), parts in zip(face.box.to_crop(face.detected, self.size).round().astype(int), LANDMARK_PARTS):
            if not (0 <= x < self.size and 0 <= y < self.size) or crop_hole[y, x]:
                continue
            if not np.isin(parsing[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1], parts).any():
                return False
            confirmed += 1
        return confirmed >= MIN_CONFIRMED

    def _crop_hole(self, hole: np.ndarray, box: CropBox) -> np.ndarray:
        """(S, S) bool: the crop pixels of ``box`` that the (H, W) bool ``hole`` touches."""
        return crop_resize(hole.astype(np.float32), box, self.size) > 1e-3

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
        return self._landmarks(self._generate(crop, np.zeros((self.size, self.size), bool), noise), box)


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
