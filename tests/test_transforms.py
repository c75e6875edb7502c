"""Joint augmentation: geometry shared by image, parsing and landmarks; flip swaps; conversions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from collaface.config import AugmentConfig
from collaface.data.io import load_label_map, load_rgb
from collaface.data.labels import LABEL_COLORS, LABEL_FLIP, LABEL_INDEX, LANDMARK_FLIP, from_celebamask_hq
from collaface.data.transforms import (
    AffineParams,
    affine_matrix,
    sample_affine,
    to_tensor_image,
    to_uint8_image,
    warp_sample,
)

# Strong augmentation so that every effect is exercised; flips half of the time.
STRONG = AugmentConfig(enabled=True, shift=0.1, scale=(0.8, 1.25), rotation=30.0, flip=0.5)

# One blob label per landmark; the mouth corners borrow the brow labels to get a left/right pair.
BLOB_LABELS = np.array([LABEL_INDEX[n] for n in ("left_eye", "right_eye", "nose", "left_brow", "right_brow")])
BLOB_CENTRES = np.array(
    [[90.3, 100.6], [165.8, 98.2], [128.4, 140.1], [100.7, 185.5], [155.2, 187.9]], np.float32
)


def synthetic_sample(side: int = 256, radius: float = 7.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skin face with a labelled disc around each landmark; the image is the labels' colours."""
    yy, xx = np.mgrid[:side, :side]
    parsing = np.full((side, side), LABEL_INDEX["skin"], np.uint8)
    parsing[(xx - side / 2) ** 2 + (yy - side / 2) ** 2 > (0.45 * side) ** 2] = LABEL_INDEX["background"]
    landmarks = BLOB_CENTRES * side / 256
    for label, (x, y) in zip(BLOB_LABELS, landmarks):
        parsing[(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = label
    return LABEL_COLORS[parsing], parsing, landmarks


def label_centroid(parsing: np.ndarray, label: int) -> np.ndarray:
    ys, xs = np.nonzero(parsing == label)
    return np.array([xs.mean(), ys.mean()])


def test_sample_affine_is_deterministic_and_respects_ranges():
    a = [sample_affine(STRONG, np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    params = [sample_affine(STRONG, np.random.default_rng(seed)) for seed in range(300)]
    assert all(abs(p.shift_x) <= 0.1 and abs(p.shift_y) <= 0.1 for p in params)
    assert all(0.8 <= p.scale <= 1.25 and abs(p.angle) <= 30 for p in params)
    assert 0.35 < np.mean([p.flip for p in params]) < 0.65
    disabled = AugmentConfig(enabled=False)
    assert sample_affine(disabled, np.random.default_rng(0)) == AffineParams.identity()


def test_same_seed_gives_identical_output():
    image, parsing, landmarks = synthetic_sample()
    outputs = []
    for _ in range(2):
        params = sample_affine(STRONG, np.random.default_rng(123))
        outputs.append(warp_sample(image, parsing, landmarks, params, 128))
    for first, second in zip(*outputs):
        np.testing.assert_array_equal(first, second)


def test_identity_is_a_centre_aligned_resize():
    image, parsing, landmarks = synthetic_sample(256)
    identity = AffineParams.identity()
    out_image, out_parsing, out_landmarks = warp_sample(image, parsing, landmarks, identity, 128)
    assert out_image.shape == (128, 128, 3) and out_image.dtype == np.uint8
    assert out_parsing.shape == (128, 128) and out_parsing.dtype == np.uint8
    assert out_landmarks.dtype == np.float32
    np.testing.assert_allclose(out_landmarks, (landmarks + 0.5) / 2 - 0.5, atol=1e-4)
    # 2x shrink is an exact 2x2 box average; 2x enlargement matches cv2.resize within rounding.
    np.testing.assert_array_equal(out_image, cv2.resize(image, (128, 128), interpolation=cv2.INTER_AREA))
    small = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)
    enlarged, _, _ = warp_sample(small, None, None, identity, 128)
    assert np.abs(enlarged.astype(int) - cv2.resize(small, (128, 128))).max() <= 1
    same, _, _ = warp_sample(image, None, None, identity, 256)
    np.testing.assert_array_equal(same, image)


def test_marked_pixel_keeps_its_landmark():
    """Pixel centres are integers: a landmark on a marked pixel's centre stays on its centre."""
    side = 64
    mark = np.array([[29.0, 35.0]], np.float32)
    landmarks = np.repeat(mark, 5, axis=0)
    image = np.zeros((side, side, 3), np.uint8)
    image[35, 29] = 255
    parsing = np.zeros((side, side), np.uint8)
    parsing[35, 29] = LABEL_INDEX["nose"]
    # Enlarging 2x: input pixel 29 covers output pixels 58 and 59, centred on 58.5.
    _, out_parsing, out_landmarks = warp_sample(image, parsing, landmarks, AffineParams.identity(), 128)
    np.testing.assert_allclose(out_landmarks[0], [58.5, 70.5])
    assert set(zip(*np.nonzero(out_parsing))) == {(70, 58), (70, 59), (71, 58), (71, 59)}
    # Random magnifying warps: the mark's footprint (away from the border) is centred on the
    # warped landmark, in the parsing (nearest) and in the image (bilinear).
    rng = np.random.default_rng(0)
    config = AugmentConfig(shift=0.1, scale=(1.5, 2.5), rotation=45.0, flip=0.5)
    for _ in range(50):
        params = sample_affine(config, rng)
        out_image, out_parsing, out_landmarks = warp_sample(image, parsing, landmarks, params, 128)
        nose = label_centroid(out_parsing, LABEL_INDEX["nose"])
        np.testing.assert_allclose(nose, out_landmarks[0], atol=0.5)
        weights = out_image[..., 0].astype(np.float64)
        yy, xx = np.mgrid[:128, :128]
        centroid = np.array([(weights * xx).sum(), (weights * yy).sum()]) / weights.sum()
        np.testing.assert_allclose(centroid, out_landmarks[0], atol=0.1)


def test_flip_mirrors_and_swaps_sides():
    image, parsing, landmarks = synthetic_sample()
    flip = AffineParams(flip=True)
    out_image, out_parsing, out_landmarks = warp_sample(image, parsing, landmarks, flip, 256)
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    np.testing.assert_array_equal(out_parsing, LABEL_FLIP[parsing[:, ::-1]])
    mirrored = np.stack([255 - landmarks[:, 0], landmarks[:, 1]], axis=1)
    np.testing.assert_allclose(out_landmarks, mirrored[LANDMARK_FLIP], atol=1e-4)
    # Image-side convention: the left_eye blob and landmark 0 are on the image's left again.
    left, right = LABEL_INDEX["left_eye"], LABEL_INDEX["right_eye"]
    assert label_centroid(out_parsing, left)[0] < 128 < label_centroid(out_parsing, right)[0]
    assert out_landmarks[0, 0] < 128 < out_landmarks[1, 0]
    # Flipping twice restores everything exactly.
    twice = warp_sample(out_image, out_parsing, out_landmarks, flip, 256)
    for restored, original in zip(twice, (image, parsing, landmarks)):
        np.testing.assert_array_equal(restored, original)


def test_random_warps_keep_landmarks_on_their_features():
    image, parsing, landmarks = synthetic_sample()
    rng = np.random.default_rng(1)
    flips = 0
    for _ in range(200):
        params = sample_affine(STRONG, rng)
        flips += params.flip
        out_image, out_parsing, out_landmarks = warp_sample(image, parsing, landmarks, params, 128)
        for label, (x, y) in zip(BLOB_LABELS, out_landmarks):
            col, row = round(x), round(y)
            neighbourhood = out_parsing[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2]
            assert (neighbourhood == label).any(), (params, label)
            np.testing.assert_allclose(label_centroid(out_parsing, label), (x, y), atol=0.75)
        # Image and parsing share the geometry: away from label edges (where the image blends),
        # the colours are those of the (unswapped) labels.
        shown = (LABEL_FLIP[out_parsing] if params.flip else out_parsing).astype(np.uint8)
        interior = cv2.erode(shown, np.ones((3, 3), np.uint8)) == cv2.dilate(shown, np.ones((3, 3), np.uint8))
        matches = np.abs(out_image.astype(int) - LABEL_COLORS[shown]).max(axis=-1) <= 1
        assert matches[interior].mean() > 0.99
    assert 60 < flips < 140


def test_border_is_replicated():
    image, parsing, landmarks = synthetic_sample()
    out_image, out_parsing, _ = warp_sample(image, parsing, landmarks, AffineParams(scale=0.5, angle=20), 128)
    assert out_parsing[0, 0] == parsing[0, 0] and (out_image[0, 0] == image[0, 0]).all()


def test_rejects_non_square_or_mismatched_inputs():
    with pytest.raises(ValueError, match="square"):
        warp_sample(np.zeros((64, 48, 3), np.uint8), None, None, AffineParams.identity(), 32)
    with pytest.raises(ValueError, match="parsing shape"):
        image, parsing = np.zeros((64, 64, 3), np.uint8), np.zeros((32, 32), np.uint8)
        warp_sample(image, parsing, None, AffineParams.identity(), 32)


def test_matrix_conventions():
    # Counter-clockwise rotation as displayed (y points down): a point right of centre moves up.
    matrix = affine_matrix(AffineParams(angle=90), 65, 65)
    np.testing.assert_allclose(matrix @ [42, 32, 1], [32, 22], atol=1e-9)
    # Positive shift moves the content right and down by a fraction of the output side.
    matrix = affine_matrix(AffineParams(shift_x=0.25, shift_y=-0.125), 64, 128)
    np.testing.assert_allclose(matrix @ [31.5, 31.5, 1], [63.5 + 32, 63.5 - 16])


def test_image_tensor_round_trip():
    values = np.arange(256, dtype=np.uint8)
    image = np.stack([values.reshape(16, 16)] * 3, axis=-1)
    tensor = to_tensor_image(image)
    assert tensor.shape == (3, 16, 16) and tensor.dtype == torch.float32
    assert tensor.min() == -1 and tensor.max() == 1
    np.testing.assert_array_equal(to_uint8_image(tensor), image)
    batch = torch.stack([tensor, tensor.flip(-1)])
    np.testing.assert_array_equal(to_uint8_image(batch), np.stack([image, image[:, ::-1]]))
    # Rounds to nearest and clips out-of-range outputs.
    nudged = tensor + 0.49 / 127.5
    np.testing.assert_array_equal(to_uint8_image(nudged), image)
    assert to_uint8_image(torch.full((3, 2, 2), 1.5)).max() == 255
    assert to_uint8_image(torch.full((3, 2, 2), -1.5)).min() == 0


def test_real_faces_follow_the_warp(shared_faces):
    """CelebAMask-HQ: part centroids, used as pseudo-landmarks, follow every warp."""
    folder = shared_faces / "celebamaskhq_samples"
    parts = ("left_eye", "right_eye", "nose", "left_brow", "right_brow")
    part_labels = [LABEL_INDEX[p] for p in parts]
    rng = np.random.default_rng(2)
    for image_path in sorted((folder / "images").glob("*.jpg"))[:3]:
        image = cv2.resize(load_rgb(image_path), (512, 512), interpolation=cv2.INTER_AREA)
        parsing = from_celebamask_hq(load_label_map(folder / "masks" / f"{image_path.stem}.png"))
        landmarks = np.array([label_centroid(parsing, label) for label in part_labels], np.float32)
        assert landmarks[0, 0] < landmarks[1, 0], "left_eye must be on the image's left"
        for _ in range(10):
            params = sample_affine(STRONG, rng)
            out_image, out_parsing, out_landmarks = warp_sample(image, parsing, landmarks, params, 128)
            assert out_image.shape == (128, 128, 3)
            for label, point in zip(part_labels, out_landmarks):
                np.testing.assert_allclose(label_centroid(out_parsing, label), point, atol=1.0)
            assert out_landmarks[0, 0] < out_landmarks[1, 0] or abs(params.angle) > 60
