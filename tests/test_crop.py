"""The shared crop rule: boxes from landmarks, and crops that keep points on their pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from collaface.data.crop import CropBox, crop_box_from_landmarks, crop_resize, face_roll, straightened


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


def test_turned_box_straightens_a_turned_picture_and_maps_points_both_ways():
    image = np.zeros((400, 400), np.uint8)
    image[195:206, 120:281] = 255  # a horizontal bar through the centre, like an eye line
    turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((200, 200), 30, 1.0), (400, 400))  # 30 deg anticlockwise
    ends = np.array([[120.0, 200.0], [280.0, 200.0]])
    turn = cv2.getRotationMatrix2D((200, 200), 30, 1.0)
    turned_ends = ends @ turn[:, :2].T + turn[:, 2]
    assert face_roll(np.concatenate([turned_ends, np.zeros((3, 2))])) == pytest.approx(-30)
    box = CropBox(50.0, 50.0, 300.0, roll=-30.0)
    crop = crop_resize(turned, box, 150)
    rows = np.nonzero(crop.max(1) > 127)[0]
    assert rows.max() - rows.min() <= 7  # the bar is level again (11 px thick at half size)
    points = np.array([[10.0, 20.0], [333.0, 70.0], [200.0, 200.0]])
    assert np.allclose(box.to_source(box.to_crop(points, 150), 150), points, atol=1e-3)
    assert np.allclose(box.to_crop(turned_ends, 150), [[35, 75], [115, 75]], atol=0.5)
    level = CropBox(50.0, 50.0, 300.0)
    assert np.allclose(level.corners(), [[50, 50], [350, 50], [350, 350], [50, 350]])
    assert np.allclose(np.sort(box.corners(), 0), np.sort(_turned_square(200, 200, 150, -30), 0), atol=1e-3)


def _turned_square(cx: float, cy: float, half: float, degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.array([[-half, -half], [half, -half], [half, half], [-half, half]]) @ turn.T + [cx, cy]


def test_straightened_turns_only_beyond_the_limit():
    upright = np.array([[40, 50], [80, 52], [60, 70], [45, 90], [75, 90]], np.float32)
    box = crop_box_from_landmarks(upright)
    assert straightened(box, upright, 10.0) == box  # about 3 degrees: the paper's crop
    sideways = upright[:, ::-1].copy()  # transposed: eye line vertical, roll about 87 degrees
    turned = straightened(crop_box_from_landmarks(sideways), sideways, 10.0)
    assert turned.roll == pytest.approx(face_roll(sideways)) and abs(turned.roll) > 80
