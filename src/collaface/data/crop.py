"""The face-crop rule shared by ``prepare``, the CelebA loaders and inference.

Paper rule (section 4.1): a square crop that contains eyes, nose and mouth, with **no
alignment** (no rotation, no eye-based warping). From the 5 landmarks (image pixels, our
image-side order: left eye, right eye, nose, left mouth, right mouth):

* ``eyes`` = midpoint of the eyes, ``mouth`` = midpoint of the mouth corners;
* ``extent`` = max(inter-ocular distance, eyes-to-mouth distance);
* centre = midpoint of ``eyes`` and ``mouth``; side = ``CROP_SCALE * extent``.

Parts of the square outside the photo are filled by replicating the border (as CelebA does).

Inference may straighten a strongly tilted face (:func:`straightened`): the same square, turned
by the face's roll about its centre, so that the model sees the face upright as in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CROP_SCALE = 3.0


@dataclass(frozen=True)
class CropBox:
    """Square crop in source-image pixels: top-left (x0, y0) and side length (may exceed the
    image) of the unturned square; roll: degrees the square is turned about its centre, positive
    = clockwise as displayed (the roll of the face it straightens; 0 = the paper's crop)."""

    x0: float
    y0: float
    side: float
    roll: float = 0.0

    def crop_from_source(self, size: int) -> np.ndarray:
        """(2, 3) affine map: source-image (x, y) -> pixel coordinates in the crop resized to ``size``."""
        scale = size / self.side
        turn = _rotation(self.roll)
        centre = np.array([self.x0, self.y0]) + self.side / 2
        offset = scale * (self.side / 2 - turn.T @ centre)
        return np.concatenate([scale * turn.T, offset[:, None]], axis=1)

    def to_crop(self, points: np.ndarray, size: int) -> np.ndarray:
        """Source-image (x, y) points -> pixel coordinates in the crop resized to ``size``."""
        return _apply(self.crop_from_source(size), points)

    def to_source(self, points: np.ndarray, size: int) -> np.ndarray:
        """Crop pixel coordinates (crop resized to ``size``) -> source-image points."""
        return _apply(cv2.invertAffineTransform(self.crop_from_source(size)), points)

    def corners(self) -> np.ndarray:
        """(4, 2) source-image corners of the (turned) square, clockwise from the crop's top-left."""
        return self.to_source(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64), 1)


def _rotation(degrees: float) -> np.ndarray:
    """(2, 2) rotation by ``degrees``, clockwise as displayed (image y points down)."""
    angle = np.radians(degrees)
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def face_roll(landmarks: np.ndarray) -> float:
    """A face's roll in degrees: the angle of its eye line (landmark 0 -> 1) to the image's x axis,
    positive = clockwise as displayed; in (-180, 180]."""
    lm = np.asarray(landmarks, np.float64)
    dx, dy = lm[1] - lm[0]
    return float(np.degrees(np.arctan2(dy, dx)))


def straightened(box: CropBox, landmarks: np.ndarray, beyond: float) -> CropBox:
    """``box`` turned by the face's roll if that exceeds ``beyond`` degrees, else ``box``."""
    roll = face_roll(landmarks)
    return CropBox(box.x0, box.y0, box.side, roll) if abs(roll) > beyond else box


def face_extent(landmarks: np.ndarray) -> float:
    """max(inter-ocular distance, eyes-to-mouth distance) of (5, 2) landmarks, in pixels."""
    lm = np.asarray(landmarks, np.float64)
    eyes = (lm[0] + lm[1]) / 2
    mouth = (lm[3] + lm[4]) / 2
    return float(max(np.linalg.norm(lm[0] - lm[1]), np.linalg.norm(eyes - mouth)))


def crop_box_from_landmarks(landmarks: np.ndarray, scale: float = CROP_SCALE) -> CropBox:
    """The square crop of the rule above. landmarks: (5, 2) x, y in source pixels."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (5, 2) or not np.isfinite(lm).all():
        raise ValueError(f"need 5 finite (x, y) landmarks, got shape {lm.shape}")
    eyes = (lm[0] + lm[1]) / 2
    mouth = (lm[3] + lm[4]) / 2
    centre = (eyes + mouth) / 2
    side = scale * face_extent(lm)
    if side < 1:
        raise ValueError("landmarks are degenerate (face extent below one pixel)")
    return CropBox(float(centre[0] - side / 2), float(centre[1] - side / 2), float(side))


def area_prefilter(image: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area-shrink ``image`` (H, W[, C]) by the integer part of the affine ``matrix``'s reduction
    (a bilinear warp alone aliases below half size, and warpAffine has no area filter); return it
    with the (2, 3) matrix that maps its pixels to the same output."""
    zoom = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    factor = int(1 / zoom)
    if factor < 2:
        return image, matrix
    height, width = image.shape[0] // factor, image.shape[1] // factor
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    # small pixel j has its centre at input ratio * j + (ratio - 1) / 2, per axis
    ratio = np.array([image.shape[1] / width, image.shape[0] / height])
    linear = matrix[:, :2] * ratio
    offset = matrix[:, 2] + matrix[:, :2] @ ((ratio - 1) / 2)
    return small, np.concatenate([linear, offset[:, None]], axis=1)


def crop_resize(image: np.ndarray, box: CropBox, size: int, nearest: bool = False) -> np.ndarray:
    """Cut ``box`` out of ``image`` (H, W[, C]) and resize to (size, size) in one affine warp
    (turned upright when the box has a roll; area pre-shrink when reducing a lot). nearest=True
    for label maps. Outside the photo the border is replicated.
    """
    matrix = box.crop_from_source(size)
    if nearest:
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    source, matrix = area_prefilter(image, matrix)
    return cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
