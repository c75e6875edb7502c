"""Joint geometric augmentation of image, parsing and landmarks; image <-> tensor conversion.

Conventions
-----------
* **Pixel centres at integers** (cv2.warpAffine's): pixel column ``i`` covers ``[i - 0.5, i + 0.5]``
  and a landmark ``x = i`` sits on its centre. The same 2x3 matrix therefore maps landmarks and
  pixels, with no half-pixel correction anywhere.
* One warp per sample: flip about the centre, rotate and scale about the centre, then shift.
  ``AffineParams.identity()`` is a plain resize of the square input to ``out_size`` (pixel
  centres aligned like ``cv2.resize``: ``x_out = (x_in + 0.5) * out / in - 0.5``).
* Angles are degrees, positive = counter-clockwise as displayed (like cv2.getRotationMatrix2D);
  shifts are fractions of the output side, positive = content moves right / down.
* Border: replicated for the image (as the crop rule does) **and** for the parsing, so the label
  of every border pixel describes the replicated colour actually shown there (a background fill
  would label stretched hair or skin as background).
* Horizontal flip mirrors the arrays and then swaps left/right landmark indices
  (``labels.LANDMARK_FLIP``) and parsing labels (``labels.LABEL_FLIP``): with the image-side
  convention, "left_eye" is again the eye on the image's left.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from collaface.config import AugmentConfig
from collaface.data.crop import area_prefilter
from collaface.data.labels import LANDMARK_FLIP, flip_parsing_labels


@dataclass(frozen=True)
class AffineParams:
    """One random geometric augmentation (see the module conventions for units and signs)."""

    shift_x: float = 0.0   # fraction of the output side
    shift_y: float = 0.0
    scale: float = 1.0     # relative to fitting the input into the output
    angle: float = 0.0     # degrees, counter-clockwise
    flip: bool = False     # horizontal mirror (applied first)

    @classmethod
    def identity(cls) -> AffineParams:
        return cls()


def sample_affine(cfg: AugmentConfig, rng: np.random.Generator) -> AffineParams:
    """Draw shift, scale, rotation and flip from ``cfg``; identity when ``cfg.enabled`` is false."""
    if not cfg.enabled:
        return AffineParams.identity()
    shift_x, shift_y = rng.uniform(-cfg.shift, cfg.shift, size=2)
    return AffineParams(
        shift_x=float(shift_x),
        shift_y=float(shift_y),
        scale=float(rng.uniform(cfg.scale[0], cfg.scale[1])),
        angle=float(rng.uniform(-cfg.rotation, cfg.rotation)),
        flip=bool(rng.random() < cfg.flip),
    )


def affine_matrix(params: AffineParams, in_size: int, out_size: int) -> np.ndarray:
    """(2, 3) float64 matrix mapping input pixel coordinates to output pixel coordinates."""
    zoom = params.scale * out_size / in_size
    theta = np.deg2rad(params.angle)
    cos, sin = zoom * np.cos(theta), zoom * np.sin(theta)
    linear = np.array([[cos, sin], [-sin, cos]])
    if params.flip:
        linear[:, 0] *= -1
    in_centre = np.full(2, (in_size - 1) / 2)
    out_centre = (out_size - 1) / 2 + out_size * np.array([params.shift_x, params.shift_y])
    return np.concatenate([linear, (out_centre - linear @ in_centre)[:, None]], axis=1)


def warp_sample(
    image: np.ndarray,
    parsing: np.ndarray | None,
    landmarks: np.ndarray | None,
    params: AffineParams,
    out_size: int,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Apply one augmentation jointly to a square sample.

    image: uint8 (S, S, 3); parsing: uint8 (S, S) labels or None; landmarks: float32 (5, 2) x, y
    pixels or None. Returns (uint8 (out, out, 3), uint8 (out, out) | None, float32 (5, 2) | None);
    landmarks may fall outside the output (see ``targets.landmarks_visible``).
    Raises ValueError for a non-square image or a parsing map of another size.
    """
    side = image.shape[0]
    if image.ndim != 3 or image.shape[1] != side:
        raise ValueError(f"warp_sample needs a square (S, S, C) image, got shape {image.shape}")
    if parsing is not None and parsing.shape != image.shape[:2]:
        raise ValueError(f"parsing shape {parsing.shape} does not match image {image.shape[:2]}")
    matrix = affine_matrix(params, side, out_size)
    dsize = (out_size, out_size)

    source, image_matrix = area_prefilter(image, matrix)
    out_image = cv2.warpAffine(
        source, image_matrix, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    out_parsing = None
    if parsing is not None:
        out_parsing = cv2.warpAffine(
            parsing, matrix, dsize, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE
        )
        if params.flip:
            out_parsing = flip_parsing_labels(out_parsing)
    out_landmarks = None
    if landmarks is not None:
        points = np.asarray(landmarks, np.float64)
        out_landmarks = (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
        if params.flip:
            out_landmarks = out_landmarks[LANDMARK_FLIP]
    return out_image, out_parsing, out_landmarks


def to_tensor_image(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    return tensor / 127.5 - 1


def to_uint8_image(tensor: torch.Tensor) -> np.ndarray:
    """float (3, H, W) or (B, 3, H, W) in [-1, 1] -> uint8 (H, W, 3) or (B, H, W, 3), rounded
    to nearest and clipped (inverse of ``to_tensor_image``)."""
    scaled = ((tensor.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255)
    return scaled.to(torch.uint8).movedim(-3, -1).numpy()
