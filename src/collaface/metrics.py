"""Completion metrics (SSIM, PSNR, hole L1, hole sharpness), Dice, landmark NME, bootstrap CIs.

Conventions
-----------
* Images are float tensors ``(B, C, H, W)`` of 8-bit values in [0, 255] (:func:`to_255`): the
  metrics score the uint8 image a user gets, with known pixels pasted back (``contracts.composite``).
* Masks are ``(B, 1, H, W)`` with **1 = hole**. A hole metric of an image without hole is NaN.
* Every per-image function returns a ``(B,)`` tensor (float64 unless stated); aggregation and
  confidence intervals work on numpy arrays of those per-face values.

SSIM is Wang et al. (2004) as scikit-image computes it, per image, with
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255, channel_axis=-1)``: an 11-tap Gaussian window (sigma 1.5, truncated at 3.5
sigma), K1 = 0.01, K2 = 0.03, population covariances, the mean over the pixels whose window lies
inside the image and over channels. (torchmetrics 1.9 also averages over its reflect-padded
border, ~3e-4 off; scikit-image is as fast here, ~4 ms per 128 px image.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from skimage.metrics import structural_similarity

DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
PSNR_CAP = 100.0  # dB; identical images have PSNR = inf, capped to this for averaging (cap_psnr)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights for the sharpness measure
SHARPNESS_EPS = 1.0  # gray levels^2 per pixel pair, keeps the ratio finite for flat holes


def to_255(image: torch.Tensor) -> torch.Tensor:
    """float (..., 3, H, W) in [-1, 1] -> float32 of the uint8 values (rounded, clipped) in [0, 255]."""
    return ((image.detach().float() + 1) * 127.5).round().clamp(0, 255)


# --------------------------------------------------------------------------- image metrics


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """SSIM of each image pair by scikit-image (see the module docstring).
    (B, C, H, W) x2 -> float64 (B,) in [-1, 1]; H and W must be at least 11."""
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"ssim needs two (B, C, H, W) tensors of one shape, "
                         f"got {tuple(pred.shape)}, {tuple(target.shape)}")
    x = pred.detach().double().cpu().permute(0, 2, 3, 1).numpy()
    y = target.detach().double().cpu().permute(0, 2, 3, 1).numpy()
    return torch.tensor([
        structural_similarity(a, b, gaussian_weights=True, sigma=SSIM_SIGMA, use_sample_covariance=False,
                              K1=SSIM_K1, K2=SSIM_K2, data_range=data_range, channel_axis=-1)
        for a, b in zip(x, y)
    ], dtype=torch.float64)


def _hole_weights(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != like.shape[-2:] or mask.shape[0] != like.shape[0]:
        raise ValueError(f"mask must be (B, 1, H, W) matching {tuple(like.shape)}, got {tuple(mask.shape)}")
    return (mask > 0.5).to(like.dtype).expand_as(like)


def _per_image_sum(values: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> float64 (B,) sums (float32 elements, float64 accumulation)."""
    return values.flatten(1).sum(dim=1, dtype=torch.float64)


def psnr(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, data_range: float = DATA_RANGE
) -> torch.Tensor:
    """PSNR in dB over all pixels and channels, or over the hole pixels only when ``mask`` is given.

    (B, C, H, W) x2 [, (B, 1, H, W)] -> float64 (B,); +inf for identical images (as scikit-image),
    NaN for an empty hole.
    """
    if pred.shape != target.shape:
        raise ValueError(f"psnr needs tensors of one shape, got {tuple(pred.shape)}, {tuple(target.shape)}")
    squared = (pred.float() - target.float()) ** 2  # exact for 8-bit values
    if mask is None:
        mse = _per_image_sum(squared) / squared[0].numel()
    else:
        weights = _hole_weights(mask, squared)
        mse = _per_image_sum(squared * weights) / _per_image_sum(weights)
    return 10 * torch.log10(data_range**2 / mse)


def cap_psnr(values: np.ndarray) -> np.ndarray:
    """Per-face PSNR with +inf (identical images) replaced by PSNR_CAP, so means stay finite."""
    return np.minimum(values, PSNR_CAP)


def hole_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the hole pixels and channels, in gray levels. -> float64 (B,)."""
    diff = (pred.float() - target.float()).abs()
    weights = _hole_weights(mask, diff)
    return _per_image_sum(diff * weights) / _per_image_sum(weights)


def hole_gradient_energy(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared luma difference between horizontally or vertically adjacent pixels that are
    both in the hole: the hole's high-frequency energy. (B, 3, H, W), (B, 1, H, W) -> float64 (B,)."""
    luma = (image.float() * torch.tensor(LUMA, device=image.device).view(1, 3, 1, 1)).sum(1)
    hole = mask[:, 0] > 0.5
    pairs_x = (hole[:, :, 1:] & hole[:, :, :-1]).float()
    pairs_y = (hole[:, 1:, :] & hole[:, :-1, :]).float()
    energy = _per_image_sum(luma.diff(dim=2) ** 2 * pairs_x) + _per_image_sum(luma.diff(dim=1) ** 2 * pairs_y)
    return energy / (_per_image_sum(pairs_x) + _per_image_sum(pairs_y))


def sharpness_ratio(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hole gradient energy of ``pred`` over that of ``target`` (+SHARPNESS_EPS each). -> float64 (B,).

    1 = as much fine detail in the hole as the original; < 1 blurrier (a smooth smudge scores
    near 0 however good its PSNR); > 1 noisier. Unlike PSNR/SSIM it does not reward blur, but it
    does not check that the detail is the right one: read it beside them.
    """
    return (hole_gradient_energy(pred, mask) + SHARPNESS_EPS) / (hole_gradient_energy(target, mask) + SHARPNESS_EPS)


# --------------------------------------------------------------------------- parsing and landmarks


def dice_counts(
    pred: torch.Tensor, target: torch.Tensor, labels: tuple[int, ...], region: torch.Tensor | None = None
) -> torch.Tensor:
    """Per image and label: [2 |P & G|, |P| + |G|] counted inside ``region`` (all pixels if None).

    pred, target: int (B, H, W) label maps; region: (B, 1, H, W) or (B, H, W), nonzero = counted.
    -> float64 (B, len(labels), 2). Pool them over faces with :func:`pooled_dice`.
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"dice_counts needs two (B, H, W) label maps, got {tuple(pred.shape)}, {tuple(target.shape)}")
    batch = pred.shape[0]
    classes = int(max(pred.max(), target.max(), max(labels))) + 1
    # One confusion matrix (truth x prediction) per image, from a single bincount.
    codes = (torch.arange(batch, device=pred.device).view(batch, 1, 1) * classes + target) * classes + pred
    if region is not None:
        codes = torch.where(region.reshape(pred.shape) > 0.5, codes, -1)
    codes = codes.flatten()
    confusion = torch.bincount(codes[codes >= 0], minlength=batch * classes * classes)
    confusion = confusion.view(batch, classes, classes).double().cpu()
    chosen = torch.tensor(labels)
    overlap = confusion.diagonal(dim1=1, dim2=2)[:, chosen]
    sizes = confusion.sum(dim=2)[:, chosen] + confusion.sum(dim=1)[:, chosen]  # |G| + |P|
    return torch.stack([2 * overlap, sizes], dim=-1)


def pooled_dice(counts: np.ndarray) -> np.ndarray:
    """Dice per label over a set of faces, 2 sum|P & G| / sum(|P| + |G|). (..., N, K, 2) -> (..., K);
    NaN for a label absent from both prediction and truth in every face."""
    totals = np.asarray(counts, np.float64).sum(axis=-3)
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals[..., 0] / totals[..., 1]


def mean_pooled_dice(counts: np.ndarray) -> np.ndarray:
    """Statistic: pooled Dice (%) averaged over labels, labels absent everywhere skipped.
    (..., N, K, 2) -> (...)."""
    with np.errstate(invalid="ignore"):
        return np.nanmean(pooled_dice(counts), axis=-1) * 100


def mean_point_error(errors: np.ndarray) -> np.ndarray:
    """Statistic: landmark error averaged over faces and points. (..., N, P) -> (...)."""
    return np.asarray(errors).mean(axis=(-1, -2))


def normalized_mean_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean landmark distance divided by the inter-ocular distance (landmarks 0 and 1).
    (B, 5, 2) x2 -> float64 (B,)."""
    error = torch.linalg.vector_norm(pred.double() - target.double(), dim=-1).mean(dim=-1)
    interocular = torch.linalg.vector_norm(target[..., 0, :].double() - target[..., 1, :].double(), dim=-1)
    return error / interocular


# --------------------------------------------------------------------------- aggregation


def mean(samples: np.ndarray) -> np.ndarray:
    """Statistic: mean over faces. (..., N) -> (...)."""
    return samples.mean(axis=-1)


def geometric_mean(samples: np.ndarray) -> np.ndarray:
    """Statistic: geometric mean over faces (for ratios such as :func:`sharpness_ratio`). (..., N) -> (...)."""
    return np.exp(np.log(samples).mean(axis=-1))


def bootstrap_ci(
    samples: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    resamples: int,
    seed: int,
    level: float = 0.95,
    chunk: int = 100,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over faces (the first axis).

    samples: (N, ...) per-face values; statistic: maps (R, N, ...) resampled faces to (R,) values
    (vectorised over R, e.g. :func:`mean` for 1-D samples). The resampled indices depend only on
    (seed, N), so metrics of one face set share them (paired comparisons stay paired).
    Returns (nan, nan) when ``resamples`` is 0 or there are no faces.
    """
    samples = np.asarray(samples)
    count = len(samples)
    if resamples == 0 or count == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng([seed, count])
    values = []
    for start in range(0, resamples, chunk):
        indices = rng.integers(0, count, size=(min(chunk, resamples - start), count))
        values.append(np.asarray(statistic(samples[indices]), np.float64))
    values = np.concatenate(values)
    if np.isnan(values).all():
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def summarize(
    samples: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], resamples: int, seed: int
) -> dict[str, float | int]:
    """{"value", "low", "high", "n"}: the statistic over all faces and its 95% bootstrap CI."""
    samples = np.asarray(samples)
    value = float(statistic(samples[None])[0]) if len(samples) else float("nan")
    low, high = bootstrap_ci(samples, statistic, resamples, seed)
    return {"value": value, "low": low, "high": high, "n": len(samples)}


def paired_summary(
    a: np.ndarray, b: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], resamples: int, seed: int
) -> dict[str, float | int]:
    """statistic(a) - statistic(b) on the same faces (row k of ``a`` and ``b`` is one face), with
    a 95% CI from resampling faces jointly (a paired bootstrap). a, b: (N, ...) of one shape."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have one shape, got {a.shape} and {b.shape}")

    def difference(samples: np.ndarray) -> np.ndarray:  # (R, N, 2, ...) -> (R,)
        return statistic(samples[:, :, 0]) - statistic(samples[:, :, 1])

    return summarize(np.stack([a, b], axis=1), difference, resamples, seed)
