"""The classical baselines every evaluation runs beside the models: OpenCV's Telea and
Navier-Stokes inpainting, and a mirror fill about the face's axis."""

from __future__ import annotations

import cv2
import numpy as np

from collaface.blending import inpaint_opencv

BASELINES: dict[str, str] = {
    "telea": "Telea (OpenCV)",
    "navier_stokes": "Navier-Stokes (OpenCV)",
    "mirror": "mirror fill",
}


def face_axis(landmarks: np.ndarray, width: int) -> float:
    """x of the face's vertical symmetry axis: midway between the eyes' and the mouth corners'
    midpoints; the image centre when landmarks are missing. landmarks: (5, 2)."""
    if not np.isfinite(landmarks).all():
        return (width - 1) / 2
    return float((landmarks[0, 0] + landmarks[1, 0] + landmarks[3, 0] + landmarks[4, 0]) / 4)


def mirror_fill(image: np.ndarray, hole: np.ndarray, axis_x: float) -> np.ndarray:
    """Fill the hole from the face mirrored about the vertical line x = axis_x (bilinear);
    hole pixels whose mirror image is unknown or outside get Telea inpainting.
    image: uint8 (H, W, 3); hole: bool (H, W). -> uint8 (H, W, 3)."""
    height, width = hole.shape
    map_x = np.broadcast_to((2 * axis_x - np.arange(width, dtype=np.float32))[None], (height, width))
    map_y = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width))
    map_x, map_y = np.ascontiguousarray(map_x, np.float32), np.ascontiguousarray(map_y, np.float32)
    mirrored = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mirror_known = cv2.remap((~hole).astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0.999
    filled = np.where((hole & mirror_known)[..., None], mirrored, image)
    remaining = hole & ~mirror_known
    return inpaint_opencv(filled, remaining, cv2.INPAINT_TELEA) if remaining.any() else filled


def run_baselines(image: np.ndarray, hole: np.ndarray, landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Every baseline on a batch. image: uint8 (B, H, W, 3) (hole pixels are not read); hole: bool
    (B, H, W); landmarks: (B, 5, 2), NaN when unknown. -> {baseline: uint8 (B, H, W, 3)}."""
    width = image.shape[2]
    out = {
        "telea": [inpaint_opencv(i, h, cv2.INPAINT_TELEA) for i, h in zip(image, hole)],
        "navier_stokes": [inpaint_opencv(i, h, cv2.INPAINT_NS) for i, h in zip(image, hole)],
        "mirror": [mirror_fill(i, h, face_axis(p, width)) for i, h, p in zip(image, hole, landmarks)],
    }
    return {name: np.stack(images) for name, images in out.items()}
