"""Hole masks for training and evaluation, and the two helpers that apply them.

Convention everywhere: a mask is float32 ``(H, W)`` with **1 = hole (missing), 0 = known**.

* Random masks (block, pattern, noise, free-form) are pure functions of an explicit
  ``numpy.random.Generator``; evaluation draws its generator from :func:`eval_rng`, keyed by
  (seed, sample index), so two runs see identical masks.
* Face regions (the paper's occlusions O1-O6 and the photo tool's regions) are deterministic
  rectangles placed from the 5 landmarks (see :func:`region_boxes`).
* :func:`apply_mask` fills the hole (uniform noise in [-1, 1], the paper's z, or zeros, per
  :data:`MASK_FILL`); :func:`composite` pastes known pixels back onto a prediction.

``size`` arguments are the side of a square image or an ``(height, width)`` pair.
"""

from __future__ import annotations

import math
import zlib
from typing import TYPE_CHECKING

import cv2
import numpy as np

from collaface.config import MaskConfig

if TYPE_CHECKING:  # torch is imported where tensors are made: the photo path runs without it
    import torch

MASK_FILL: dict[str, str] = {
    "block": "noise",
    "pattern": "zeros",
    "noise": "noise",
    "freeform": "noise",
    "occlusion": "noise",
    "region": "noise",
}
FILLS = ("noise", "zeros")
MIN_SIZE = 16
REFERENCE_SIZE = 128  # the paper's image size; mask sizes in the config are given at this size

# Random pattern (Context Encoders): uniform noise upscaled bilinearly by this factor of the image
# side (CE: a 600x600 grid blown up to 10000 px, i.e. ~16.7 px cells at 128 px) and thresholded.
PATTERN_CELL = (10000 / 600) / REFERENCE_SIZE

# Free-form brush strokes (DeepFill v2 / LaMa style), lengths as fractions of the image side.
STROKE_VERTICES = (1, 8)          # vertices per stroke (inclusive)
STROKE_SEGMENT = (0.05, 0.25)     # segment length
STROKE_WIDTH = (0.04, 0.10)       # brush width
STROKE_MAX_TURN = math.radians(75)  # max direction change between segments
FREEFORM_MAX_STROKES = 200        # strokes tried before giving up on the area range

OCCLUSIONS: dict[str, str] = {
    "O1": "left-eye",
    "O2": "right-eye",
    "O3": "upper-face",
    "O4": "left-face",
    "O5": "right-face",
    "O6": "lower-face",
}
REGIONS = (
    "left-eye", "right-eye", "eyes", "nose", "mouth",
    "upper-face", "left-face", "right-face", "lower-face",
)


# --------------------------------------------------------------------------- helpers


def _shape(size: int | tuple[int, int]) -> tuple[int, int]:
    """``size`` -> (height, width), both >= MIN_SIZE."""
    dims = (size, size) if np.isscalar(size) else tuple(size)
    if len(dims) != 2 or any(int(v) != v for v in dims) or min(dims) < MIN_SIZE:
        raise ValueError(f"mask size must be a side or (height, width), integers >= {MIN_SIZE}; got {size!r}")
    return int(dims[0]), int(dims[1])


def _check_fraction(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be a fraction in (0, 1), got {value!r}")


def eval_rng(seed: int, index: int, stream: str = "") -> np.random.Generator:
    """Generator for evaluation sample ``index``: a pure function of (seed, index, stream).

    ``stream`` separates independent draws for the same sample (e.g. "mask", "fill").
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng(np.random.SeedSequence([seed, index, zlib.crc32(stream.encode())]))


# --------------------------------------------------------------------------- random masks


def block_mask(size: int | tuple[int, int], rng: np.random.Generator, block: int = 64) -> np.ndarray:
    """One ``block`` x ``block`` square hole at a uniform position fully inside the image. -> (H, W)."""
    height, width = _shape(size)
    if not 1 <= block <= min(height, width):
        raise ValueError(f"block must be in [1, {min(height, width)}] for size {size!r}, got {block}")
    top = int(rng.integers(0, height - block + 1))
    left = int(rng.integers(0, width - block + 1))
    mask = np.zeros((height, width), np.float32)
    mask[top:top + block, left:left + block] = 1
    return mask


def pattern_mask(
    size: int | tuple[int, int], rng: np.random.Generator, missing: float = 0.25
) -> np.ndarray:
    """Context Encoders' random pattern: irregular blobs covering ``missing`` of the image. -> (H, W).

    Coarse uniform noise (cells of ``PATTERN_CELL`` x image side) is upscaled bilinearly, cropped at
    a random offset and thresholded at its ``missing`` quantile, so the hole fraction equals
    ``missing`` up to ties (CE instead rejects crops outside 20-30%).
    """
    height, width = _shape(size)
    _check_fraction("missing", missing)
    cell = PATTERN_CELL * max(height, width)
    coarse = rng.random((math.ceil(height / cell) + 2, math.ceil(width / cell) + 2)).astype(np.float32)
    fine_size = (round(coarse.shape[1] * cell), round(coarse.shape[0] * cell))  # (width, height)
    smooth = cv2.resize(coarse, fine_size, interpolation=cv2.INTER_LINEAR)
    top = int(rng.integers(0, smooth.shape[0] - height + 1))
    left = int(rng.integers(0, smooth.shape[1] - width + 1))
    field = smooth[top:top + height, left:left + width]
    return (field < np.quantile(field, missing)).astype(np.float32)


def noise_mask(size: int | tuple[int, int], rng: np.random.Generator, missing: float = 0.8) -> np.ndarray:
    """Each pixel missing independently with probability ``missing`` (SII's noise mask). -> (H, W)."""
    _check_fraction("missing", missing)
    return (rng.random(_shape(size)) < missing).astype(np.float32)


def _brush_stroke(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One random polyline brush stroke with round joints. -> (H, W) uint8 in {0, 1}."""
    side = max(height, width)
    stroke = np.zeros((height, width), np.uint8)
    brush = max(1, round(rng.uniform(*STROKE_WIDTH) * side))
    point = np.array([rng.uniform(0, width - 1), rng.uniform(0, height - 1)])
    angle = rng.uniform(0, 2 * math.pi)
    start = tuple(int(v) for v in np.round(point))
    cv2.circle(stroke, start, brush // 2, 1, -1)
    for _ in range(int(rng.integers(STROKE_VERTICES[0], STROKE_VERTICES[1] + 1))):
        angle += rng.uniform(-STROKE_MAX_TURN, STROKE_MAX_TURN)
        length = rng.uniform(*STROKE_SEGMENT) * side
        step = length * np.array([math.cos(angle), math.sin(angle)])
        point = np.clip(point + step, 0, [width - 1, height - 1])
        end = tuple(int(v) for v in np.round(point))
        cv2.line(stroke, start, end, 1, brush)
        cv2.circle(stroke, end, brush // 2, 1, -1)
        start = end
    return stroke


def freeform_mask(
    size: int | tuple[int, int], rng: np.random.Generator, area: tuple[float, float] = (0.1, 0.5)
) -> np.ndarray:
    """Free-form brush strokes (DeepFill v2 / LaMa) with hole fraction inside ``area``. -> (H, W).

    A target fraction is drawn uniformly in ``area``; strokes are added until the hole reaches it.
    A stroke that would push the hole above ``area[1]`` ends the mask if it is already inside
    ``area``, and is redrawn otherwise.
    """
    height, width = _shape(size)
    low, high = area
    if not 0 <= low < high <= 1:
        raise ValueError(f"area must satisfy 0 <= min < max <= 1, got {area!r}")
    target = rng.uniform(low, high)
    mask = np.zeros((height, width), np.uint8)
    for _ in range(FREEFORM_MAX_STROKES):
        candidate = mask | _brush_stroke(height, width, rng)
        if candidate.mean() <= high:
            mask = candidate
            if mask.mean() >= target:
                return mask.astype(np.float32)
        elif mask.any() and mask.mean() >= low:
            return mask.astype(np.float32)
    raise ValueError(f"no free-form mask with hole fraction in {area} after {FREEFORM_MAX_STROKES} strokes")


def sample_train_mask(cfg: MaskConfig, size: int, rng: np.random.Generator,
                      landmarks: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """One training mask of a kind drawn by ``cfg.weights``. -> ((H, W) mask, fill "noise"|"zeros").

    ``cfg.block_size`` is given at 128 px and scaled by ``size / 128``. The "region" kind needs
    the face's (5, 2) ``landmarks`` at ``size``; without them (or with unusable ones) it draws a
    block instead.
    """
    if len(cfg.kinds) != len(cfg.weights) or not cfg.kinds:
        raise ValueError("MaskConfig needs one weight per kind and at least one kind")
    weights = np.asarray(cfg.weights, np.float64)
    kind = cfg.kinds[int(rng.choice(len(cfg.kinds), p=weights / weights.sum()))]
    if kind == "block":
        mask = block_mask(size, rng, max(1, round(cfg.block_size * size / REFERENCE_SIZE)))
    elif kind == "pattern":
        mask = pattern_mask(size, rng, cfg.pattern_missing)
    elif kind == "noise":
        mask = noise_mask(size, rng, cfg.noise_missing)
    elif kind == "freeform":
        mask = freeform_mask(size, rng, cfg.freeform_area)
    elif kind == "region":
        mask = jittered_region_mask(landmarks, size, rng, cfg.region_jitter)
        if mask is None:
            mask = block_mask(size, rng, max(1, round(cfg.block_size * size / REFERENCE_SIZE)))
    else:
        raise ValueError(f"unknown mask kind {kind!r}; choose from block, pattern, noise, freeform, region")
    return mask, MASK_FILL[kind]


# --------------------------------------------------------------------------- face regions


def region_boxes(landmarks: np.ndarray) -> dict[str, tuple[float, float, float, float]]:
    """Rectangles ``(x0, y0, x1, y1)`` of every rectangular face region, in landmark pixels.

    landmarks: (5, 2) x, y in our order (left eye, right eye, nose, left mouth, right mouth;
    "left" = the image's left). With d = inter-ocular distance, m = distance from the eyes'
    midpoint to the mouth corners' midpoint, and xc = x midway between those two midpoints:

    ============ ================================================ ==================================
    region       x range                                          y range
    ============ ================================================ ==================================
    left-eye     left eye x -/+ 0.35 d                            left eye y - 0.4 m .. + 0.35 m
    right-eye    right eye x -/+ 0.35 d                           right eye y - 0.4 m .. + 0.35 m
    nose         nose x -/+ 0.3 d                                 nose y - 0.45 m .. + 0.2 m
    mouth        mouth corners' x - 0.2 d .. + 0.2 d              mouth corners' y - 0.25 m .. + 0.3 m
    upper-face   eyes' x - 0.35 d .. + 0.35 d                     eyes' y - 0.55 m .. + 0.35 m
    left-face    left eye/mouth x - 0.3 d .. xc                   left eye/mouth y - 0.4 m .. + 0.4 m
    right-face   xc .. right eye/mouth x + 0.3 d                  right eye/mouth y - 0.4 m .. + 0.4 m
    lower-face   mouth corners' x - 0.25 d .. + 0.25 d            nose y .. mouth corners' y + 0.45 m
    ============ ================================================ ==================================

    "eyes' x" etc. means from the smaller to the larger coordinate of those points. Meant for
    roughly upright faces (the boxes are axis-aligned). On the 197 official CelebA landmark rows
    mapped into 128 px training crops, O1-O6 average 40.1 x 48.2 px (w x h; paper: 40 x 48).
    """
    points = np.asarray(landmarks, np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise ValueError(f"need 5 finite (x, y) landmarks, got shape {points.shape}")
    left_eye, right_eye, nose, left_mouth, right_mouth = points
    eyes_mid, mouth_mid = (left_eye + right_eye) / 2, (left_mouth + right_mouth) / 2
    d = float(np.linalg.norm(left_eye - right_eye))
    m = float(np.linalg.norm(eyes_mid - mouth_mid))
    if d < 1e-3 or m < 1e-3:
        raise ValueError("landmarks are degenerate (eyes or eyes-to-mouth distance is zero)")
    xc = (eyes_mid[0] + mouth_mid[0]) / 2

    def span(*pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stacked = np.stack(pts)
        return stacked.min(0), stacked.max(0)

    def around(lo: np.ndarray, hi: np.ndarray, dx0: float, dy0: float, dx1: float, dy1: float):
        return (lo[0] - dx0 * d, lo[1] - dy0 * m, hi[0] + dx1 * d, hi[1] + dy1 * m)

    eyes_lo, eyes_hi = span(left_eye, right_eye)
    mouth_lo, mouth_hi = span(left_mouth, right_mouth)
    left_lo, left_hi = span(left_eye, left_mouth)
    right_lo, right_hi = span(right_eye, right_mouth)
    return {
        "left-eye": around(left_eye, left_eye, 0.35, 0.4, 0.35, 0.35),
        "right-eye": around(right_eye, right_eye, 0.35, 0.4, 0.35, 0.35),
        "nose": around(nose, nose, 0.3, 0.45, 0.3, 0.2),
        "mouth": around(mouth_lo, mouth_hi, 0.2, 0.25, 0.2, 0.3),
        "upper-face": around(eyes_lo, eyes_hi, 0.35, 0.55, 0.35, 0.35),
        "left-face": (left_lo[0] - 0.3 * d, left_lo[1] - 0.4 * m, xc, left_hi[1] + 0.4 * m),
        "right-face": (xc, right_lo[1] - 0.4 * m, right_hi[0] + 0.3 * d, right_hi[1] + 0.4 * m),
        "lower-face": (mouth_lo[0] - 0.25 * d, nose[1], mouth_hi[0] + 0.25 * d, mouth_hi[1] + 0.45 * m),
    }


def _rectangle(box: tuple[float, float, float, float], height: int, width: int) -> np.ndarray:
    """Pixels whose centre (integer coordinates) lies in [x0, x1) x [y0, y1), clipped. -> (H, W)."""
    x0, y0, x1, y1 = (math.ceil(v) for v in box)
    mask = np.zeros((height, width), np.float32)
    mask[max(y0, 0):max(min(y1, height), 0), max(x0, 0):max(min(x1, width), 0)] = 1
    return mask


def region_mask(name: str, landmarks: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Hole over a named face region (see :data:`REGIONS`, :func:`region_boxes`). -> (H, W).

    landmarks: (5, 2) in pixels of the ``size`` image. "eyes" is the union of both eye boxes.
    """
    if name not in REGIONS:
        raise ValueError(f"unknown region {name!r}; choose from {', '.join(REGIONS)}")
    height, width = _shape(size)
    boxes = region_boxes(landmarks)
    if name == "eyes":
        left, right = (_rectangle(boxes[eye], height, width) for eye in ("left-eye", "right-eye"))
        return np.maximum(left, right)
    return _rectangle(boxes[name], height, width)


def jittered_region_mask(landmarks: np.ndarray | None, size: int, rng: np.random.Generator,
                         jitter: float) -> np.ndarray | None:
    """A random face region of :data:`REGIONS` (what people hide: an eye, the eyes, the mouth, a
    half) with its box scaled by up to 1 +/- ``jitter`` per side and shifted by up to ``jitter`` of
    its size. -> (size, size) mask, or None when ``landmarks`` are missing or degenerate."""
    if landmarks is None or not np.isfinite(landmarks).all():
        return None
    name = REGIONS[int(rng.integers(len(REGIONS)))]
    try:
        boxes = region_boxes(landmarks)
    except ValueError:
        return None
    parts = ("left-eye", "right-eye") if name == "eyes" else (name,)
    mask = np.zeros((size, size), np.float32)
    for part in parts:
        x0, y0, x1, y1 = boxes[part]
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2 + rng.uniform(-jitter, jitter) * w, (y0 + y1) / 2 + rng.uniform(-jitter, jitter) * h
        w, h = w * rng.uniform(1 - jitter, 1 + jitter), h * rng.uniform(1 - jitter, 1 + jitter)
        mask = np.maximum(mask, _rectangle((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), size, size))
    return mask if mask.any() else None


def occlusion_mask(kind: str, landmarks: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """The paper's fixed occlusion ``kind`` ("O1".."O6", see :data:`OCCLUSIONS`). -> (H, W).

    O1 left eye, O2 right eye, O3 upper face, O4 left face, O5 right face, O6 lower face, with
    sides on the image (O1 covers landmark 0); rectangles from :func:`region_boxes`.
    """
    if kind not in OCCLUSIONS:
        raise ValueError(f"unknown occlusion {kind!r}; choose from {', '.join(OCCLUSIONS)}")
    return region_mask(OCCLUSIONS[kind], landmarks, size)


# --------------------------------------------------------------------------- applying masks


def apply_mask(
    image: torch.Tensor,
    mask: torch.Tensor | np.ndarray,
    fill: str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill the hole of ``image`` with uniform noise in [-1, 1] (the paper's z) or zeros.

    image: (3, H, W) or (B, 3, H, W) in [-1, 1]; mask: (H, W), (1, H, W) or (B, 1, H, W), 1 = hole
    (values > 0.5 count as hole). Known pixels are returned bit-identical. Noise is drawn from
    ``generator`` on its device and moved to the image's device; None uses torch's global
    generator of the image's device.
    """
    import torch

    if fill not in FILLS:
        raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
    if image.dim() not in (3, 4):
        raise ValueError(f"image must be (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
    hole = torch.as_tensor(mask, device=image.device) > 0.5
    if hole.dim() == 2:
        hole = hole[None]
    if not 3 <= hole.dim() <= image.dim() or hole.shape[-3] != 1 or hole.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"mask {tuple(hole.shape)} does not match image {tuple(image.shape)}")
    if fill == "zeros":
        filler = torch.zeros((), dtype=image.dtype, device=image.device)
    else:
        device = generator.device if generator is not None else image.device
        noise = torch.rand(image.shape, generator=generator, device=device, dtype=torch.float32)
        filler = (noise * 2 - 1).to(device=image.device, dtype=image.dtype)
    return torch.where(hole, filler, image)

