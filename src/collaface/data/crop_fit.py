"""Fit a face's square crop (:mod:`collaface.data.crop`) around a hole, within a model's framing.

A model trained with scale augmentation ``[low, high]`` (face size relative to the crop rule) and
shift augmentation ``shift`` (fraction of the crop side) has seen faces in crops up to
``1 / low`` times the rule's side, off-centre by up to ``shift`` of the side. A hole that reaches
outside the rule's crop can be completed in such a crop: :func:`fitted_box` finds the smallest
one (least shift first) that holds every hole pixel's centre, in the face's upright frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from collaface.data.crop import CropBox

EDGE = 1e-6  # crop units kept between a hole pixel centre and a fitted box's edges (against rounding)


@dataclass(frozen=True)
class Framing:
    """The crops a model handles: side up to ``max_zoom_out`` x the crop rule's side, centre
    off by up to ``max_shift`` x the side (both from its training augmentation)."""

    max_zoom_out: float = 1.0
    max_shift: float = 0.0

    @classmethod
    def from_augmentation(cls, enabled: bool, scale: tuple[float, float], shift: float) -> Framing:
        """From a training config's ``data.augment`` (enabled, scale range, shift)."""
        if not enabled:
            return cls()
        return cls(max_zoom_out=max(1.0, 1.0 / float(scale[0])), max_shift=max(0.0, float(shift)))


def hole_outline(hole: np.ndarray) -> np.ndarray:
    """(N, 2) float64 (x, y) pixel centres of the convex hull of the (H, W) bool ``hole``'s pixels:
    a crop holds every hole pixel's centre exactly when it holds these."""
    points = cv2.findNonZero(hole.astype(np.uint8))
    if points is None:
        return np.zeros((0, 2))
    return cv2.convexHull(points).reshape(-1, 2).astype(np.float64)


def _side_needed(low: float, high: float, max_shift: float) -> float:
    """One axis in the rule crop's units (the crop is [0, 1), centre 0.5): the smallest side
    factor k >= 1 for which a shift |d| <= max_shift gives 0.5 + d - k / 2 <= low and
    high <= 0.5 + d + k / 2."""
    return max(1.0, high - low, 2 * (high - 0.5 - max_shift), 2 * (0.5 - low - max_shift))


def _shift_for(low: float, high: float, side: float, max_shift: float) -> float:
    """The shift nearest 0, within +-max_shift, that puts [low, high] in a crop of ``side``
    (as much of it as possible when none does)."""
    lowest = high - 0.5 - side / 2          # smallest shift that keeps ``high`` inside
    highest = low - 0.5 + side / 2          # largest shift that keeps ``low`` inside
    if lowest > highest:  # does not fit: centre the crop on the hole
        return float(np.clip((low + high) / 2 - 0.5, -max_shift, max_shift))
    return float(np.clip(0.0, max(lowest, -max_shift), min(highest, max_shift)))


def fitted_box(box: CropBox, outline: np.ndarray, framing: Framing) -> tuple[CropBox, bool]:
    """The rule's crop ``box`` (of a face), grown and shifted within ``framing`` to hold the
    (N, 2) photo-pixel ``outline`` (:func:`hole_outline`): the box itself when it holds it
    already. -> (box, whether it holds every point); when no box within the framing holds them,
    the largest one, shifted towards them."""
    if len(outline) == 0:
        return box, True
    to_crop = box.crop_from_source(1)
    uv = outline @ to_crop[:, :2].T + to_crop[:, 2]  # crop units: [0, 1) is inside
    low, high = uv.min(0), uv.max(0)
    if (low >= 0).all() and (high < 1).all():
        return box, True
    low, high = low - EDGE, high + EDGE
    needed = max(_side_needed(lo, hi, framing.max_shift) for lo, hi in zip(low, high))
    side = min(needed, framing.max_zoom_out)
    shift = np.array([_shift_for(lo, hi, side, framing.max_shift) for lo, hi in zip(low, high)])
    to_source = cv2.invertAffineTransform(to_crop)
    centre = to_source[:, :2] @ (0.5 + shift) + to_source[:, 2]
    grown = CropBox(float(centre[0] - side * box.side / 2), float(centre[1] - side * box.side / 2),
                    float(side * box.side), box.roll)
    holds = bool(needed <= framing.max_zoom_out)
    return grown, holds
