"""Masks: shapes, hole fractions, determinism, O1-O6 placement and the fill/composite helpers."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
import torch

from collaface.config import TRAIN_MASK_KINDS, MaskConfig
from collaface.contracts import composite
from collaface.data.crop import crop_box_from_landmarks
from collaface.data.masks import (
    MASK_FILL,
    OCCLUSIONS,
    REGIONS,
    apply_mask,
    block_mask,
    eval_rng,
    freeform_mask,
    noise_mask,
    occlusion_mask,
    pattern_mask,
    region_mask,
    sample_train_mask,
)

# Mean CelebA landmarks in a 128 px training crop (left eye, right eye, nose, left/right mouth).
TYPICAL_FACE = np.array([[44.3, 43.0], [83.8, 43.1], [63.4, 67.9], [46.8, 84.9], [81.1, 85.0]], np.float32)

# Landmarks each occlusion must cover / must leave known (indices into the 5 points).
OCCLUSION_COVERS = {
    "O1": ([0], [1]),
    "O2": ([1], [0]),
    "O3": ([0, 1], [3, 4]),
    "O4": ([0, 3], [1, 4]),
    "O5": ([1, 4], [0, 3]),
    "O6": ([3, 4], [0, 1]),
}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def covers(mask: np.ndarray, point: np.ndarray) -> bool:
    return bool(mask[round(point[1]), round(point[0])])


def extent(mask: np.ndarray) -> tuple[int, int]:
    """(width, height) of the hole's bounding box."""
    ys, xs = np.nonzero(mask)
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def crop_landmarks(shared_faces) -> list[np.ndarray]:
    """The official CelebA landmarks mapped into 128 px training crops."""
    with open(shared_faces / "celeba_aligned" / "landmarks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        points = np.array([[float(row[p + "x"]), float(row[p + "y"])] for p in ("le", "re", "n", "lm", "rm")])
        out.append(crop_box_from_landmarks(points).to_crop(points, 128))
    return out


# --------------------------------------------------------------------------- random masks


def test_block_is_one_square_inside_the_image():
    for seed in range(20):
        mask = block_mask(128, rng(seed), 64)
        assert mask.shape == (128, 128) and mask.dtype == np.float32
        assert set(np.unique(mask)) == {0.0, 1.0}
        assert mask.sum() == 64 * 64 and extent(mask) == (64, 64)
    assert block_mask((32, 48), rng(), 32).sum() == 32 * 32
    with pytest.raises(ValueError, match="block"):
        block_mask(64, rng(), 65)


def test_pattern_hits_the_missing_fraction_with_connected_blobs():
    fractions = []
    for seed in range(20):
        mask = pattern_mask(128, rng(seed))
        fractions.append(mask.mean())
        assert 0.2 <= mask.mean() <= 0.3
        count, _ = cv2.connectedComponents(mask.astype(np.uint8))
        assert count - 1 <= 40, "blobs, not salt-and-pepper"
        interior = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).sum() / mask.sum()
        assert interior > 0.5, "most hole pixels lie inside a blob"
    assert 0.2 <= np.mean(fractions) <= 0.3
    assert abs(pattern_mask(128, rng(), 0.4).mean() - 0.4) < 0.02
    assert pattern_mask((64, 200), rng()).shape == (64, 200)


def test_noise_mask_misses_about_80_percent():
    mask = noise_mask(128, rng())
    assert abs(mask.mean() - 0.8) < 0.02
    count, _ = cv2.connectedComponents((1 - mask).astype(np.uint8))
    assert count > 500, "independent pixels"


def test_freeform_area_stays_in_range():
    for area in ((0.1, 0.5), (0.0, 0.05), (0.3, 0.35)):
        for seed in range(15):
            mask = freeform_mask(128, rng(seed), area)
            assert mask.any() and area[0] <= mask.mean() <= area[1]
            assert set(np.unique(mask)) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "make",
    [
        lambda r: block_mask(128, r, 64),
        lambda r: pattern_mask(128, r),
        lambda r: noise_mask(128, r),
        lambda r: freeform_mask(128, r),
    ],
    ids=["block", "pattern", "noise", "freeform"],
)
def test_random_masks_are_pure_functions_of_the_generator(make):
    np.testing.assert_array_equal(make(rng(7)), make(rng(7)))
    assert not np.array_equal(make(rng(7)), make(rng(8)))


def test_eval_rng_is_keyed_by_seed_index_and_stream():
    first = pattern_mask(128, eval_rng(3, 11))
    np.testing.assert_array_equal(first, pattern_mask(128, eval_rng(3, 11)))
    assert not np.array_equal(first, pattern_mask(128, eval_rng(3, 12)))
    assert not np.array_equal(first, pattern_mask(128, eval_rng(4, 11)))
    assert eval_rng(3, 11, "fill").random() != eval_rng(3, 11, "mask").random()
    with pytest.raises(ValueError):
        eval_rng(-1, 0)


def test_sample_train_mask_follows_weights_and_scales_the_block():
    cfg = MaskConfig(kinds=["block"], weights=[1.0], block_size=64)
    mask, fill = sample_train_mask(cfg, 256, rng())
    assert fill == "noise" and extent(mask) == (128, 128)
    cfg = MaskConfig(kinds=["block", "pattern"], weights=[0.0, 1.0])
    assert all(sample_train_mask(cfg, 64, rng(s))[1] == "zeros" for s in range(5))
    cfg = MaskConfig(kinds=list(TRAIN_MASK_KINDS), weights=[1.0] * len(TRAIN_MASK_KINDS))
    fills = {sample_train_mask(cfg, 64, rng(s))[1] for s in range(30)}
    assert fills == {"noise", "zeros"}
    a, b = sample_train_mask(cfg, 64, rng(5)), sample_train_mask(cfg, 64, rng(5))
    np.testing.assert_array_equal(a[0], b[0])


def test_mask_fill_covers_every_kind():
    assert set(MASK_FILL) == set(TRAIN_MASK_KINDS) | {"occlusion"}
    assert MASK_FILL["pattern"] == "zeros"


@pytest.mark.parametrize(
    "call",
    [
        lambda: noise_mask(8, rng()),
        lambda: noise_mask(64, rng(), 1.5),
        lambda: pattern_mask(64, rng(), 0.0),
        lambda: freeform_mask(64, rng(), (0.5, 0.2)),
        lambda: occlusion_mask("O7", TYPICAL_FACE, 128),
        lambda: region_mask("forehead", TYPICAL_FACE, 128),
        lambda: region_mask("nose", TYPICAL_FACE[:4], 128),
        lambda: region_mask("nose", np.zeros((5, 2)), 128),
    ],
)
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


# --------------------------------------------------------------------------- face regions


@pytest.mark.parametrize("kind", list(OCCLUSIONS))
def test_occlusion_covers_its_feature(kind):
    mask = occlusion_mask(kind, TYPICAL_FACE, 128)
    assert mask.shape == (128, 128) and 0 < mask.mean() < 0.3
    covered, known = OCCLUSION_COVERS[kind]
    assert all(covers(mask, TYPICAL_FACE[i]) for i in covered)
    assert not any(covers(mask, TYPICAL_FACE[i]) for i in known)


def test_regions_clip_to_the_image_and_eyes_is_the_union():
    for name in REGIONS:
        assert region_mask(name, TYPICAL_FACE, 128).any()
    eyes = region_mask("eyes", TYPICAL_FACE, 128)
    left, right = (region_mask(eye, TYPICAL_FACE, 128) for eye in ("left-eye", "right-eye"))
    union = np.maximum(left, right)
    np.testing.assert_array_equal(eyes, union)
    near_corner = TYPICAL_FACE - 40
    mask = occlusion_mask("O1", near_corner, 128)
    assert mask.shape == (128, 128) and mask[0, 0] == 1
    assert region_mask("upper-face", TYPICAL_FACE * 2, (256, 300)).shape == (256, 300)


def test_occlusions_on_real_landmarks(shared_faces):
    faces = crop_landmarks(shared_faces)
    sizes = []
    for kind, (covered, known) in OCCLUSION_COVERS.items():
        for points in faces:
            mask = occlusion_mask(kind, points, 128)
            assert all(covers(mask, points[i]) for i in covered), kind
            assert not any(covers(mask, points[i]) for i in known), kind
            sizes.append(extent(mask))
    width, height = np.mean(sizes, axis=0)
    assert abs(width - 40) <= 3 and abs(height - 48) <= 3, (width, height)


# --------------------------------------------------------------------------- applying masks


@pytest.mark.parametrize("fill", ["noise", "zeros"])
@pytest.mark.parametrize(
    "image_shape, mask_shape",
    [
        ((3, 16, 16), (16, 16)),
        ((3, 16, 16), (1, 16, 16)),
        ((2, 3, 16, 16), (16, 16)),
        ((2, 3, 16, 16), (2, 1, 16, 16)),
    ],
)
def test_apply_mask_fills_the_hole_and_keeps_known_pixels(fill, image_shape, mask_shape):
    image = torch.rand(image_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mask = torch.from_numpy(noise_mask(16, rng(), 0.5)).expand(mask_shape).contiguous()
    out = apply_mask(image, mask, fill, torch.Generator().manual_seed(1))
    assert out.shape == image.shape
    hole = mask.expand(image.shape) > 0.5
    assert torch.equal(out[~hole], image[~hole])
    if fill == "zeros":
        assert torch.all(out[hole] == 0)
    else:
        assert out[hole].min() >= -1 and out[hole].max() <= 1 and out[hole].std() > 0.4
        again = apply_mask(image, mask, fill, torch.Generator().manual_seed(1))
        assert torch.equal(out, again)


def test_apply_mask_accepts_numpy_masks_and_rejects_mismatches():
    image = torch.zeros(3, 16, 16)
    out = apply_mask(image, block_mask(16, rng(), 16), "noise")
    assert (out != 0).float().mean() > 0.99
    with pytest.raises(ValueError, match="fill"):
        apply_mask(image, np.zeros((16, 16)), "gray")
    with pytest.raises(ValueError, match="does not match"):
        apply_mask(image, np.zeros((8, 8)), "zeros")
    for bad_mask in (np.zeros((2, 1, 16, 16)), np.zeros(16), np.zeros((3, 16, 16))):
        with pytest.raises(ValueError, match="does not match"):
            apply_mask(image, bad_mask, "zeros")


def test_composite_takes_prediction_in_the_hole_only():
    target = torch.rand(2, 3, 8, 8)
    prediction = torch.rand(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., :4, :] = 1
    out = composite(prediction, target, mask)
    assert torch.equal(out[..., :4, :], prediction[..., :4, :])
    assert torch.equal(out[..., 4:, :], target[..., 4:, :])
