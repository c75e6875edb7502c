"""Realism measures: hole patches, the classifier two-sample test (C2ST) and the sliced Wasserstein distance."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from collaface import realism as R

STEPS = 60  # C2ST steps in these tests (the default is C2ST_STEPS)


def textures(n: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Random multi-scale colour noise textures and a random rectangular hole in each.
    -> uint8 (n, size, size, 3), bool (n, size, size)."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    holes = np.zeros((n, size, size), bool)
    for k in range(n):
        noise = rng.standard_normal((size, size, 3)).astype(np.float32)
        texture = sum(w * cv2.GaussianBlur(noise, (0, 0), s) if s else w * noise
                      for w, s in ((14, 0), (40, 1.5), (90, 4)))
        images[k] = np.clip(rng.uniform(80, 170, 3) + texture, 0, 255).astype(np.uint8)
        h, w = rng.integers(14, 30, 2)
        top, left = rng.integers(2, size - 32, 2)
        holes[k, top:top + h, left:left + w] = True
    return images, holes


def fill(images: np.ndarray, holes: np.ndarray, filled: np.ndarray) -> np.ndarray:
    return np.where(holes[..., None], filled, images).astype(np.uint8)


def blurred(images: np.ndarray, holes: np.ndarray, sigma: float) -> np.ndarray:
    return fill(images, holes, np.stack([cv2.GaussianBlur(i, (0, 0), sigma) for i in images]))


@pytest.fixture(scope="module")
def faces():
    images, holes = textures(100, seed=0)
    return images, holes, R.hole_patches(images, holes)


def test_hole_patch_is_the_square_box_around_the_hole():
    holes = np.zeros((2, 40, 60), bool)
    holes[0, 10:20, 20:40] = True          # 10 x 20 box: the square is 25 px, centred on it
    holes[1, 0:4, 56:60] = True            # at the right edge: 5 px, one column outside the image
    assert R.hole_boxes(holes).tolist() == [[2, 18, 25], [0, 56, 5]]
    # An image whose value encodes (row, col): the patch at its own size shows the box's pixels.
    rows, cols = np.mgrid[0:40, 0:60]
    image = np.stack([rows * 4, cols * 4, np.zeros_like(rows)], -1).astype(np.uint8)
    patches = R.hole_patches(np.stack([image, image]), holes, size=25)
    assert patches.shape == (2, 25, 25, 3) and patches.dtype == np.uint8
    assert (patches[0, :, :, 0] == (np.arange(2, 27) * 4)[:, None]).all()
    assert (patches[0, :, :, 1] == (np.arange(18, 43) * 4)[None, :]).all()
    corner = R.hole_patches(np.stack([image, image]), holes, size=5)[1]
    assert (corner[:, :, 0] == np.arange(5)[:, None] * 4).all()
    assert (corner[:, :, 1] == np.array([56, 57, 58, 59, 59])[None, :] * 4).all()  # column 60 replicates 59
    assert R.hole_patches(np.stack([image, image]), holes, size=48).shape == (2, 48, 48, 3)
    with pytest.raises(ValueError, match="empty"):
        R.hole_patches(image[None], np.zeros((1, 40, 60), bool))


def test_c2st_is_chance_when_the_completion_is_the_original(faces):
    real = faces[2]
    result = R.c2st(real, real.copy(), steps=5)
    # Identical patches get one score: one of the two patches of each test face is right.
    assert result["seeds"] == [0.5, 0.5, 0.5] and result["accuracy"] == 0.5
    assert result["n_test"] == 60 and result["low"] < 0.5 < result["high"]


def test_c2st_is_chance_between_two_draws_of_the_same_textures(faces):
    _, holes, real = faces
    other = R.hole_patches(textures(100, seed=1)[0], holes)
    result = R.c2st(real, other, seeds=(0, 1), steps=STEPS)
    assert 0.35 <= result["accuracy"] <= 0.65, result


def test_c2st_recognises_a_flat_grey_fill(faces):
    images, holes, real = faces
    grey = R.hole_patches(fill(images, holes, np.full_like(images, 128)), holes)
    assert R.c2st(real, grey, seeds=(0,), steps=30)["accuracy"] > 0.9


def test_c2st_and_swd_see_a_blurred_hole(faces):
    images, holes, real = faces
    fake = R.hole_patches(blurred(images, holes, 1.5), holes)
    assert R.c2st(real, fake, seeds=(0, 1), steps=STEPS)["accuracy"] > 0.75
    assert R.swd(real, real)["average"] == 0.0
    slight = R.swd(real, R.hole_patches(blurred(images, holes, 0.7), holes))
    strong = R.swd(real, fake)
    assert 0 < slight["average"] < strong["average"] and len(strong["levels"]) == R.SWD_LEVELS
    assert strong["levels"][0] > slight["levels"][0] > 0 and strong["faces"] == 100


def test_c2st_is_deterministic_and_leaves_the_thread_count(faces):
    images, holes, real = faces
    fake = R.hole_patches(blurred(images, holes, 1.0), holes)
    threads = torch.get_num_threads()
    first = R.c2st(real[:40], fake[:40], seeds=(3, 4), steps=10)
    assert torch.get_num_threads() == threads
    assert R.c2st(real[:40], fake[:40], seeds=(3, 4), steps=10) == first and len(first["seeds"]) == 2
    assert R.swd(real, fake, seed=5) == R.swd(real, fake, seed=5)
    with pytest.raises(ValueError, match="both sides"):
        R.c2st(real[:1], fake[:1])


def test_wilson_interval():
    low, high = R.wilson_interval(0.5, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert R.wilson_interval(1.0, 20)[1] == 1.0 and R.wilson_interval(1.0, 20)[0] > 0.8


def test_c2st_on_real_faces_ranks_blur(shared_faces):
    """On CelebA faces: a blurred hole is told from the original far more often than chance."""
    files = sorted((shared_faces / "celeba_aligned" / "images").glob("*.jpg"))[:150]
    images = np.stack([cv2.resize(cv2.imread(str(f))[20:198, :, ::-1], (128, 128), interpolation=cv2.INTER_AREA)
                       for f in files])
    holes = np.zeros(images.shape[:3], bool)
    holes[:, 80:110, 40:88] = True  # the mouth
    real = R.hole_patches(images, holes)
    accuracy = R.c2st(real, R.hole_patches(blurred(images, holes, 1.5), holes), seeds=(0,), steps=STEPS)["accuracy"]
    assert accuracy > 0.7
