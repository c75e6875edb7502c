"""Annotator: side convention and accuracy on real photos, parsing raster, missing extra."""

from __future__ import annotations

import csv
import time

import cv2
import numpy as np
import pytest
from conftest import requires_mediapipe

from collaface.data import annotate, labels
from collaface.data.io import load_label_map, load_rgb

POINT_COLUMNS = ("lex", "ley", "rex", "rey", "nx", "ny", "lmx", "lmy", "rmx", "rmy")


def test_chains_orders_open_and_closed_paths():
    ring = annotate._chains({(3, 1), (1, 2), (2, 3)})
    assert len(ring) == 1 and sorted(ring[0]) == [1, 2, 3]
    assert annotate._chains({(5, 6), (7, 6), (1, 2)}) == [[1, 2], [5, 6, 7]]
    assert annotate._band({(1, 2), (2, 3), (4, 5), (5, 6)}) == [1, 2, 3, 6, 5, 4]
    assert annotate._arc([0, 1, 2, 3, 4, 5], 1, 4, through=2) == [1, 2, 3, 4]
    assert annotate._arc([0, 1, 2, 3, 4, 5], 1, 4, through=0) == [1, 0, 5, 4]


def test_tiles_cover_the_photo_with_overlap():
    assert annotate._tile_sides(200, 320) == []
    assert annotate._tile_sides(2000, 320) == [1000, 500, 320]
    origins = annotate._tile_origins(1000, 320)
    assert origins[0] == 0 and origins[-1] == 680
    assert max(np.diff(origins)) <= 160


def test_missing_mediapipe_names_the_install_command(monkeypatch):
    real_import = annotate.importlib.import_module

    def no_mediapipe(name, *args):
        if name.split(".")[0] == "mediapipe":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args)

    monkeypatch.setattr(annotate.importlib, "import_module", no_mediapipe)
    annotate._import_mediapipe.cache_clear()  # imported once per process: forget an earlier test's import
    with pytest.raises(annotate.AnnotatorUnavailable, match=r"pip install 'collaface\[annotate\]'"):
        annotate.FaceAnnotator()
    assert issubclass(annotate.AnnotatorUnavailable, RuntimeError)


@pytest.fixture(scope="module")
def annotator():
    with annotate.FaceAnnotator() as instance:
        yield instance


@pytest.fixture(scope="module")
def celeba_rows(shared_faces):
    with open(shared_faces / "celeba_aligned" / "landmarks.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:8]
    truth = np.array([[float(r[c]) for c in POINT_COLUMNS] for r in rows]).reshape(-1, 5, 2)
    images = [load_rgb(shared_faces / "celeba_aligned" / "images" / r["file"]) for r in rows]
    return images, truth


@requires_mediapipe
def test_landmarks_match_official_celeba_points(annotator, celeba_rows):
    images, truth = celeba_rows
    predicted = np.array([annotator.annotate(image)[0].landmarks for image in images])
    assert predicted.shape == truth.shape and predicted.dtype == np.float32
    error = np.linalg.norm(predicted - truth, axis=2)               # (8, 5) pixels
    assert np.median(error, axis=0).max() < 3.0, error.round(1)
    assert error.max() < 10.0, error.round(1)                      # a side swap is ~38 px
    assert (predicted[:, 0, 0] < predicted[:, 1, 0]).all()          # left eye on the image left
    assert (predicted[:, 3, 0] < predicted[:, 4, 0]).all()


@requires_mediapipe
def test_mirrored_photo_keeps_image_side_order(annotator, celeba_rows):
    image = celeba_rows[0][0]
    width = image.shape[1]
    original = annotator.annotate(image)[0].landmarks
    mirrored = annotator.annotate(np.ascontiguousarray(image[:, ::-1]))[0].landmarks
    expected = original[labels.LANDMARK_FLIP] * [-1, 1] + [width - 1, 0]
    assert np.abs(mirrored - expected).max() < 2.5


@requires_mediapipe
def test_parsing_puts_parts_on_the_right_features(annotator, celeba_rows):
    image = celeba_rows[0][0]
    face = annotator.annotate(image)[0]
    parsing = annotate.rasterize_parsing(face.mesh, image.shape[:2])
    assert parsing.shape == image.shape[:2] and parsing.dtype == np.uint8
    assert labels.LABEL_INDEX["hair"] not in parsing
    for point, part in zip(face.landmarks[:3], ("left_eye", "right_eye", "nose")):
        x, y = np.round(point).astype(int)
        assert (parsing[y - 1:y + 2, x - 1:x + 2] == labels.LABEL_INDEX[part]).any(), part

    def centroid(part):
        ys, xs = np.nonzero(parsing == labels.LABEL_INDEX[part])
        assert len(xs) > 10, part
        return xs.mean(), ys.mean()

    assert centroid("left_eye")[0] < centroid("right_eye")[0]
    assert centroid("left_brow")[0] < centroid("right_brow")[0]
    assert centroid("left_brow")[1] < centroid("left_eye")[1] < centroid("nose")[1] < centroid("upper_lip")[1]
    assert centroid("upper_lip")[1] < centroid("lower_lip")[1]


@requires_mediapipe
def test_parsing_transform_equals_transformed_mesh(annotator, celeba_rows):
    mesh = annotator.annotate(celeba_rows[0][0])[0].mesh
    affine = np.array([[1.3, 0.0, -20.0], [0.0, 1.3, -35.0]])
    moved = mesh @ affine[:, :2].T + affine[:, 2]
    np.testing.assert_array_equal(
        annotate.rasterize_parsing(mesh, (160, 150), transform=affine),
        annotate.rasterize_parsing(moved, (160, 150)),
    )


@requires_mediapipe
def test_parsing_overlaps_celebamask_hq(annotator, shared_faces):
    folder = shared_faces / "celebamaskhq_samples"
    truth = labels.from_celebamask_hq(load_label_map(folder / "masks" / "0.png"))
    face = annotator.annotate(load_rgb(folder / "images" / "0.jpg"))[0]
    parsing = annotate.rasterize_parsing((face.mesh + 0.5) * 0.5 - 0.5, truth.shape)
    for part in ("skin", "left_eye", "right_eye", "nose", "upper_lip", "lower_lip", "left_brow"):
        a, b = parsing == labels.LABEL_INDEX[part], truth == labels.LABEL_INDEX[part]
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.7, part


@requires_mediapipe
def test_finds_small_and_large_faces_largest_first(annotator, shared_faces):
    crops = sorted((shared_faces / "celeba_crops" / "images").glob("*.jpg"))[:2]
    noise = np.random.default_rng(0).integers(0, 255, (1200, 1600, 3), np.uint8)
    canvas = cv2.GaussianBlur(noise, (0, 0), 9)
    big = cv2.resize(load_rgb(crops[0]), (300, 330))
    small = cv2.resize(load_rgb(crops[1]), (70, 77))
    canvas[100:430, 150:450] = big
    canvas[900:977, 1300:1370] = small
    faces = annotator.annotate(canvas)
    assert len(faces) == 2
    assert 150 < faces[0].landmarks[2, 0] < 450 and 1300 < faces[1].landmarks[2, 0] < 1370
    assert faces[0].mesh.shape == (478, 2) and faces[0].score > 0.5


@requires_mediapipe
def test_blank_photo_has_no_face_and_bad_input_is_refused(annotator):
    assert annotator.annotate(np.full((300, 400, 3), 128, np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        annotator.annotate(np.zeros((64, 64, 3), np.float32))


def test_native_stderr_silenced_nests_and_restores(capfd):
    with annotate.native_stderr_silenced():
        annotate.os.write(2, b"hidden\n")
        with annotate.native_stderr_silenced():
            annotate.os.write(2, b"nested\n")
        annotate.os.write(2, b"still hidden\n")
    annotate.os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"


@requires_mediapipe
def test_annotating_prints_no_native_log_chatter(capfd, shared_faces):
    photo = load_rgb(shared_faces / "celeba_crops" / "images" / "182649.jpg")
    with annotate.FaceAnnotator() as fresh:  # graph set-up (on mediapipe's threads) and first run log
        time.sleep(1.0)  # the graphs' set-up runs on after the constructors return
        err = capfd.readouterr().err
        assert "XNNPACK" not in err and "W0000" not in err and "absl" not in err, err
        assert len(fresh.annotate(photo)) == 1
        time.sleep(0.2)
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and "W0000" not in err and "absl" not in err, err
