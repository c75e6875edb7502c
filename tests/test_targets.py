"""Heatmap and one-hot targets: ranges, exact-enough round trips, visibility, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collaface.contracts import NUM_CLASSES
from collaface.data.targets import (
    heatmaps_to_landmarks,
    heatmaps_visible,
    interocular,
    landmark_error,
    landmarks_to_heatmaps,
    landmarks_visible,
    onehot_to_parsing,
    parsing_to_onehot,
)


def random_points(count: int, size: int, seed: int) -> torch.Tensor:
    """(count, 5, 2) sub-pixel points anywhere inside the image area [-0.5, size - 0.5)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 5, 2, generator=generator) * size - 0.5


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 3.0])
def test_heatmap_round_trip_is_sub_pixel(size, sigma):
    points = random_points(100, size, seed=size + int(10 * sigma))
    heatmaps = landmarks_to_heatmaps(points, size, sigma)
    assert heatmaps.shape == (100, 5, size, size) and heatmaps.dtype == torch.float32
    assert heatmaps.min() >= -1 and heatmaps.max() <= 1
    assert heatmaps_visible(heatmaps).all()
    decoded = heatmaps_to_landmarks(heatmaps)
    assert decoded.shape == (100, 5, 2)
    assert landmark_error(decoded, points).max() < 0.25


def test_heatmap_values_and_unbatched_shapes():
    point = torch.tensor([[10.0, 20.0]] * 5)
    heatmap = landmarks_to_heatmaps(point, 32, 2.0)
    assert heatmap.shape == (5, 32, 32)
    assert heatmap[0, 20, 10] == 1  # peak +1 on the point (x = column, y = row)
    assert heatmap[0, 20, 12] == pytest.approx(2 * np.exp(-0.5) - 1)
    assert heatmap[0, 0, 31] == pytest.approx(-1, abs=1e-6)
    torch.testing.assert_close(heatmaps_to_landmarks(heatmap), point)
    from_numpy = landmarks_to_heatmaps(point.numpy(), 32, 2.0)
    torch.testing.assert_close(from_numpy, heatmap)


def test_points_outside_give_empty_channels():
    points = torch.tensor(
        [[[-0.6, 5.0], [31.5, 5.0], [5.0, float("nan")], [-0.5, 31.49], [40.0, -3.0]]]
    )
    assert landmarks_visible(points, 32).tolist() == [[False, False, False, True, False]]
    heatmaps = landmarks_to_heatmaps(points, 32, 2.0)
    assert (heatmaps[0, [0, 1, 2, 4]] == -1).all()
    assert heatmaps_visible(heatmaps).tolist() == [[False, False, False, True, False]]
    assert landmark_error(heatmaps_to_landmarks(heatmaps)[:, 3], points[:, 3]).item() < 1e-3


def test_decoding_tolerates_noise():
    """Predicted maps are not exact Gaussians: small noise must not move points by much."""
    generator = torch.Generator().manual_seed(3)
    points = random_points(200, 64, seed=4)
    heatmaps = landmarks_to_heatmaps(points, 64, 2.0)
    noisy = (heatmaps + 0.02 * torch.randn(heatmaps.shape, generator=generator)).clamp(-1, 1)
    errors = landmark_error(heatmaps_to_landmarks(noisy), points)
    assert errors.mean() < 0.1 and errors.max() < 0.5


def test_onehot_round_trip_is_exact():
    generator = torch.Generator().manual_seed(5)
    parsing = torch.randint(0, NUM_CLASSES, (4, 32, 48), generator=generator)
    onehot = parsing_to_onehot(parsing)
    assert onehot.shape == (4, NUM_CLASSES, 32, 48) and onehot.dtype == torch.float32
    assert set(onehot.unique().tolist()) == {-1.0, 1.0}
    assert ((onehot == 1).sum(dim=1) == 1).all()
    assert torch.equal(onehot_to_parsing(onehot), parsing)
    single = parsing_to_onehot(parsing[0])
    assert single.shape == (NUM_CLASSES, 32, 48)
    assert torch.equal(onehot_to_parsing(single[None])[0], parsing[0])
    assert onehot_to_parsing(onehot).dtype == torch.int64


def test_landmark_error_and_interocular():
    target = torch.zeros(2, 5, 2)
    target[:, 1] = torch.tensor([[30.0, 40.0], [6.0, 8.0]])
    pred = target.clone()
    pred[0, 2] += torch.tensor([3.0, 4.0])
    errors = landmark_error(pred, target)
    assert errors.shape == (2, 5)
    assert errors[0, 2] == 5 and errors.sum() == 5
    torch.testing.assert_close(interocular(target), torch.tensor([50.0, 10.0]))
