"""Training targets in the generator's tanh range [-1, 1], their decoders, and landmark errors.

* Detection: one Gaussian heatmap per landmark (Pfister et al., Payer et al.), value
  ``2 * exp(-d^2 / (2 sigma^2)) - 1``: -1 far away, +1 at the point. Pixel centres are at integer
  coordinates (as in ``transforms``). A point is **visible** when it is finite and inside the
  image area, ``-0.5 <= x < W - 0.5`` (same for y); invisible points get an all -1 channel.
  Decoding: argmax, then a parabola fit on the log of the 3x3 window's row and column sums,
  which is exact for a Gaussian of any sigma, also at the border. ``heatmaps_visible`` tells
  whether a channel has a peak at all; invisible channels decode to an arbitrary position.
* Segmentation: one channel per label, +1 inside the label and -1 elsewhere; decoded by argmax.
"""

from __future__ import annotations

import numpy as np
import torch

from collaface.contracts import NUM_CLASSES

_LOG_FLOOR = 1e-6  # keeps the log finite for predicted maps that touch -1 near the peak


def landmarks_visible(landmarks: torch.Tensor | np.ndarray, size: int) -> torch.Tensor:
    """(..., 5, 2) x, y pixels -> bool (..., 5): finite and inside a size x size image."""
    points = torch.as_tensor(landmarks, dtype=torch.float32)
    inside = (points >= -0.5) & (points < size - 0.5)  # False for NaN
    return inside.all(dim=-1)


def landmarks_to_heatmaps(
    landmarks: torch.Tensor | np.ndarray, size: int, sigma: float
) -> torch.Tensor:
    """(5, 2) or (B, 5, 2) x, y pixels -> float32 (5, size, size) or (B, 5, size, size) in [-1, 1]."""
    points = torch.as_tensor(landmarks, dtype=torch.float32)
    visible = landmarks_visible(points, size)
    points = torch.where(visible[..., None], points, torch.zeros_like(points))
    grid = torch.arange(size, dtype=torch.float32, device=points.device)
    # Separable Gaussian: (..., 5, size) profiles along x and y, outer product per point.
    gauss_x = torch.exp(-((grid - points[..., 0:1]) ** 2) / (2 * sigma**2))
    gauss_y = torch.exp(-((grid - points[..., 1:2]) ** 2) / (2 * sigma**2))
    gauss_y = gauss_y * visible[..., None]
    return (gauss_y[..., :, None] * gauss_x[..., None, :]).mul_(2).sub_(1)


def heatmaps_visible(heatmaps: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """(..., 5, H, W) -> bool (..., 5): the channel's peak exceeds ``threshold``.

    For a visible point and sigma >= 1 the encoded peak is above 0.55, so 0 separates cleanly.
    """
    return heatmaps.flatten(-2).amax(dim=-1) > threshold


def _log_parabola_vertex(left: torch.Tensor, mid: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Offset from ``mid`` of the maximum of the parabola through log values at -1, 0, +1."""
    log_l, log_m, log_r = (torch.log(v.clamp_min(_LOG_FLOOR)) for v in (left, mid, right))
    curvature = log_l - 2 * log_m + log_r
    slope = log_l - log_r
    # A flat or convex window (a degenerate prediction) has no maximum: keep the window centre.
    safe = torch.where(curvature < 0, curvature, -torch.ones_like(curvature))
    return torch.where(curvature < 0, slope / (2 * safe), torch.zeros_like(slope))


def heatmaps_to_landmarks(heatmaps: torch.Tensor) -> torch.Tensor:
    """(B, 5, H, W) or (5, H, W) in [-1, 1] -> float32 (B, 5, 2) or (5, 2) sub-pixel x, y."""
    height, width = heatmaps.shape[-2:]
    flat = heatmaps.detach().flatten(-2)
    peak = flat.argmax(dim=-1)
    peak_y, peak_x = peak // width, peak % width
    # 3x3 window around the peak, shifted inwards at the border (the fit needs no symmetry).
    centre_x = peak_x.clamp(1, max(width - 2, 1))
    centre_y = peak_y.clamp(1, max(height - 2, 1))
    offsets = torch.arange(-1, 2, device=heatmaps.device)
    rows = (centre_y[..., None] + offsets).clamp(0, height - 1)
    cols = (centre_x[..., None] + offsets).clamp(0, width - 1)
    index = (rows[..., :, None] * width + cols[..., None, :]).flatten(-2)
    # (..., 5, row, col) Gaussian values in [0, 1]
    window = (flat.gather(-1, index).float().unflatten(-1, (3, 3)) + 1) / 2
    col_sums, row_sums = window.sum(dim=-2), window.sum(dim=-1)
    x = centre_x + _log_parabola_vertex(col_sums[..., 0], col_sums[..., 1], col_sums[..., 2])
    y = centre_y + _log_parabola_vertex(row_sums[..., 0], row_sums[..., 1], row_sums[..., 2])
    # The true maximum lies within half a pixel of the argmax pixel.
    x = torch.minimum(torch.maximum(x, peak_x - 0.5), peak_x + 0.5)
    y = torch.minimum(torch.maximum(y, peak_y - 0.5), peak_y + 0.5)
    return torch.stack([x, y], dim=-1).float()


def parsing_to_onehot(parsing: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """int (H, W) or (B, H, W) labels -> float32 (C, H, W) or (B, C, H, W) in {-1, +1}."""
    classes = torch.arange(num_classes, device=parsing.device).view(num_classes, 1, 1)
    return (parsing.unsqueeze(-3) == classes).float() * 2 - 1


def onehot_to_parsing(maps: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) or (C, H, W) class scores -> int64 (B, H, W) or (H, W) labels by argmax."""
    return maps.argmax(dim=-3)


def landmark_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 5, 2), (B, 5, 2) -> (B, 5) Euclidean distances in pixels."""
    return torch.linalg.vector_norm(pred - target, dim=-1)


def interocular(target: torch.Tensor) -> torch.Tensor:
    """(B, 5, 2) -> (B,) distance between landmarks 0 and 1 (left and right eye)."""
    return torch.linalg.vector_norm(target[..., 0, :] - target[..., 1, :], dim=-1)
