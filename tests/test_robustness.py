"""Issue 20: occluded, tight and turned faces are found, holes near a face are not refused, any
framing is completed at the model's scale, real occluders; known pixels stay bit-identical."""

from __future__ import annotations

import argparse
import csv

import cv2
import numpy as np
import pytest
from conftest import requires_mediapipe
from PIL import Image
from test_inference import make_tiny_model, random_photo

from collaface.contracts import LABELS
from collaface.data import face_search, io
from collaface.data.annotate import AnnotatorUnavailable, FaceAnnotation, FaceAnnotator
from collaface.data.crop import CropBox, box_mask, crop_box_from_landmarks, crop_resize, whole_image_box
from collaface.data.crop_fit import Framing, fitted_box, hole_outline
from collaface.data.face_search import classical_fill, mapped_back, padded, search_faces, turned
from collaface.data.masks import occlusion_mask
from collaface.inference.cli import add_complete_parser
from collaface.inference.engine import CompletionError, FaceCompleter, NoFaceError
from collaface.inference.runtime import heatmap_peaks

RED, BLUE = (255, 0, 0), (0, 0, 255)


# --------------------------------------------------------------------------- geometry of the copies


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_turned_copy_map_sends_each_pixel_to_its_place(degrees):
    image = np.zeros((7, 11, 3), np.uint8)
    image[2, 9] = RED  # (x, y) = (9, 2)
    copy, to_copy = turned(image, degrees)
    x, y = np.rint(to_copy @ [9, 2, 1]).astype(int)
    assert tuple(copy[y, x]) == RED


def test_padded_copy_and_mapping_back_round_trip():
    image = np.zeros((40, 30, 3), np.uint8)
    copy, to_copy = padded(image)
    assert copy.shape == (80, 70, 3) and tuple(copy[0, 0]) == face_search.PAD_GREY
    points = np.array([[3.0, 4.0], [20.0, 35.5]])
    on_copy = points @ to_copy[:, :2].T + to_copy[:, 2]
    face = FaceAnnotation(landmarks=on_copy[[0, 1, 0, 1, 0]].astype(np.float32),
                          mesh=np.repeat(on_copy, 239, 0).astype(np.float32), box=(23.0, 24.0, 40.0, 55.5), score=0.9)
    back = mapped_back(face, to_copy)
    np.testing.assert_allclose(back.landmarks[:2], points, atol=1e-4)
    np.testing.assert_allclose(back.box, (3.0, 4.0, 20.0, 35.5), atol=1e-4)


@pytest.mark.parametrize("side", [120, 700])  # below and above PREFILL_SIDE
def test_classical_fill_keeps_known_pixels_and_never_reads_the_hole(side):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (side, side + 10, 3), dtype=np.uint8)
    hole = np.zeros(image.shape[:2], bool)
    hole[side // 3: side // 2, side // 4: side // 2] = True
    other = image.copy()
    other[hole] = 255
    filled = classical_fill(image, hole)
    assert np.array_equal(filled[~hole], image[~hole])
    assert np.array_equal(filled, classical_fill(other, hole))


# --------------------------------------------------------------------------- the search, with a stand-in detector


def marker_face(image: np.ndarray, upright_score: float, other_score: float) -> list[FaceAnnotation]:
    """A stand-in detector: the 'face' is a red pixel (eyes) above or below a blue one (mouth) in
    the same column; upright (red above) it scores ``upright_score``, else ``other_score``."""
    red, blue = (np.argwhere((image == c).all(-1)) for c in (RED, BLUE))
    if len(red) != 1 or len(blue) != 1:
        return []
    (ry, rx), (by, bx) = red[0], blue[0]
    upright = ry < by and rx == bx
    landmarks = np.array([[rx, ry]] * 5, np.float32)
    return [FaceAnnotation(landmarks=landmarks, mesh=np.repeat(landmarks[:1], 478, 0),
                           box=(rx - 5.0, ry - 5.0, rx + 5.0, ry + 5.0),
                           score=upright_score if upright else other_score)]


def marked_photo(red_xy: tuple[int, int], blue_xy: tuple[int, int], shape=(60, 40)) -> np.ndarray:
    image = np.full((*shape, 3), 90, np.uint8)
    image[red_xy[1], red_xy[0]] = RED
    image[blue_xy[1], blue_xy[0]] = BLUE
    return image


def test_an_upside_down_face_is_found_on_the_turned_copy_and_mapped_back():
    photo = marked_photo((20, 40), (20, 10))  # eyes below the mouth
    found = search_faces(lambda image: marker_face(image, 0.95, 0.6), photo)
    assert found[0].score == 0.95
    np.testing.assert_allclose(found[0].landmarks[0], (20, 40), atol=1e-4)


def test_a_confident_find_ends_the_search():
    calls = []

    def annotate(image):
        calls.append(image.shape)
        return marker_face(image, 0.9, 0.9)

    found = search_faces(annotate, marked_photo((20, 10), (20, 40)))
    assert len(calls) == 1 and found[0].score == 0.9


def test_weak_finds_on_turned_copies_are_no_faces():
    def annotate(image, score):
        return marker_face(image, score, 0.0) if image.shape[0] < image.shape[1] else []  # turned 90 or 270 only

    photo = marked_photo((10, 30), (35, 30))  # side by side: upright only when turned a quarter
    assert search_faces(lambda image: annotate(image, face_search.TURN_MIN_SCORE - 0.02), photo) == []
    assert search_faces(lambda image: annotate(image, face_search.TURN_MIN_SCORE + 0.02), photo)


def test_the_hole_is_prefilled_and_the_padded_copy_tried_for_faces_that_fill_the_frame():
    seen = []

    def annotate(image):  # a face only on a copy larger than the photo, never with the hole's grey
        seen.append(image.copy())
        return marker_face(image, 0.7, 0.7) if image.shape[0] > 60 else []

    photo = marked_photo((20, 10), (20, 40))
    hole = np.zeros(photo.shape[:2], bool)
    hole[20:30, 5:35] = True
    photo[hole] = 128
    found = search_faces(annotate, photo, hole)
    np.testing.assert_allclose(found[0].landmarks[0], (20, 10), atol=1e-4)
    assert not (seen[0][hole] == 128).all(-1).any()  # the first try sees the pre-filled hole


# --------------------------------------------------------------------------- fitting the crop to the hole


def hole_box(x0: int, y0: int, x1: int, y1: int, shape=(400, 400)) -> np.ndarray:
    hole = np.zeros(shape, bool)
    hole[y0:y1, x0:x1] = True
    return hole


FRAMING = Framing.from_augmentation(True, (0.6, 1.5), 0.05)  # the new default recipe's


def test_framing_from_the_training_augmentation():
    assert Framing(max_zoom_out=1 / 0.6, max_shift=0.05) == FRAMING
    assert Framing.from_augmentation(False, (0.6, 1.5), 0.05) == Framing(1.0, 0.0)


def test_a_hole_inside_the_crop_keeps_the_crop():
    box = CropBox(100.0, 100.0, 200.0)
    assert fitted_box(box, hole_outline(hole_box(150, 150, 250, 250)), FRAMING) == (box, True)


@pytest.mark.parametrize("roll", [0.0, 30.0, 180.0])
def test_a_hole_beyond_the_crop_gets_the_smallest_crop_that_holds_it(roll):
    box = CropBox(100.0, 100.0, 200.0, roll)
    hole = hole_box(150, 150, 330, 250)  # 30+ px beyond the unturned box's right side
    grown, holds = fitted_box(box, hole_outline(hole), FRAMING)
    assert holds and box.side < grown.side <= box.side / 0.6 + 1e-6 and grown.roll == roll
    assert not (hole & ~box_mask(grown, hole.shape)).any()


def test_only_the_shift_is_used_when_it_is_enough():
    box = CropBox(100.0, 100.0, 200.0)
    grown, holds = fitted_box(box, hole_outline(hole_box(150, 150, 305, 250)), FRAMING)
    assert holds and grown.side == box.side and 0 < grown.x0 - box.x0 <= 0.05 * box.side


def test_a_hole_beyond_every_crop_gets_the_largest_crop_towards_it():
    box = CropBox(100.0, 100.0, 200.0)
    grown, holds = fitted_box(box, hole_outline(hole_box(150, 150, 399, 250)), Framing(1.1, 0.05))
    assert not holds and grown.side == pytest.approx(220.0) and grown.x0 > box.x0 - 10


# --------------------------------------------------------------------------- completion with a tiny model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def completer(model):
    with FaceCompleter(model, device="cpu") as loaded:
        yield loaded


@pytest.fixture(scope="module")
def detector():
    try:
        with FaceAnnotator(min_tile=1 << 30) as loaded:
            yield loaded
    except AnnotatorUnavailable:
        pytest.skip("annotation extra (mediapipe) not installed")


def shared_face(shared_faces, name: str = "182649.jpg") -> np.ndarray:
    return io.load_rgb(shared_faces / "celeba_crops" / "images" / name)


def landmarks_of(detector, image: np.ndarray) -> np.ndarray:
    (face, *_) = detector.annotate(image)
    return face.landmarks


def framed(image: np.ndarray, landmarks: np.ndarray, scale: float, side: int = 200):
    """The face at ``scale`` x the crop rule's size in a ``side`` px square, with its landmarks."""
    box = crop_box_from_landmarks(landmarks, 3.0 / scale)
    return crop_resize(image, box, side), box.to_crop(landmarks, side)


def completes_only_the_hole(completer, photo, hole, **kwargs):
    completion = completer.complete(photo, hole=hole, **kwargs)
    assert np.array_equal(completion.image[~hole], photo[~hole])
    assert completion.faces
    return completion


@requires_mediapipe
@pytest.mark.parametrize("name", ["182649.jpg", "182666.jpg", "182697.jpg"])
def test_a_tight_crop_with_both_eyes_greyed_is_found(completer, detector, shared_faces, name):
    clean = shared_face(shared_faces, name)
    photo, landmarks = framed(clean, landmarks_of(detector, clean), 1.5)
    hole = occlusion_mask("O3", landmarks, photo.shape[:2]) > 0
    photo[hole] = 128
    completion = completes_only_the_hole(completer, photo, hole)
    error = np.linalg.norm(completion.faces[0].detected - landmarks, axis=1)
    assert error.max() < 0.15 * photo.shape[0]  # the hidden eyes are the mesh's guess


@requires_mediapipe
@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_turned_face_with_a_hole_is_found_upright(completer, detector, shared_faces, degrees):
    upright = shared_face(shared_faces)
    landmarks = landmarks_of(detector, upright)
    hole = np.ascontiguousarray(np.rot90(occlusion_mask("O1", landmarks, upright.shape[:2]) > 0, degrees // 90))
    photo, to_photo = turned(upright, degrees)
    photo[hole] = 128
    completion = completes_only_the_hole(completer, photo, hole)
    (face,) = completion.faces
    expected = landmarks @ to_photo[:, :2].T + to_photo[:, 2]
    assert np.linalg.norm(face.detected - expected, axis=1).max() < 0.1 * max(photo.shape)
    assert abs((face.box.roll + degrees + 180) % 360 - 180) < 20  # the crop is turned back upright


def sunglasses(photo: np.ndarray, landmarks: np.ndarray) -> None:
    eye_gap = float(np.linalg.norm(landmarks[1] - landmarks[0]))
    axes = (round(0.38 * eye_gap), round(0.27 * eye_gap))
    for eye in landmarks[:2]:
        cv2.ellipse(photo, tuple(int(v) for v in np.rint(eye)), axes, 0, 0, 360, (20, 20, 25), -1)
    cv2.line(photo, tuple(int(v) for v in landmarks[0]), tuple(int(v) for v in landmarks[1]), (20, 20, 25), 3)


def hand(photo: np.ndarray, landmarks: np.ndarray) -> None:
    mouth = landmarks[3:].mean(0)
    size = float(np.linalg.norm(landmarks[4] - landmarks[3]))
    palm = mouth + size * np.array([[-1.2, -0.3], [0.9, -0.6], [1.4, 0.4], [1.1, 1.6], [-0.8, 1.8], [-1.5, 0.8]])
    cv2.fillPoly(photo, [np.rint(palm).astype(np.int32)], (224, 172, 138))


def text(photo: np.ndarray, landmarks: np.ndarray) -> None:
    x, y = np.rint(landmarks[2] + [-0.9 * np.linalg.norm(landmarks[1] - landmarks[0]), 0]).astype(int)
    cv2.putText(photo, "SAMPLE", (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (250, 250, 250), 3)


@requires_mediapipe
@pytest.mark.parametrize("draw", [sunglasses, hand, text])
def test_real_occluders_are_found_and_only_their_pixels_change(completer, detector, shared_faces, draw):
    clean = shared_face(shared_faces, "182650.jpg")
    photo = clean.copy()
    draw(photo, landmarks_of(detector, clean))
    drawn = (photo != clean).any(-1)
    hole = cv2.dilate(drawn.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # as a person paints it
    completes_only_the_hole(completer, photo, hole)


# --------------------------------------------------------------------------- holes beyond the crop


def face_on_canvas(shared_faces, detector, side: int = 500):
    face = shared_face(shared_faces)
    photo = np.full((side, side, 3), 110, np.uint8)
    photo[100:100 + face.shape[0], 100:100 + face.shape[1]] = face
    landmarks = landmarks_of(detector, photo)
    return photo, crop_box_from_landmarks(landmarks)


@requires_mediapipe
def test_a_hole_reaching_beyond_the_rule_crop_is_completed_in_a_grown_crop(completer, detector, shared_faces):
    photo, box = face_on_canvas(shared_faces, detector)
    x1 = round(box.x0 + box.side * 1.04)  # 4% of the side beyond the crop; the tiny model's framing is 0.9-1.1
    hole = np.zeros(photo.shape[:2], bool)
    hole[round(box.y0 + box.side * 0.4): round(box.y0 + box.side * 0.6), round(box.x0 + box.side * 0.7): x1] = True
    (face,) = completes_only_the_hole(completer, photo, hole).faces
    rule = crop_box_from_landmarks(face.detected)  # found with the hole pre-filled
    assert (hole & ~box_mask(rule, hole.shape)).any() and box_mask(face.box, hole.shape)[hole].all()
    assert rule.side <= face.box.side <= rule.side / 0.9 + 1e-6


@requires_mediapipe
def test_a_small_part_beyond_every_crop_is_filled_classically(completer, detector, shared_faces):
    photo, box = face_on_canvas(shared_faces, detector)
    hole = np.zeros(photo.shape[:2], bool)
    y0, y1 = round(box.y0 + box.side * 0.4), round(box.y0 + box.side * 0.6)
    hole[y0:y1, round(box.x0 + box.side * 0.6): round(box.x0 + box.side * 1.25)] = True
    completion = completes_only_the_hole(completer, photo, hole)
    (face,) = completion.faces
    beyond = hole & ~box_mask(face.box, hole.shape)
    assert beyond.any() and (completion.image[beyond] != photo[beyond]).any()


@requires_mediapipe
def test_a_hole_mostly_beyond_every_crop_is_refused_with_the_reason(completer, detector, shared_faces):
    photo, box = face_on_canvas(shared_faces, detector)
    hole = np.zeros(photo.shape[:2], bool)
    hole[round(box.y0 + box.side * 0.4): round(box.y0 + box.side * 0.6),
         round(box.x0 + box.side * 0.9): round(box.x0 + box.side * 1.6)] = True
    with pytest.raises(CompletionError, match=r"outside the largest crop the model handles.*1\.11x"):
        completer.complete(photo, hole=hole)


class StandInDetector:
    """Finds one face (fixed landmarks of a 100 x 100 photo) only on copies padded by
    ``face_search.padded``, as mediapipe finds some faces that fill the frame; or never."""

    LANDMARKS = np.array([[35, 40], [65, 40], [50, 55], [38, 70], [62, 70]], np.float32)

    def __init__(self, finds: bool):
        self.finds = finds

    def annotate(self, image: np.ndarray) -> list[FaceAnnotation]:
        if not self.finds or image.shape[0] == 100:
            return []
        points = self.LANDMARKS + 50  # the padding of a 100-pixel photo
        return [FaceAnnotation(landmarks=points, mesh=np.repeat(points[:1], 478, 0),
                               box=(75.0, 80.0, 125.0, 130.0), score=0.75)]


def test_a_face_found_by_the_retries_is_kept_when_the_tiled_search_finds_none(completer, monkeypatch):
    monkeypatch.setattr(completer, "detector", lambda thorough: StandInDetector(finds=not thorough))
    photo = np.full((100, 100, 3), 150, np.uint8)
    hole = np.zeros((100, 100), bool)
    hole[45:60, 85:99] = True  # beyond the rule's crop (x 5-95): the tiled search runs too
    (face,) = completes_only_the_hole(completer, photo, hole).faces
    np.testing.assert_allclose(face.detected, StandInDetector.LANDMARKS, atol=1e-4)
    assert box_mask(face.box, hole.shape)[hole].all()


class FaceFinder:
    """Finds one face (``StandInDetector.LANDMARKS``) on the 100 x 100 photos that ``finds``
    accepts (default: every one)."""

    def __init__(self, finds=lambda image: True):
        self.finds = finds

    def annotate(self, image: np.ndarray) -> list[FaceAnnotation]:
        if image.shape[:2] != (100, 100) or not self.finds(image):
            return []
        points = StandInDetector.LANDMARKS
        return [FaceAnnotation(landmarks=points, mesh=np.repeat(points[:1], 478, 0),
                               box=(25.0, 30.0, 75.0, 80.0), score=0.7)]


def filled_red(image: np.ndarray) -> bool:
    """Whether the hole (from row 30 down) was filled red by the model: mediapipe finds a face that
    fills the frame with its eyes hidden only once the model has painted eyes there."""
    return tuple(image[38, 50]) == RED


def stand_in_generator(size: int, parses_parts: bool):
    """A generator stand-in: fills red, parses everything as background or (``parses_parts``) as
    one-pixel stripes of eye, nose and lip, so that every landmark's part lies near it."""
    labels = (LABELS.index("left_eye"), LABELS.index("nose"), LABELS.index("upper_lip"))

    def generate(crop, crop_hole, noise):
        image = np.broadcast_to(np.array([1.0, -1.0, -1.0], np.float32)[:, None, None], (3, size, size))
        parsing = np.zeros((1, len(LABELS), size, size), np.float32)
        parsing[0, 0] = 1.0
        if parses_parts:
            for column in range(size):
                parsing[0, :, :, column] = 0.0
                parsing[0, labels[column % 3], :, column] = 1.0
        return {"i": image[None].copy(), "s": parsing, "d": np.zeros((1, 5, size, size), np.float32)}
    return generate


@pytest.mark.parametrize(("parses_parts", "hole_bottom"), [
    (True, 48),    # both eyes hidden; nose and mouth corners on known pixels, parsed as such
    (False, 48),   # the same landmarks, parsed as background: a face painted into a photo without one
    (True, 60),    # the nose hidden too: two landmarks are too little evidence
])
def test_a_face_found_only_on_the_models_fill_counts_when_its_parts_are_confirmed(completer, monkeypatch,
                                                                                   parses_parts, hole_bottom):
    monkeypatch.setattr(completer, "detector", lambda thorough: FaceFinder(filled_red))
    monkeypatch.setattr(completer, "_generate", stand_in_generator(completer.size, parses_parts))
    photo = np.full((100, 100, 3), 150, np.uint8)
    hole = np.zeros((100, 100), bool)
    hole[30:hole_bottom, 20:80] = True
    photo[hole] = 128
    if not parses_parts or hole_bottom == 60:
        with pytest.raises(NoFaceError, match="no face found"):
            completer.complete(photo, hole=hole)
        return
    (face,) = completes_only_the_hole(completer, photo, hole).faces
    np.testing.assert_allclose(face.detected, StandInDetector.LANDMARKS, atol=1e-4)


def landmark_heatmaps(size: int, at: np.ndarray) -> np.ndarray:
    """(1, 5, size, size) heatmaps peaking at the (5, 2) crop pixels ``at``."""
    heatmaps = np.full((1, 5, size, size), -1.0, np.float32)
    for channel, (x, y) in enumerate(np.rint(at).astype(int)):
        heatmaps[0, channel, y, x] = 1.0
    return heatmaps


@pytest.mark.parametrize("shift", [0.04, 0.2])  # of the crop side: near the detector's landmarks, far off
def test_the_crop_is_placed_again_from_the_models_landmarks_when_they_agree(completer, monkeypatch, shift):
    size = completer.size
    rule = crop_box_from_landmarks(StandInDetector.LANDMARKS)
    heatmaps = landmark_heatmaps(size, rule.to_crop(StandInDetector.LANDMARKS, size) + [shift * size, 0])
    monkeypatch.setattr(completer, "detector", lambda thorough: FaceFinder())
    monkeypatch.setattr(completer, "_generate", lambda crop, crop_hole, noise: {
        "i": np.zeros((1, 3, size, size), np.float32), "s": np.zeros((1, len(LABELS), size, size), np.float32),
        "d": heatmaps})
    photo = np.full((100, 100, 3), 150, np.uint8)
    hole = np.zeros((100, 100), bool)
    hole[35:45, 30:70] = True
    (face,) = completes_only_the_hole(completer, photo, hole).faces
    predicted = rule.to_source(heatmap_peaks(heatmaps[0]), size)
    expected = crop_box_from_landmarks(predicted) if shift < 0.1 else rule  # far off: the detector's crop stays
    assert shift < 0.1 or abs(expected.x0 - crop_box_from_landmarks(predicted).x0) > 5
    np.testing.assert_allclose([face.box.x0, face.box.y0, face.box.side], [expected.x0, expected.y0, expected.side],
                               atol=1e-3)


@pytest.fixture(scope="module")
def shipped():
    with FaceCompleter(device="cpu") as loaded:
        yield loaded


@requires_mediapipe
def test_a_face_filling_the_frame_with_both_eyes_greyed_is_found_on_the_shipped_models_fill(
        shipped, detector, shared_faces):
    clean = shared_face(shared_faces, "183273.jpg")
    photo, landmarks = framed(clean, landmarks_of(detector, clean), 1.5)
    hole = occlusion_mask("O3", landmarks, photo.shape[:2]) > 0
    photo[hole] = 128
    assert shipped.find_faces(photo, hole=hole) == [] == shipped.find_faces(photo, thorough=True, hole=hole)
    completion = completes_only_the_hole(shipped, photo, hole)
    error = np.linalg.norm(completion.faces[0].detected - landmarks, axis=1)
    assert error.max() < 0.15 * photo.shape[0]


@requires_mediapipe
@pytest.mark.parametrize("seed", [18, 20, 32])  # the shipped model paints a face the detector finds
def test_a_face_painted_by_the_model_into_a_photo_without_one_is_no_face(shipped, seed):
    photo = random_photo(200, 200, seed)
    hole = np.zeros((200, 200), bool)
    hole[40 + seed % 40: 100 + seed % 40, 30:170] = True
    photo[hole] = 128
    with pytest.raises(NoFaceError):
        shipped.complete(photo, hole=hole)


# --------------------------------------------------------------------------- --no-detect at any framing


@requires_mediapipe
@pytest.mark.parametrize("scale", [0.6, 1.5])
def test_no_detect_reframes_a_face_to_the_trained_scale(completer, detector, shared_faces, scale):
    clean = shared_face(shared_faces)
    photo, landmarks = framed(clean, landmarks_of(detector, clean), scale)
    hole = occlusion_mask("O6", landmarks, photo.shape[:2]) > 0
    photo[hole] = 128
    (face,) = completes_only_the_hole(completer, photo, hole, no_detect=True).faces
    rule = crop_box_from_landmarks(face.detected)  # not the whole photo: 3 / scale x the face's size
    assert rule.side <= face.box.side <= rule.side / 0.9 + 1e-6
    assert abs(face.box.side - photo.shape[0]) > 0.2 * photo.shape[0]


def test_no_detect_without_the_detector_takes_the_whole_photo(completer, monkeypatch, shared_faces):
    def unavailable(thorough):
        raise AnnotatorUnavailable("no mediapipe here")

    monkeypatch.setattr(completer, "detector", unavailable)
    photo = shared_face(shared_faces)
    hole = np.zeros(photo.shape[:2], bool)
    hole[80:120, 60:140] = True
    (face,) = completes_only_the_hole(completer, photo, hole, no_detect=True).faces
    assert face.box == whole_image_box(*photo.shape[:2]) and face.detected is None


# --------------------------------------------------------------------------- a batch of hard cases


@requires_mediapipe
def test_a_batch_of_occluded_tight_and_turned_faces_has_no_failure(tmp_path, model, detector, shared_faces):
    photos, masks, out = tmp_path / "photos", tmp_path / "masks", tmp_path / "out"
    photos.mkdir()
    masks.mkdir()
    clean = shared_face(shared_faces, "182666.jpg")
    landmarks = landmarks_of(detector, clean)
    tight, tight_landmarks = framed(clean, landmarks, 1.5)
    half = occlusion_mask("O4", landmarks, clean.shape[:2]) > 0
    cases = {"tight_eyes": (tight, occlusion_mask("O3", tight_landmarks, tight.shape[:2]) > 0),
             "upside_down_half": (clean[::-1, ::-1], half[::-1, ::-1])}
    for name, (photo, hole) in cases.items():
        photo = np.ascontiguousarray(photo)
        photo[hole] = 128
        Image.fromarray(photo).save(photos / f"{name}.png")
        Image.fromarray(np.ascontiguousarray(hole).astype(np.uint8) * 255).save(masks / f"{name}.png")
    parser = argparse.ArgumentParser()
    add_complete_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["complete", str(photos), "--masks", str(masks), "--out", str(out), "--model", str(model),
                              "--no-progress"])
    assert args.func(args) == 0
    with open(out / "failures.csv", newline="") as f:
        assert list(csv.DictReader(f)) == []
    for name, (_, hole) in cases.items():
        result, given = io.load_rgb(out / f"{name}.png"), io.load_rgb(photos / f"{name}.png")
        assert np.array_equal(result[~hole], given[~hole])
