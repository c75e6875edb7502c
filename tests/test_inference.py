"""collaface.inference: paste-back exactness, Poisson blending, masks, region presets, faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import requires_mediapipe
from PIL import Image

from collaface import config, model_format
from collaface.blending import harmonic_fill, poisson_blend
from collaface.data import io
from collaface.data.crop import CropBox, box_mask, paste_back
from collaface.data.labels import LABEL_INDEX, from_celebamask_hq
from collaface.data.masks import freeform_mask
from collaface.inference.engine import MAX_HOLE_FRACTION, CompletionError, FaceCompleter, NoFaceError
from collaface.inference.files import read_mask
from collaface.inference.pictures import (
    CAPTION_HEIGHT,
    HOLE_COLOUR,
    SIDE_BY_SIDE_HEIGHT,
    landmarks_record,
    parsing_picture,
    side_by_side,
)
from collaface.model_format import ModelNotFoundError, default_model_dir
from collaface.models.build import build_model

MODEL_SIZE = 64


def make_tiny_model(out_dir, size: int = MODEL_SIZE, tasks: str = "[i, s, d]"):
    """An exported, randomly initialised ngf-8 generator at ``size`` px."""
    cfg = config.load_config("small", [f"data.image_size={size}", f"model.tasks={tasks}",
                                       f"loss.concentrated={'i' in tasks}"])
    state = {"config": config.to_dict(cfg), "step": 0, "generator": build_model(cfg).generator.state_dict()}
    return model_format.export_generator(state, out_dir)


@pytest.fixture(scope="module")
def completer(tmp_path_factory):
    with FaceCompleter(make_tiny_model(tmp_path_factory.mktemp("model")), device="cpu") as loaded:
        yield loaded


def random_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour field, (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 5, 3)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def shared_photo(shared_faces, name: str) -> np.ndarray:
    return io.load_rgb(shared_faces / name)


# --------------------------------------------------------------------------- paste back and blending


@pytest.mark.parametrize("blend", ["poisson", "none"])
def test_paste_back_leaves_known_pixels_bit_identical(blend):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (300, 220, 3), dtype=np.uint8)
    hole = freeform_mask((300, 220), rng, area=(0.1, 0.3)) > 0
    hole[:, :3] = True  # also touching the photo's border
    prediction = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    box = CropBox(-40.0, 10.0, 260.0)  # reaching outside the photo
    out = paste_back(image, hole, prediction, box, blend)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~hole], image[~hole])
    assert (out[hole] != image[hole]).any()


@pytest.mark.parametrize("blend", ["poisson", "none"])
def test_paste_back_through_a_turned_box(blend):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (240, 260, 3), dtype=np.uint8)
    box = CropBox(60.0, 50.0, 140.0, roll=35.0)
    inside = box_mask(box, image.shape[:2])
    assert inside.sum() == pytest.approx(140 * 140, rel=0.02)
    assert inside[120, 130] and not inside[52, 62]  # the centre in, the unturned corner out
    hole = np.zeros(image.shape[:2], bool)
    hole[100:140, 90:170] = True
    prediction = np.full((64, 64, 3), 40, np.uint8)
    prediction[:, 32:] = 220  # the crop's right half bright: after the turn, the photo's lower right
    out = paste_back(image, hole, prediction, box, blend)
    assert np.array_equal(out[~hole], image[~hole])
    if blend == "none":
        assert out[138, 168].mean() > 200 and out[101, 92].mean() < 60


@pytest.mark.parametrize("side, checkered", [(96.0, True), (256.0, False)])
def test_magnified_fill_loses_the_pixel_checkerboard(side, checkered):
    """A one-pixel checkerboard (the transposed convs' artefact) magnified 4x would become
    visible blocks: from 2x magnification the fill is low-passed first; at 1.5x it is kept."""
    checker = (np.indices((64, 64)).sum(0) % 2 * 120 + 60).astype(np.uint8)
    prediction = np.repeat(checker[..., None], 3, axis=2)
    image = np.full((300, 300, 3), 200, np.uint8)
    hole = np.zeros((300, 300), bool)
    hole[20:80, 20:80] = True
    out = paste_back(image, hole, prediction, CropBox(0.0, 0.0, side), "none")
    filled = out[hole].astype(float)
    assert abs(filled.mean() - 120) < 3
    assert (filled.std() > 10) == checkered, filled.std()


def test_harmonic_fill_reproduces_a_linear_ramp():
    """A linear function is harmonic: filling any hole in a ramp gives the ramp back."""
    height, width = 90, 130
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = np.stack([0.7 * xs + 0.2 * ys, 100 - 0.3 * ys, 0.5 * xs], axis=-1)
    hole = np.zeros((height, width), bool)
    hole[10:80, 20:110] = True
    hole[40:60, 0:30] = True  # reaches the left border (zero slope there)
    filled = harmonic_fill(np.where(hole[..., None], 0, ramp).astype(np.float32), hole)
    inner = hole.copy()
    inner[:, :30] = False  # away from the Neumann border the ramp is exact
    assert np.abs(filled - ramp)[inner].max() < 1.0


def test_poisson_blend_meets_the_known_pixels_without_a_seam():
    original = np.zeros((80, 100, 3), np.uint8)
    original[:] = (190, 140, 110)
    original[:, 50:] = (120, 90, 60)
    original[30:50, 30:70] = 0  # the occluder inside the hole is never used
    hole = np.zeros((80, 100), bool)
    hole[25:55, 25:75] = True
    prediction = np.full_like(original, 60)  # flat and far too dark
    blended = poisson_blend(prediction, original, hole)
    assert np.array_equal(blended[~hole], original[~hole])
    # the first hole pixel next to a known one differs from it by little (no seam; away from the
    # colour edge at x = 50), and the occluder's black is gone
    columns = np.r_[30:45, 56:70]
    step_in = np.abs(blended[25, columns].astype(int) - original[24, columns]).max()
    assert step_in <= 4
    assert blended[hole].min() > 50
    raw = paste_back(original, hole, prediction[:64, :64], CropBox(0, 0, 64), "none")
    assert np.abs(raw[25, 30:40].astype(int) - original[24, 30:40]).max() > 100


# --------------------------------------------------------------------------- masks


def write_mask(path, array: np.ndarray, mode: str | None = None) -> None:
    Image.fromarray(array, mode).save(path)


def test_read_mask_white_or_any_non_black_grey_is_hole(tmp_path):
    mask = np.zeros((40, 60), np.uint8)
    mask[10:20, 5:25] = 255
    mask[0, 0] = 1  # the faintest grey of a lossless mask: hole
    write_mask(tmp_path / "m.png", mask)
    hole = read_mask(tmp_path / "m.png", (40, 60))
    assert hole.dtype == bool and hole.sum() == 201 and hole[15, 10] and hole[0, 0] and not hole[0, 1]


def test_read_mask_of_a_jpeg_ignores_its_compression_noise(tmp_path):
    mask = cv2.circle(np.zeros((40, 64), np.uint8), (30, 19), 11, 255, -1)
    Image.fromarray(mask).save(tmp_path / "m.jpg", quality=60)
    assert (np.asarray(Image.open(tmp_path / "m.jpg")) > 0).sum() > (mask > 0).sum() + 50  # noisy black
    hole = read_mask(tmp_path / "m.jpg", (40, 64))
    assert (hole != (mask > 0)).sum() < 10


def test_read_mask_a_painted_layer_every_painted_pixel_is_hole(tmp_path):
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere, but transparent ...
    rgba[5:15, 5:15] = (255, 0, 0, 255)  # ... except a red stroke (grey 76) ...
    rgba[20:22, 30:40] = (0, 0, 0, 40)  # ... and a faint black one
    write_mask(tmp_path / "m.png", rgba, "RGBA")
    hole = read_mask(tmp_path / "m.png", (40, 60))
    assert hole.sum() == 120 and hole[10, 10] and hole[21, 35]


def test_read_mask_opaque_alpha_falls_back_to_the_grey_rule(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[5:10, 5:10, :3] = 255
    write_mask(tmp_path / "m.png", rgba, "RGBA")
    assert read_mask(tmp_path / "m.png", (20, 30)).sum() == 25


def test_read_mask_invert(tmp_path):
    mask = np.full((20, 30), 255, np.uint8)
    mask[5:10, 5:10] = 0  # black = hole
    write_mask(tmp_path / "m.png", mask)
    hole = read_mask(tmp_path / "m.png", (20, 30), invert=True)
    assert hole.sum() == 25 and hole[7, 7]


def test_read_mask_applies_exif_orientation(tmp_path):
    stored = np.zeros((30, 50), np.uint8)
    stored[0:10, 0:5] = 255  # top-left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    Image.fromarray(stored).save(tmp_path / "m.jpg", exif=exif, quality=100)
    hole = read_mask(tmp_path / "m.jpg", (50, 30))  # upright: 30 wide, 50 high
    assert hole[0:5, 20:30].all() and hole.sum() < 80


@pytest.mark.parametrize("fill, message", [(0, "empty"), (255, "every pixel is a hole")])
def test_read_mask_refuses_empty_and_all_hole_masks(tmp_path, fill, message):
    write_mask(tmp_path / "m.png", np.full((20, 30), fill, np.uint8))
    with pytest.raises(CompletionError, match=message) as info:
        read_mask(tmp_path / "m.png", (20, 30))
    assert "white" in str(info.value) and "m.png" in str(info.value)
    assert ("--invert-mask" in str(info.value)) == (fill == 255)


def test_read_mask_size_mismatch_and_resize(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:10] = 255
    write_mask(tmp_path / "m.png", mask)
    with pytest.raises(CompletionError, match=r"mask is 30x20 but the photo is 60x40.*--resize-mask"):
        read_mask(tmp_path / "m.png", (40, 60))
    hole = read_mask(tmp_path / "m.png", (40, 60), resize=True)
    assert hole.shape == (40, 60) and hole.sum() == 100


def test_read_mask_refuses_non_images(tmp_path):
    (tmp_path / "m.png").write_text("not a picture")
    with pytest.raises(io.ImageDecodeError, match="not an image"):
        read_mask(tmp_path / "m.png", (20, 30))
    with pytest.raises(io.ImageDecodeError, match="not found"):
        read_mask(tmp_path / "missing.png", (20, 30))


# --------------------------------------------------------------------------- the model


def test_missing_default_weights_name_the_expected_files(tmp_path, monkeypatch):
    import collaface.model_format as model_format

    monkeypatch.setattr(model_format, "DEFAULT_MODEL_DIR", tmp_path / "weights")
    with pytest.raises(ModelNotFoundError, match=r"weights.generator\.safetensors.*--model"):
        default_model_dir()


def test_model_without_the_image_task_is_refused(tmp_path):
    with pytest.raises(CompletionError, match="does not complete images"):
        FaceCompleter(make_tiny_model(tmp_path, tasks="[s]"), device="cpu")


def test_complete_no_detect_fills_only_the_hole(completer):
    image = random_photo(90, 70)  # not square: the crop is centred on the longer side
    hole = np.zeros((90, 70), bool)
    hole[30:50, 20:45] = True
    completion = completer.complete(image, hole=hole, no_detect=True)
    assert np.array_equal(completion.image[~hole], image[~hole])
    assert (completion.image[hole] != image[hole]).any()
    (face,) = completion.faces
    assert face.parsing.shape == (MODEL_SIZE, MODEL_SIZE) and face.parsing.max() < len(LABEL_INDEX)
    assert face.landmarks.shape == (5, 2) and face.detected is None
    again = completer.complete(image, hole=hole, no_detect=True)
    assert np.array_equal(again.image, completion.image)  # the noise is seeded
    sheet = parsing_picture(completion)
    assert sheet.ndim == 3 and sheet.shape[1] == 2 * 256 + 3 * 2
    assert side_by_side(image, completion).shape == (CAPTION_HEIGHT + 90 + 2 * 4, 3 * 70 + 4 * 4, 3)
    record = landmarks_record(completion, "x.png")
    assert record["width"] == 70 and len(record["faces"][0]["landmarks"]) == 5


@pytest.mark.parametrize("height", [90, 1200])  # 1200 rows: scaled down to SIDE_BY_SIDE_HEIGHT
def test_side_by_side_has_captions_and_an_opaque_hole(completer, height):
    image = random_photo(height, 70)
    hole = np.zeros((height, 70), bool)
    hole[height // 3: height // 2, 20:45] = True
    completion = completer.complete(image, hole=hole, no_detect=True)
    sheet = side_by_side(image, completion)
    rows = min(height, SIDE_BY_SIDE_HEIGHT)
    width = round(70 * rows / height)
    assert sheet.shape == (CAPTION_HEIGHT + rows + 2 * 4, 3 * width + 4 * 4, 3)
    top = 4 + CAPTION_HEIGHT
    panels = [sheet[top:top + rows, 4 + i * (width + 4): 4 + i * (width + 4) + width] for i in range(3)]
    painted = (panels[1] == HOLE_COLOUR).all(axis=2)
    if rows == height:  # unscaled: exactly the hole is painted, and painted over completely
        assert np.array_equal(painted, hole) and np.array_equal(panels[1][~hole], image[~hole])
        assert np.array_equal(panels[0], image) and np.array_equal(panels[2], completion.image)
    else:
        assert painted.sum() == pytest.approx(hole.sum() * (rows / height) ** 2, rel=0.2)
    bands = [sheet[4:top, 4 + i * (width + 4): 4 + i * (width + 4) + width] for i in range(3)]
    assert all((band < 100).any() for band in bands)  # dark caption text on each
    assert not np.array_equal(bands[0], bands[1]) and not np.array_equal(bands[1], bands[2])


def test_hole_covering_most_of_the_crop_is_refused(completer):
    image = random_photo(64, 64)
    hole = np.ones((64, 64), bool)
    hole[:20] = False
    assert hole.mean() > MAX_HOLE_FRACTION
    with pytest.raises(CompletionError, match="too little of the face"):
        completer.complete(image, hole=hole, no_detect=True)


def test_complete_needs_exactly_one_hole_source(completer):
    image = random_photo(64, 64)
    with pytest.raises(CompletionError, match="exactly one"):
        completer.complete(image, no_detect=True)
    with pytest.raises(CompletionError, match="hole is 10x10, photo is 64x64"):
        completer.complete(image, hole=np.ones((10, 10), bool), no_detect=True)


# --------------------------------------------------------------------------- real faces (mediapipe)


@requires_mediapipe
@pytest.mark.parametrize("region, label, covered, other", [
    ("left-eye", "left_eye", 0.9, "right_eye"),
    ("right-eye", "right_eye", 0.9, "left_eye"),
    ("nose", "nose", 0.8, None),  # the label runs up the bridge, between the eye boxes
    ("mouth", "upper_lip", 0.9, None),
    ("mouth", "lower_lip", 0.9, None),
])
def test_region_presets_land_on_the_right_feature(completer, shared_faces, region, label, covered, other):
    folder = shared_faces / "celebamaskhq_samples"
    image = io.load_rgb(folder / "images" / "0.jpg")
    labels = from_celebamask_hq(io.load_label_map(folder / "masks" / "0.png"))
    labels = cv2.resize(labels, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    completion = completer.complete(image, region=region)
    assert np.array_equal(completion.image[~completion.hole], image[~completion.hole])
    feature = labels == LABEL_INDEX[label]
    assert (completion.hole & feature).sum() / feature.sum() > covered
    if other:
        opposite = labels == LABEL_INDEX[other]
        assert (completion.hole & opposite).sum() / opposite.sum() < 0.02


@requires_mediapipe
@pytest.mark.parametrize("turn", [40, 90])  # a tilted head; a sideways photo
@pytest.mark.parametrize("region, label", [("left-eye", "left_eye"), ("mouth", "upper_lip")])
def test_region_presets_follow_a_tilted_face(completer, shared_faces, turn, region, label):
    folder = shared_faces / "celebamaskhq_samples"
    image = io.load_rgb(folder / "images" / "0.jpg")
    labels = from_celebamask_hq(io.load_label_map(folder / "masks" / "0.png"))
    labels = cv2.resize(labels, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    matrix = cv2.getRotationMatrix2D((512, 512), turn, 1.0)  # anticlockwise as displayed
    image = cv2.warpAffine(image, matrix, (1024, 1024), borderMode=cv2.BORDER_REPLICATE)
    labels = cv2.warpAffine(labels, matrix, (1024, 1024), flags=cv2.INTER_NEAREST)
    completion = completer.complete(image, region=region)
    (face,) = completion.faces
    assert face.box.roll == pytest.approx(-turn, abs=8)  # the crop was turned upright
    assert np.array_equal(completion.image[~completion.hole], image[~completion.hole])
    feature = labels == LABEL_INDEX[label]
    assert (completion.hole & feature).sum() / feature.sum() > 0.9
    assert completion.hole.sum() < 3 * feature.sum() + 60_000  # a box round the feature, not a band


def two_faces(shared_faces) -> np.ndarray:
    """Two different shared crops side by side, (220, 400, 3)."""
    names = ["182649.jpg", "182666.jpg"]
    tiles = [cv2.resize(shared_photo(shared_faces, f"celeba_crops/images/{n}"), (200, 220)) for n in names]
    return np.concatenate(tiles, axis=1)


@requires_mediapipe
def test_only_faces_the_hole_touches_are_completed(completer, shared_faces):
    photo = two_faces(shared_faces)
    faces = completer.find_faces(photo)
    assert len(faces) == 2
    hole = np.zeros(photo.shape[:2], bool)
    hole[90:110, 270:330] = True  # on the right face only
    completion = completer.complete(photo, hole=hole)
    (face,) = completion.faces
    assert face.box.x0 + face.box.side / 2 > 200
    assert np.array_equal(completion.image[~hole], photo[~hole])

    hole[90:110, 70:130] = True  # and now on the left face too
    assert len(completer.complete(photo, hole=hole).faces) == 2
    right = next(i for i, f in enumerate(faces) if f.box.x0 + f.box.side / 2 > 200)
    only_right = completer.complete(photo, hole=hole, face=right)  # the left face's hole stays
    assert len(only_right.faces) == 1 and not only_right.hole[:, :200].any()
    assert np.array_equal(only_right.image[:, :200], photo[:, :200])
    with pytest.raises(CompletionError, match="has 2 face"):
        completer.complete(photo, hole=hole, face=2)


@requires_mediapipe
def test_region_on_a_two_face_photo_covers_both(completer, shared_faces):
    photo = two_faces(shared_faces)
    completion = completer.complete(photo, region="mouth")
    assert len(completion.faces) == 2
    assert completion.hole[:, :200].any() and completion.hole[:, 200:].any()


@requires_mediapipe
def test_hole_outside_every_face_crop_is_refused(completer, shared_faces):
    face = shared_photo(shared_faces, "celeba_crops/images/182649.jpg")
    photo = np.full((900, 900, 3), 128, np.uint8)
    photo[:face.shape[0], :face.shape[1]] = face
    hole = np.zeros(photo.shape[:2], bool)
    hole[800:850, 800:850] = True
    with pytest.raises(CompletionError, match="outside every face's crop.*--no-detect"):
        completer.complete(photo, hole=hole)


@requires_mediapipe
def test_a_photo_without_a_face_raises_no_face(completer):
    blank = random_photo(300, 300)
    hole = np.zeros((300, 300), bool)
    hole[100:150, 100:150] = True
    with pytest.raises(NoFaceError, match="--no-detect"):
        completer.complete(blank, hole=hole)
