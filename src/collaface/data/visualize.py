"""Drawing helpers for checking data by eye: parsing overlays, landmarks, legends, contact sheets.

All functions take and return uint8 RGB arrays and never modify their inputs.
"""

from __future__ import annotations

import cv2
import numpy as np

from collaface.contracts import LABELS, LANDMARK_NAMES
from collaface.data.labels import LABEL_COLORS

# One colour per landmark (RGB), in LANDMARK_NAMES order, unlike the label colours underneath:
# left eye red, right eye magenta, nose green, left mouth orange, right mouth white.
LANDMARK_COLORS = np.array(
    [(255, 30, 30), (230, 40, 230), (40, 220, 40), (255, 150, 0), (255, 255, 255)], dtype=np.uint8
)
assert len(LANDMARK_COLORS) == len(LANDMARK_NAMES)


def overlay_parsing(image: np.ndarray, parsing: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend label colours over an (H, W, 3) image; background (label 0) stays untouched.

    parsing: (H, W) integer labels in ``contracts.LABELS``.
    """
    if parsing.shape != image.shape[:2]:
        raise ValueError(f"parsing {parsing.shape} and image {image.shape[:2]} differ in size")
    colours = LABEL_COLORS[parsing].astype(np.float32)
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
    out = image.copy()
    labelled = parsing > 0
    out[labelled] = np.round(blended[labelled]).astype(np.uint8)
    return out


def draw_landmarks(image: np.ndarray, points: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Draw (5, 2) x, y landmarks as filled dots with a dark rim, one colour per point.

    Non-finite points (e.g. NaN for "not visible") are skipped."""
    out = np.ascontiguousarray(image).copy()
    radius = radius or max(2, round(min(image.shape[:2]) / 80))
    for (x, y), colour in zip(np.asarray(points, np.float64), LANDMARK_COLORS):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        centre = (round(x), round(y))
        cv2.circle(out, centre, radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(out, centre, radius, tuple(int(c) for c in colour), -1, cv2.LINE_AA)
    return out


def legend(width: int, names: tuple[str, ...] = LABELS[1:], row_height: int = 18) -> np.ndarray:
    """A (h, width, 3) strip of colour swatches with label and landmark names."""
    label_entries = [(n, LABEL_COLORS[LABELS.index(n)]) for n in names]
    entries = label_entries + [(f"pt {n}", c) for n, c in zip(LANDMARK_NAMES, LANDMARK_COLORS)]
    column_width = 130
    columns = max(1, width // column_width)
    rows = -(-len(entries) // columns)
    strip = np.full((rows * row_height + 4, width, 3), 255, np.uint8)
    for i, (name, colour) in enumerate(entries):
        x, y = (i % columns) * column_width + 4, (i // columns) * row_height + 4
        cv2.rectangle(strip, (x, y), (x + 12, y + 12), tuple(int(c) for c in colour), -1)
        cv2.rectangle(strip, (x, y), (x + 12, y + 12), (0, 0, 0), 1)
        cv2.putText(strip, name, (x + 17, y + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def contact_sheet(tiles: list[np.ndarray], columns: int, gap: int = 2) -> np.ndarray:
    """Grid of equally sized (h, w, 3) tiles, row-major, on a white background."""
    if not tiles:
        raise ValueError("contact_sheet needs at least one tile")
    h, w = tiles[0].shape[:2]
    if any(t.shape[:2] != (h, w) for t in tiles):
        raise ValueError("all tiles must have the same size")
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        y, x = gap + (i // columns) * (h + gap), gap + (i % columns) * (w + gap)
        sheet[y:y + h, x:x + w] = tile
    return sheet
