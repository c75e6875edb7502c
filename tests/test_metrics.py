"""Metrics against scikit-image and hand-made cases; bootstrap CIs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from collaface import metrics


def as_batch(*images: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) images -> float (B, 3, H, W) in [0, 255]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, channel_axis=-1)


def image_pairs():
    """Noise, smooth gradients with noise, and a blurred face-like blob, in non-square sizes."""
    rng = np.random.default_rng(0)
    pairs = []
    for height, width in ((32, 32), (48, 40), (128, 128)):
        noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        pairs.append((noise, np.clip(noise + rng.normal(0, 25, noise.shape), 0, 255).astype(np.uint8)))
        ramp = np.linspace(0, 255, width)[None, :, None] * np.linspace(0.3, 1, height)[:, None, None]
        smooth = np.repeat(ramp, 3, axis=2).astype(np.uint8)
        pairs.append((smooth, np.clip(smooth + rng.normal(0, 4, smooth.shape), 0, 255).astype(np.uint8)))
    return pairs


@pytest.mark.parametrize("index", range(6))
def test_ssim_equals_scikit_image(index):
    a, b = image_pairs()[index]
    ours = float(metrics.ssim(as_batch(a), as_batch(b))[0])
    assert ours == pytest.approx(skimage_ssim(a, b), abs=1e-12)


def test_ssim_batched_equals_one_at_a_time_and_is_symmetric():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 30, a.shape), 0, 255).astype(np.uint8)
    batched = metrics.ssim(as_batch(*a), as_batch(*b))
    expected = [skimage_ssim(x, y) for x, y in zip(a, b)]
    assert np.allclose(batched.numpy(), expected, rtol=0, atol=1e-12)
    assert torch.allclose(metrics.ssim(as_batch(*b), as_batch(*a)), batched)


def test_identical_images_ssim_100_psnr_inf_capped():
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = as_batch(image)
    assert float(metrics.ssim(x, x)[0]) * 100 == 100.0
    value = metrics.psnr(x, x).numpy()
    assert math.isinf(value[0]) and value[0] > 0
    assert metrics.cap_psnr(value)[0] == metrics.PSNR_CAP


def test_known_noise_gives_known_psnr():
    """+-d on a mid-gray image: MSE = d^2 exactly, PSNR = 20 log10(255 / d), as scikit-image."""
    target = np.full((32, 32, 3), 128, np.uint8)
    signs = np.random.default_rng(2).choice([-1, 1], target.shape)
    for d in (1, 5, 20):
        pred = (target + d * signs).astype(np.uint8)
        ours = float(metrics.psnr(as_batch(pred), as_batch(target))[0])
        assert ours == pytest.approx(20 * math.log10(255 / d), abs=1e-9)
        assert ours == pytest.approx(peak_signal_noise_ratio(target, pred, data_range=255), abs=1e-9)


def test_hole_psnr_and_l1_count_hole_pixels_only():
    target = torch.full((1, 3, 16, 16), 100.0)
    pred = target.clone()
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:8, 4:8] = 1
    pred[..., 4:8, 4:8] += 10   # error inside the hole
    pred[..., 12:, 12:] += 50   # error outside it does not count
    assert float(metrics.psnr(pred, target, mask)[0]) == pytest.approx(20 * math.log10(255 / 10))
    assert float(metrics.hole_l1(pred, target, mask)[0]) == pytest.approx(10.0)
    assert float(metrics.psnr(pred, target)[0]) < float(metrics.psnr(pred, target, mask)[0])
    assert math.isinf(float(metrics.psnr(target, target, mask)[0]))
    assert math.isnan(float(metrics.psnr(pred, target, torch.zeros_like(mask))[0]))  # no hole


def test_sharpness_ratio_penalises_blur_not_detail():
    rng = np.random.default_rng(4)
    original = torch.from_numpy(rng.integers(0, 256, (1, 3, 32, 32)).astype(np.float32))
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    smudge = original.clone()
    smudge[..., 8:24, 8:24] = original[..., 8:24, 8:24].mean()
    other_detail = original.clone()
    other_detail[..., 8:24, 8:24] = torch.from_numpy(rng.integers(0, 256, (1, 3, 16, 16)).astype(np.float32))
    assert float(metrics.sharpness_ratio(original, original, mask)[0]) == pytest.approx(1.0)
    assert float(metrics.sharpness_ratio(smudge, original, mask)[0]) < 0.01
    assert 0.5 < float(metrics.sharpness_ratio(other_detail, original, mask)[0]) < 2.0
    # A smudge can beat detail of the wrong kind on PSNR: the reason for the measure.
    assert float(metrics.psnr(smudge, original, mask)[0]) > float(metrics.psnr(other_detail, original, mask)[0])


def test_dice_on_hand_made_maps():
    truth = torch.tensor([[[1, 1, 2, 2],
                           [1, 1, 2, 2],
                           [0, 0, 0, 0],
                           [0, 0, 0, 3]]])
    pred = torch.tensor([[[1, 1, 1, 2],
                          [1, 1, 2, 2],
                          [0, 0, 0, 0],
                          [0, 0, 0, 0]]])
    counts = metrics.dice_counts(pred, truth, (1, 2, 3, 4))
    # label 1: |P| 5, |G| 4, overlap 4; label 2: |P| 3, |G| 4, overlap 3; label 3: missed; label 4: absent.
    assert counts[0].tolist() == [[8, 9], [6, 7], [0, 1], [0, 0]]
    dice = metrics.pooled_dice(counts.numpy())
    assert dice[:3].tolist() == pytest.approx([8 / 9, 6 / 7, 0.0])
    assert math.isnan(dice[3])
    region = torch.zeros(1, 1, 4, 4)
    region[..., :2, 2:] = 1  # only the label-2 square
    inside = metrics.dice_counts(pred, truth, (1, 2), region)
    assert inside[0].tolist() == [[0, 1], [6, 7]]
    # Pooling weights faces by their pixels: a second, perfect face pulls label 1 up.
    two = np.concatenate([counts.numpy(), metrics.dice_counts(truth, truth, (1, 2, 3, 4)).numpy()])
    assert metrics.pooled_dice(two)[0] == pytest.approx(16 / 17)


def test_normalized_mean_error_on_hand_made_points():
    truth = torch.tensor([[[10.0, 10.0], [20.0, 10.0], [15.0, 15.0], [11.0, 20.0], [19.0, 20.0]]])
    pred = truth.clone()
    pred[0, 2] += torch.tensor([3.0, 4.0])  # nose off by 5 px, the rest exact
    assert float(metrics.normalized_mean_error(pred, truth)[0]) == pytest.approx(5 / 5 / 10)


def test_bootstrap_is_seeded_and_covers_the_mean():
    samples = np.random.default_rng(5).normal(10, 2, 400)
    first = metrics.summarize(samples, metrics.mean, 500, seed=7)
    assert first == metrics.summarize(samples, metrics.mean, 500, seed=7)
    assert first != metrics.summarize(samples, metrics.mean, 500, seed=8)
    assert first["low"] < first["value"] < first["high"] and first["n"] == 400
    # Width close to the normal approximation 2 * 1.96 * sd / sqrt(n).
    assert first["high"] - first["low"] == pytest.approx(2 * 1.96 * samples.std() / 20, rel=0.2)
    constant = metrics.summarize(np.full(20, 3.0), metrics.mean, 100, seed=0)
    assert (constant["value"], constant["low"], constant["high"]) == (3.0, 3.0, 3.0)
    none = metrics.summarize(samples, metrics.mean, 0, seed=0)
    assert none["value"] == pytest.approx(samples.mean()) and math.isnan(none["low"])


def test_geometric_mean_statistic_on_resamples():
    ratios = np.array([0.5, 2.0, 1.0, 1.0])
    assert metrics.geometric_mean(ratios[None])[0] == pytest.approx(1.0)
    low, high = metrics.bootstrap_ci(ratios, metrics.geometric_mean, 200, seed=0)
    assert 0.5 <= low <= 1.0 <= high <= 2.0
