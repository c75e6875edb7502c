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

Back in the photo (completion): :func:`box_mask` (the photo pixels inside a crop),
:func:`region_hole` (a named region placed in a crop's upright frame) and :func:`paste_back`
(a completed crop written into the photo inside the hole only). Holes are (H, W) bool, True =
hole; coordinates are (x, y) pixels, pixel centres at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from collaface.blending import poisson_blend
from collaface.data.masks import region_mask

CROP_SCALE = 3.0
BLEND_MODES = ("poisson", "none")
BLEND_MARGIN = 4              # known pixels around the hole's box that the Poisson solve sees
SMOOTH_FROM_SCALE = 2.0       # photo pixels per model pixel from which the fill is low-passed before upsampling
BINOMIAL_3 = np.array([[0.25, 0.5, 0.25]], np.float32)  # zero gain at the model's Nyquist frequency


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


# --------------------------------------------------------------------------- back in the photo


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


def region_hole(region: str, landmarks: np.ndarray, box: CropBox, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool hole over a named region of the face with (5, 2) photo-pixel ``landmarks``;
    placed in the face's upright frame when its crop ``box`` is turned."""
    if box.roll == 0:
        return region_mask(region, landmarks, shape) > 0
    side = max(round(box.side), 1)  # the straightened crop at about one photo pixel per pixel
    upright = region_mask(region, box.to_crop(landmarks, side), side)
    return cv2.warpAffine(upright, box.crop_from_source(side), (shape[1], shape[0]),
                          flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0) > 0
