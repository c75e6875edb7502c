"""The face-crop rule shared by ``prepare``, the CelebA loaders and inference.

Paper rule (section 4.1): a square crop that contains eyes, nose and mouth, with **no
alignment** (no rotation, no eye-based warping). From the 5 landmarks (image pixels, our
image-side order: left eye, right eye, nose, left mouth, right mouth):

* ``eyes`` = midpoint of the eyes, ``mouth`` = midpoint of the mouth corners;
* ``extent`` = max(inter-ocular distance, eyes-to-mouth distance);
* centre = midpoint of ``eyes`` and ``mouth``; side = ``CROP_SCALE * extent``.

Parts of the square outside the photo are filled by replicating the border (as CelebA does).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CROP_SCALE = 3.0


@dataclass(frozen=True)
class CropBox:
    """Square crop in source-image pixels: top-left (x0, y0) and side length (may exceed the image)."""

    x0: float
    y0: float
    side: float

    def to_crop(self, points: np.ndarray, size: int) -> np.ndarray:
        """Source-image (x, y) points -> pixel coordinates in the crop resized to ``size``."""
        scale = size / self.side
        return ((np.asarray(points, np.float32) - [self.x0, self.y0]) * scale).astype(np.float32)

    def to_source(self, points: np.ndarray, size: int) -> np.ndarray:
        """Crop pixel coordinates (crop resized to ``size``) -> source-image points."""
        scale = self.side / size
        return (np.asarray(points, np.float32) * scale + [self.x0, self.y0]).astype(np.float32)


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
    (area pre-shrink when reducing a lot). nearest=True for label maps. Outside the photo the
    border is replicated.
    """
    scale = size / box.side
    matrix = np.array([[scale, 0, -box.x0 * scale], [0, scale, -box.y0 * scale]], np.float64)
    if nearest:
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    source, matrix = area_prefilter(image, matrix)
    return cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
