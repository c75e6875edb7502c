"""Find faces that a hole, a tight frame or a turned photo hide from the detector.

The face detector misses faces whose eyes or half are covered (sunglasses, a hand, a greyed-out
hole), faces that fill the frame, and it meshes upside-down faces as if they were upright. For
one photo :func:`search_faces` tries, in order, and stops at the first confident find:

1. the photo with the hole **pre-filled** by a fast classical fill (:func:`classical_fill`, Telea at
   most ``PREFILL_SIDE`` pixels wide), so that the detector sees a plausible face, not a grey
   block; the landmarks inside the hole come from the mesh fit, as for any face;
2. the photo as given (a flat hole can still look more like a pair of sunglasses than the fill);
3. **padded** copies of both (``PAD_FRACTION`` of the longer side of mid-grey on every side), for
   faces that fill the frame;
4. the padded pre-filled copy **turned** by 90, 180 and 270 degrees (a turned photo, a face upside
   down).

A find is confident when its best face scores at least ``CONFIDENT_SCORE``. When none is, the
attempt with the best score wins; a turned copy must beat the unturned ones by ``TURN_MARGIN``.
Faces found on a copy count from ``COPY_MIN_SCORE``, on a turned copy from ``TURN_MIN_SCORE``.
Measured with 80 and 60 shared CelebA crops and 120 smooth random colour fields (with a greyed
hole, as the tests' photos without a face): upright faces score 0.87-0.93 (5th-75th percentile),
with a pre-filled upper-face hole 0.68-0.89, upside-down faces (meshed as upright ones) 0.55-0.73,
and the same faces turned back 0.75 or more (98% of 180); the colour fields gave false faces
scoring up to 0.61 on the padded copies (1 of 120) and up to 0.72 on the turned ones (9 of 360).
Faces found on a copy are mapped back to the photo's pixels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np

from collaface.blending import inpaint_opencv
from collaface.data.annotate import FaceAnnotation

PREFILL_SIDE = 512       # longer side (pixels) at which the hole is pre-filled
PAD_FRACTION = 0.5       # padding on each side, fraction of the photo's longer side
PAD_GREY = (128, 128, 128)
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
TURNS = (90, 180, 270)   # degrees, counter-clockwise as displayed
CONFIDENT_SCORE = 0.8    # a find at least this sure ends the search
TURN_MARGIN = 0.05       # a turned copy's score must beat the unturned ones' by this much
COPY_MIN_SCORE = 0.65    # the least score of a face found on the photo as given or a padded copy
TURN_MIN_SCORE = 0.75    # the least score of a face found on a turned copy

Annotate = Callable[[np.ndarray], list[FaceAnnotation]]


def classical_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with the ``hole`` (H, W) bool pixels filled by Telea inpainting
    (computed at most ``PREFILL_SIDE`` pixels wide, then upsampled); the hole's old content is
    never read. Pixels outside the hole are returned unchanged."""
    height, width = hole.shape
    zoom = min(1.0, PREFILL_SIDE / max(height, width))
    if zoom == 1:
        return inpaint_opencv(image, hole, cv2.INPAINT_TELEA)
    size = (max(1, round(width * zoom)), max(1, round(height * zoom)))
    known = np.where(hole[..., None], 0, image).astype(np.uint8)
    small = cv2.resize(known, size, interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole.astype(np.uint8), size, interpolation=cv2.INTER_AREA) > 0
    filled = cv2.resize(inpaint_opencv(small, small_hole, cv2.INPAINT_TELEA), (width, height),
                        interpolation=cv2.INTER_LINEAR)
    return np.where(hole[..., None], filled, image)


def padded(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W, 3) with ``PAD_FRACTION`` of its longer side of mid-grey on every side, and
    the (2, 3) affine map of photo (x, y) -> padded (x, y)."""
    pad = round(PAD_FRACTION * max(image.shape[:2]))
    out = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=PAD_GREY)
    return out, np.array([[1.0, 0.0, pad], [0.0, 1.0, pad]])


def turned(image: np.ndarray, degrees: int) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W, 3) turned by ``degrees`` (a multiple of 90, counter-clockwise as displayed;
    ``np.rot90``), and the (2, 3) affine map of its (x, y) -> turned (x, y), pixel centres."""
    height, width = image.shape[:2]
    quarter = (degrees // 90) % 4
    matrix = {
        0: [[1, 0, 0], [0, 1, 0]],
        1: [[0, 1, 0], [-1, 0, width - 1]],
        2: [[-1, 0, width - 1], [0, -1, height - 1]],
        3: [[0, -1, height - 1], [1, 0, 0]],
    }[quarter]
    return np.ascontiguousarray(np.rot90(image, quarter)), np.array(matrix, np.float64)


def mapped_back(face: FaceAnnotation, to_copy: np.ndarray) -> FaceAnnotation:
    """``face`` found on a copy of the photo, in the photo's pixels; ``to_copy``: the (2, 3)
    affine map photo -> copy. The detector box becomes the bounding box of its mapped corners."""
    back = cv2.invertAffineTransform(to_copy)

    def points(xy: np.ndarray) -> np.ndarray:
        return (np.asarray(xy, np.float64) @ back[:, :2].T + back[:, 2]).astype(np.float32)

    x0, y0, x1, y1 = face.box
    corners = points(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    box = (*map(float, corners.min(0)), *map(float, corners.max(0)))
    return dataclasses.replace(face, landmarks=points(face.landmarks), mesh=points(face.mesh), box=box)


def _best_score(faces: list[FaceAnnotation]) -> float:
    return max((f.score for f in faces), default=0.0)


def search_faces(annotate: Annotate, image: np.ndarray, hole: np.ndarray | None = None,
                 retries: bool = True) -> list[FaceAnnotation]:
    """Faces of the (H, W, 3) uint8 photo, in its pixels, largest first, as ``annotate`` finds
    them (see the module docstring): on the photo with ``hole`` ((H, W) bool, or None) pre-filled,
    then (retries=True) on the photo as given and on padded and turned copies. [] when every
    attempt finds nothing."""
    filled = classical_fill(image, hole) if hole is not None and hole.any() else image
    attempts = [(annotate(filled), 0.0)]
    if not retries or _best_score(attempts[0][0]) >= CONFIDENT_SCORE:
        return attempts[0][0]
    pad, to_pad = padded(filled)
    copies = [(pad, to_pad)]
    if filled is not image:  # also the photo as given, unpadded and padded
        copies = [(image, IDENTITY), *copies, padded(image)]
    for copy, to_copy in copies:
        attempts.append((_found_on_copy(annotate, copy, to_copy, COPY_MIN_SCORE), 0.0))
        if _best_score(attempts[-1][0]) >= CONFIDENT_SCORE:
            return attempts[-1][0]
    for degrees in TURNS:
        copy, pad_to_copy = turned(pad, degrees)
        attempts.append((_found_on_copy(annotate, copy, _compose(pad_to_copy, to_pad), TURN_MIN_SCORE), TURN_MARGIN))
    faces, _ = max(attempts, key=lambda attempt: _best_score(attempt[0]) - attempt[1] if attempt[0] else -1.0)
    return faces


def _found_on_copy(annotate: Annotate, copy: np.ndarray, to_copy: np.ndarray,
                   min_score: float) -> list[FaceAnnotation]:
    """The faces scoring ``min_score`` or more on ``copy`` ((2, 3) map photo -> copy: ``to_copy``),
    in the photo's pixels."""
    return [mapped_back(f, to_copy) for f in annotate(copy) if f.score >= min_score]


def _compose(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """(2, 3) affine map: ``first`` then ``second``."""
    return np.concatenate([second[:, :2] @ first[:, :2], (second[:, :2] @ first[:, 2] + second[:, 2])[:, None]], axis=1)
