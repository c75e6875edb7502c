"""Filling a hole from the pixels around it. Poisson (seamless) blending of a predicted region
into an image (Perez et al. 2003), shared by photo completion (``inference``) and the SII
baseline; the solve is our own coarse-to-fine SOR: ``cv2.seamlessClone`` lets the hole's old
content leak into the result and clears the mask's border pixels. And OpenCV's classical
inpainting, the evaluation's baselines and the photo path's fallback fill."""

from __future__ import annotations

import cv2
import numpy as np

INPAINT_RADIUS = 3            # pixels of cv2.inpaint's neighbourhood, OpenCV's example value
SOR_SWEEPS = 8                # red-black SOR sweeps per level of the coarse-to-fine Poisson solve
SOR_OMEGA = 1.8
SOR_COARSEST = 8              # side at or below which a level is solved by SOR alone ...
SOR_COARSEST_SWEEPS = 50      # ... with this many sweeps
_NEIGHBOUR_MEAN = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], np.float32)


def harmonic_fill(values: np.ndarray, hole: np.ndarray, sweeps: int = SOR_SWEEPS) -> np.ndarray:
    """Replace ``values`` inside ``hole`` by the solution of Laplace's equation whose boundary
    values are the known pixels around it (4-neighbour; zero slope at the array's border).

    values: (h, w, C) float32; hole: (h, w) bool. Solved coarse to fine: each level starts from
    the upsampled coarser solution and runs ``sweeps`` red-black SOR sweeps (omega 1.8); on
    smooth data with noisy edges the result is within about 1 grey level (mean) of the exact
    solution. -> new (h, w, C) float32.
    """
    values = values.copy()
    height, width = hole.shape
    if max(height, width) <= SOR_COARSEST:
        sweeps = SOR_COARSEST_SWEEPS
    else:
        # coarse level: each 2x2 block is the mean of its known pixels, a hole if it has none
        known = (~hole).astype(np.float32)
        size = ((width + 1) // 2, (height + 1) // 2)
        weight = cv2.resize(known, size, interpolation=cv2.INTER_AREA)
        summed = cv2.resize(values * known[..., None], size, interpolation=cv2.INTER_AREA)
        coarse_hole = weight < 1e-6
        coarse = harmonic_fill(summed / np.maximum(weight, 1e-6)[..., None], coarse_hole, sweeps)
        upsampled = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
        np.copyto(values, upsampled.reshape(values.shape), where=hole[..., None])
    checker = np.indices(hole.shape).sum(0) % 2 == 0
    steps = [(SOR_OMEGA * (hole & colour)).astype(np.float32)[..., None] for colour in (checker, ~checker)]
    for _ in range(sweeps):
        for step in steps:
            update = cv2.filter2D(values, -1, _NEIGHBOUR_MEAN, borderType=cv2.BORDER_REPLICATE)
            update = update.reshape(values.shape) - values
            values += update * step
    return values


def poisson_blend(prediction: np.ndarray, original: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Poisson (seamless) blend of ``prediction`` into ``original`` over ``hole``. -> (h, w, 3) uint8.

    prediction, original: (h, w, 3) uint8 of one region; hole: (h, w) bool. Inside the hole the
    result keeps the prediction's gradients and meets the known pixels at its edge (Perez et al.
    2003): prediction + the harmonic interpolation of (original - prediction) from the pixels
    around the hole. Outside the hole the original is returned.
    """
    offset = original.astype(np.float32) - prediction.astype(np.float32)
    offset = harmonic_fill(offset, hole)
    blended = np.clip(np.rint(prediction + offset), 0, 255).astype(np.uint8)
    return np.where(hole[..., None], blended, original)


def inpaint_opencv(image: np.ndarray, hole: np.ndarray, method: int) -> np.ndarray:
    """cv2.inpaint (cv2.INPAINT_TELEA or cv2.INPAINT_NS) of the hole. image: uint8 (H, W, 3);
    hole: bool (H, W). Hole pixels of ``image`` are never read. -> uint8 (H, W, 3)."""
    known = np.where(hole[..., None], 0, image).astype(np.uint8)
    return cv2.inpaint(known, hole.astype(np.uint8) * 255, INPAINT_RADIUS, method)
