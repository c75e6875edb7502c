"""The shared crop rule: boxes from landmarks, and crops that keep points on their pixels."""

from __future__ import annotations

import numpy as np
import pytest

from collaface.data.crop import CropBox, crop_box_from_landmarks, crop_resize


@pytest.mark.parametrize("side, size", [(90, 128), (300, 128), (700, 64)])  # enlarge, 2x and 10x shrink
def test_marked_pixel_lands_where_to_crop_says(side, size):
    image = np.zeros((800, 900, 3), np.uint8)
    point = np.array([[437.0, 371.0]])
    x, y = point[0].astype(int)
    image[y - 4:y + 5, x - 4:x + 5] = 255  # a 9x9 white square centred on the point
    box = CropBox(point[0, 0] - side * 0.4, point[0, 1] - side * 0.55, float(side))
    crop = crop_resize(image, box, size)[..., 0].astype(float)
    ys, xs = np.nonzero(crop > 0)
    weights = crop[ys, xs]
    centroid = np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()
    assert np.abs(centroid - box.to_crop(point, size)[0]).max() < 0.6
    labels = crop_resize(image[..., 0], box, size, nearest=True)
    assert set(np.unique(labels)) <= {0, 255}


def test_box_from_landmarks_rule_and_errors():
    landmarks = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], np.float32)
    box = crop_box_from_landmarks(landmarks)
    assert box.side == pytest.approx(3.0 * 40)  # max(inter-ocular 40, eyes-mouth 40)
    assert (box.x0 + box.side / 2, box.y0 + box.side / 2) == pytest.approx((60, 70))
    assert np.allclose(box.to_source(box.to_crop(landmarks, 128), 128), landmarks, atol=1e-4)
    with pytest.raises(ValueError, match="5 finite"):
        crop_box_from_landmarks(np.full((5, 2), np.nan))
