"""Realism of completed holes without pretrained networks: a classifier two-sample test and a
sliced Wasserstein distance, both on square patches cut around each hole.

* :func:`c2st`: a small CNN is trained to tell original patches from completed ones on 70% of
  the faces and tested on the other 30% (both patches of a face on the same side). 50% accuracy =
  the completions cannot be told from real; 100% = every completion is recognised.
* :func:`swd`: sliced Wasserstein distance between 7x7 neighbourhoods of the Laplacian pyramid
  levels of original and completed patches (ProGAN, Karras et al. 2018), x1e3. 0 = same
  distribution of local detail at every scale.

Patches are uint8 (N, S, S, 3); row k of the original and completed sets is the same face.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import nn

PATCH_SIDE = 48
PATCH_MARGIN = 0.25      # the square's side is the hole box's longer side times (1 + margin)
C2ST_SEEDS = (0, 1, 2)
C2ST_TEST_FRACTION = 0.3
C2ST_MIN_FACES = 2       # one face on each side of the split
C2ST_WIDTHS = (32, 32, 64, 64)
C2ST_STEPS = 150         # Adam steps, whatever the number of faces
C2ST_BATCH = 32          # faces per step: their original and completed patches
C2ST_LR = 2e-3
HIGH_PASS_GAIN = 8.0
Z95 = 1.959963984540054
SWD_LEVELS = 3           # 48, 24 and 12 px (the last one the Gaussian residual, as ProGAN)
SWD_NEIGHBOURHOOD = 7
SWD_PER_IMAGE = 64       # neighbourhoods sampled per patch and level (ProGAN: 128)
SWD_DIRECTIONS = 256     # random projections (ProGAN: 512)


# --------------------------------------------------------------------------- patches


def hole_boxes(holes: np.ndarray, margin: float = PATCH_MARGIN) -> np.ndarray:
    """Square boxes around each hole: centred on its bounding box, side = longer box side x
    (1 + margin). holes: (N, H, W), nonzero = hole. -> int64 (N, 3) rows (top, left, side);
    boxes may reach outside the image. ValueError for an empty hole."""
    boxes = np.empty((len(holes), 3), np.int64)
    for k, hole in enumerate(holes):
        ys, xs = np.nonzero(hole)
        if ys.size == 0:
            raise ValueError(f"hole {k} is empty")
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        side = math.ceil(max(y1 - y0, x1 - x0) * (1 + margin))
        boxes[k] = (round((y0 + y1 - side) / 2), round((x0 + x1 - side) / 2), side)
    return boxes


def hole_patches(
    images: np.ndarray, holes: np.ndarray, size: int = PATCH_SIDE, margin: float = PATCH_MARGIN
) -> np.ndarray:
    """The square box of :func:`hole_boxes` cut from each image (edge pixels replicated outside
    it) and resized to ``size`` (INTER_AREA when shrinking, INTER_LINEAR when enlarging).

    images: uint8 (N, H, W, 3); holes: (N, H, W), nonzero = hole. -> uint8 (N, size, size, 3).
    """
    if images.shape[:3] != holes.shape or images.ndim != 4:
        raise ValueError(f"images (N, H, W, 3) and holes (N, H, W) do not match: {images.shape}, {holes.shape}")
    height, width = holes.shape[1:]
    out = np.empty((len(images), size, size, images.shape[3]), np.uint8)
    for k, (top, left, side) in enumerate(hole_boxes(holes, margin)):
        rows = np.clip(np.arange(top, top + side), 0, height - 1)
        cols = np.clip(np.arange(left, left + side), 0, width - 1)
        crop = np.ascontiguousarray(images[k][rows[:, None], cols[None, :]])
        out[k] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    return out


# --------------------------------------------------------------------------- C2ST


class _HighPass(nn.Module):
    """(B, 3, S, S) -> (B, 6, S, S): the image and HIGH_PASS_GAIN x (image - its 3x3 box blur),
    so that a loss of fine detail is visible to the first, stride-2 layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blurred = nn.functional.avg_pool2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return torch.cat([x, HIGH_PASS_GAIN * (x - blurred)], dim=1)


def _classifier() -> nn.Module:
    """(B, 3, S, S) in [-1, 1] -> (B,) logit of "completed": high-pass input, four stride-2
    3x3 convolutions, global average pool, linear."""
    layers: list[nn.Module] = [_HighPass()]
    channels = 6
    for width in C2ST_WIDTHS:
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 1), nn.Flatten(0))


def _to_input(patches: np.ndarray) -> torch.Tensor:
    """uint8 (N, S, S, 3) -> float32 (N, 3, S, S) in [-1, 1]."""
    return torch.from_numpy(patches).permute(0, 3, 1, 2).float().div(127.5).sub(1).contiguous()


def c2st_accuracy(
    real: torch.Tensor, fake: torch.Tensor, train: np.ndarray, test: np.ndarray, seed: int,
    steps: int = C2ST_STEPS, batch: int = C2ST_BATCH,
) -> float:
    """Test accuracy of one classifier trained on faces ``train`` and tested on faces ``test``.

    real, fake: float32 (N, 3, S, S) in [-1, 1]; train, test: face indices. Each of ``steps``
    steps holds both patches of ``batch`` faces (epochs of a seeded shuffle, an epoch's last
    incomplete batch dropped), each patch flipped left-right with probability 1/2.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=C2ST_LR)
    per_step = min(batch, len(train))
    per_epoch = len(train) // per_step
    labels = torch.cat([torch.zeros(per_step), torch.ones(per_step)])
    train_t = torch.from_numpy(train)
    for step in range(steps):
        if step % per_epoch == 0:
            order = train_t[torch.randperm(len(train_t), generator=generator)]
        faces = order[(step % per_epoch) * per_step:(step % per_epoch + 1) * per_step]
        x = torch.cat([real[faces], fake[faces]])
        flip = torch.rand(len(x), generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        test_t = torch.from_numpy(test)
        correct = (model(real[test_t]) <= 0).sum() + (model(fake[test_t]) > 0).sum()
    return float(correct) / (2 * len(test))


def wilson_interval(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``accuracy`` observed over ``n`` trials."""
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def c2st(
    real: np.ndarray, fake: np.ndarray, seeds: tuple[int, ...] = C2ST_SEEDS, steps: int = C2ST_STEPS,
    test_fraction: float = C2ST_TEST_FRACTION, threads: int = 1,
) -> dict:
    """Classifier two-sample test of original vs completed patches, one classifier per seed.

    real, fake: uint8 (N, S, S, 3), row k = face k. Each seed splits the faces (a seeded
    permutation) into train and test, trains :func:`_classifier` and scores both patches of
    every test face. -> {"accuracy": mean over seeds, "low"/"high": 95% Wilson interval of that
    mean taken as a proportion over one seed's ``n_test`` patches (conservative: the seeds'
    test sets differ), "seeds": per-seed accuracies, "n_test": test patches per seed}.
    Trains on ``threads`` torch threads (restored after): a net this small runs fastest on one,
    and many times faster when other jobs share the cores. Deterministic given the seeds (on
    one machine and thread count).
    """
    if real.shape != fake.shape or real.ndim != 4:
        raise ValueError(f"real and fake patches must have one shape (N, S, S, 3): {real.shape}, {fake.shape}")
    faces = len(real)
    n_test = round(faces * test_fraction)
    if faces < C2ST_MIN_FACES or n_test < 1 or faces - n_test < 1:
        raise ValueError(f"C2ST needs faces on both sides of the split, got {faces}")
    real_t, fake_t = _to_input(real), _to_input(fake)
    accuracies = []
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for seed in seeds:
            order = np.random.default_rng(seed).permutation(faces)
            accuracies.append(c2st_accuracy(real_t, fake_t, order[n_test:], order[:n_test], seed, steps))
    finally:
        torch.set_num_threads(threads_before)
    accuracy = float(np.mean(accuracies))
    low, high = wilson_interval(accuracy, 2 * n_test)
    return {"accuracy": accuracy, "low": low, "high": high, "seeds": accuracies, "n_test": 2 * n_test}


# --------------------------------------------------------------------------- SWD


def laplacian_pyramid(image: np.ndarray, levels: int = SWD_LEVELS) -> list[np.ndarray]:
    """float32 (H, W, C) -> ``levels`` arrays, finest first: band-pass levels, then the Gaussian residual."""
    pyramid, current = [], image.astype(np.float32)
    for _ in range(levels - 1):
        smaller = cv2.pyrDown(current)
        pyramid.append(current - cv2.pyrUp(smaller, dstsize=current.shape[1::-1]).reshape(current.shape))
        current = smaller
    return pyramid + [current]


def _descriptors(patches: np.ndarray, positions: list[np.ndarray]) -> list[np.ndarray]:
    """Per level: float32 (N x SWD_PER_IMAGE, 7 * 7 * 3) neighbourhoods at ``positions[level]``
    ((N, SWD_PER_IMAGE, 2) top-left corners)."""
    offsets = np.arange(SWD_NEIGHBOURHOOD)
    out: list[list[np.ndarray]] = [[] for _ in positions]
    for k, patch in enumerate(patches):
        for level, band in enumerate(laplacian_pyramid(patch)):
            ys = positions[level][k, :, 0, None, None] + offsets[None, :, None]
            xs = positions[level][k, :, 1, None, None] + offsets[None, None, :]
            out[level].append(band[ys, xs].reshape(len(ys), -1))
    return [np.concatenate(level) for level in out]


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                       directions: int = SWD_DIRECTIONS) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the
    projections of two equal-sized point sets a, b: (M, D)."""
    dirs = rng.standard_normal((directions, a.shape[1])).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    projected_a = np.sort(dirs @ a.T, axis=1)  # sorting along rows: far faster than along columns
    projected_b = np.sort(dirs @ b.T, axis=1)
    return float(np.abs(projected_a - projected_b).mean())


def swd(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> dict:
    """Sliced Wasserstein distance (x1e3) between Laplacian-pyramid 7x7 neighbourhoods of
    original and completed patches, per level and averaged (ProGAN's measure).

    real, fake: uint8 (N, S, S, 3), same shape. Both sets use the same random neighbourhood
    positions (so identical sets give 0); descriptors are standardised per level and channel
    with the originals' mean and std (ProGAN standardises each set by its own, which would
    hide a loss of detail). -> {"levels": [finest ... coarsest], "average": mean of levels,
    "faces": N}.
    """
    if real.shape != fake.shape or real.ndim != 4:
        raise ValueError(f"real and fake patches must have one shape (N, S, S, 3): {real.shape}, {fake.shape}")
    rng = np.random.default_rng(seed)
    sides = [band.shape[0] for band in laplacian_pyramid(real[0])]
    positions = [rng.integers(0, side - SWD_NEIGHBOURHOOD + 1, (len(real), SWD_PER_IMAGE, 2)) for side in sides]
    levels = []
    for desc_real, desc_fake in zip(_descriptors(real, positions), _descriptors(fake, positions)):
        channels = real.shape[3]
        by_channel = desc_real.reshape(len(desc_real), -1, channels)
        mean = by_channel.mean(axis=(0, 1))
        std = by_channel.std(axis=(0, 1)) + 1e-8
        desc_real = ((by_channel - mean) / std).reshape(len(desc_real), -1)
        desc_fake = ((desc_fake.reshape(len(desc_fake), -1, channels) - mean) / std).reshape(len(desc_fake), -1)
        levels.append(1e3 * sliced_wasserstein(desc_real, desc_fake, rng))
    return {"levels": levels, "average": float(np.mean(levels)), "faces": len(real)}
