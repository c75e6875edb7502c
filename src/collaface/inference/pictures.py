"""Pictures and records of a completion: parsing sheet, landmarks drawn, landmarks JSON, and
input | hole | result side by side. Arrays in, (h, w, 3) uint8 arrays (or a dict) out."""

from __future__ import annotations

import cv2
import numpy as np

from collaface.contracts import LANDMARK_NAMES
from collaface.data.crop import crop_resize
from collaface.data.labels import LABEL_COLORS
from collaface.data.visualize import contact_sheet, draw_landmarks, legend, overlay_parsing
from collaface.inference.engine import Completion, CompletionError

PANEL_SIZE = 256              # side of each face tile in the parsing picture
SIDE_BY_SIDE_HEIGHT = 512     # max height of each panel of the side-by-side picture
HOLE_COLOUR = (255, 0, 160)   # the hole in the side-by-side picture: opaque, no trace of what was there
SIDE_BY_SIDE_CAPTIONS = ("input", "hole", "result")
CAPTION_HEIGHT = 24           # pixels of the caption band above each side-by-side panel


def parsing_picture(completion: Completion, size: int = PANEL_SIZE) -> np.ndarray:
    """Per face: completed crop with parsing overlay and predicted landmarks | parsing colours;
    faces stacked, legend below. -> (h, w, 3) uint8. CompletionError without the parsing task."""
    if not completion.faces or completion.faces[0].parsing is None:
        raise CompletionError("this model predicts no parsing (it was trained without the s task)")
    tiles = []
    for face in completion.faces:
        crop = crop_resize(completion.image, face.box, size)
        parsing = cv2.resize(face.parsing, (size, size), interpolation=cv2.INTER_NEAREST)
        overlay = overlay_parsing(crop, parsing)
        if face.landmarks is not None:
            overlay = draw_landmarks(overlay, face.box.to_crop(face.landmarks, size))
        tiles += [overlay, LABEL_COLORS[parsing]]
    sheet = contact_sheet(tiles, columns=2)
    return np.concatenate([sheet, legend(sheet.shape[1])], axis=0)


def landmarks_picture(completion: Completion) -> np.ndarray:
    """The completed photo with each face's predicted landmarks drawn. -> (H, W, 3) uint8."""
    out = completion.image
    for face in completion.faces:
        if face.landmarks is None:
            raise CompletionError("this model predicts no landmarks (it was trained without the d task)")
        out = draw_landmarks(out, face.landmarks)
    return out


def landmarks_record(completion: Completion, source: str = "") -> dict:
    """JSON-ready landmarks: per face the 5 predicted points in photo pixels (and the detector's)."""
    if any(face.landmarks is None for face in completion.faces):
        raise CompletionError("this model predicts no landmarks (it was trained without the d task)")
    height, width = completion.image.shape[:2]

    def points(array: np.ndarray | None) -> list[list[float]] | None:
        return None if array is None else np.round(array.astype(np.float64), 2).tolist()

    return {
        "image": source,
        "width": width,
        "height": height,
        "order": list(LANDMARK_NAMES),
        "convention": "x, y pixels of the upright photo, pixel centres at integer coordinates; "
                      "left/right = the image's left/right",
        "faces": [
            {"face": i, "crop_box": [round(face.box.x0, 2), round(face.box.y0, 2), round(face.box.side, 2)],
             "crop_roll": round(face.box.roll, 2),
             "landmarks": points(face.landmarks), "detected_landmarks": points(face.detected)}
            for i, face in enumerate(completion.faces)
        ],
    }


def side_by_side(image: np.ndarray, completion: Completion, height: int = SIDE_BY_SIDE_HEIGHT) -> np.ndarray:
    """input | the hole, painted opaque ``HOLE_COLOUR`` | result, each scaled to at most
    ``height`` rows, with the captions input / hole / result above them."""
    holed = image.copy()
    holed[completion.hole] = HOLE_COLOUR
    panels = [image, holed, completion.image]
    scale = min(1.0, height / image.shape[0])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    if scale < 1:
        panels = [cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in panels[::2]]
        panels.insert(1, cv2.resize(holed, size, interpolation=cv2.INTER_NEAREST))  # the colour stays pure
    captioned = []
    for panel, caption in zip(panels, SIDE_BY_SIDE_CAPTIONS):
        band = np.full((CAPTION_HEIGHT, size[0], 3), 255, np.uint8)
        cv2.putText(band, caption, (4, CAPTION_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        captioned.append(np.concatenate([band, panel], axis=0))
    return contact_sheet(captioned, columns=3, gap=4)
