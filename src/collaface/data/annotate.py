"""Offline face annotation with mediapipe: 5 landmarks, a 478-point mesh and a parsing map.

Needs the optional extra (``pip install 'collaface[annotate]'``, mediapipe 0.10.21 with the
legacy ``solutions`` API whose models ship inside the wheel; nothing is downloaded).

Pipeline for one photo (:meth:`FaceAnnotator.annotate`):

1. **Detect** with BlazeFace: the short-range model on the whole photo (close-ups and tight
   crops, where the full-range model misses some faces), the full-range model on the whole photo
   and on a pyramid of half-overlapping square tiles (side = longer side / 2, / 4, ... and last
   ``min_tile``) so that small faces in big photos are found: the full-range model reliably finds
   only faces wider than about 12 % of its input (measured on faces pasted into large photos).
2. **Mesh** each detection with FaceMesh (static images, iris refinement) on a square crop of
   ``MESH_CROP_SCALE`` x the detector box, resized to ``MESH_INPUT`` pixels; the mesh is mapped
   back to photo pixels. Duplicates (same face found at several tiles or scales) are dropped.
3. **Landmarks**: iris centres 468 / 473, nose 4, mouth corners 61 / 291, in our image-side
   order (mediapipe names sides from the person's view: its "right" iris 468 is on the image's
   left in an unmirrored photo; checked on CelebA's official landmarks). Nose: vertex 4 (just
   above the tip) matches CelebA's human nose point better than the tip vertex 1 (mean error on
   the 197 official landmarks 2.1 px vs 3.5 px; 1 lies 3 px lower on average).

:func:`rasterize_parsing` draws a parsing map in ``collaface.data.labels`` from the mesh:
skin (face oval), brows, eyes, nose, upper/lower lip and the inner mouth when it is open.
The annotator never produces ``hair`` (nor ears, neck, glasses): the mesh does not cover them.
All pixel coordinates use the pixel-centre convention (pixel (i, j) has centre x=j, y=i).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import math
import os
import sys
import threading
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace

import cv2
import numpy as np

from collaface.data.labels import LABEL_INDEX

INSTALL_HINT = "install with `pip install 'collaface[annotate]'`"

# Mesh vertex of each of our 5 landmarks (image sides, unmirrored photo).
LANDMARK_MESH_INDEX = (468, 473, 4, 61, 291)
MESH_POINTS = 478
MESH_CROP_SCALE = 2.0   # crop side for FaceMesh / detector box side
MESH_INPUT = 256        # FaceMesh crop side in pixels
MIN_TILE = 320          # smallest detection tile side in pixels


_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_stderr_fd: int | None = None


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null while mediapipe's C++ graphs run.

    mediapipe 0.10.21 (TFLite, absl) prints setup chatter ("Created TensorFlow Lite XNNPACK
    delegate", "inference_feedback_manager.cc ... Disabling support for feedback tensors") straight
    to fd 2, and no environment variable turns it off. Python errors still raise normally. Safe
    across threads: the first entrant redirects, the last one to leave restores the real stderr.
    """
    global _quiet_depth, _saved_stderr_fd
    with _quiet_lock:
        if _quiet_depth == 0:
            sys.stderr.flush()
            _saved_stderr_fd = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                os.dup2(_saved_stderr_fd, 2)
                os.close(_saved_stderr_fd)
                _saved_stderr_fd = None


class AnnotatorUnavailable(RuntimeError):
    """mediapipe (the ``annotate`` extra) is not installed."""


FACE_SOLUTIONS = ("face_detection", "face_mesh", "face_mesh_connections")


@functools.cache
def _import_mediapipe() -> SimpleNamespace:
    """mediapipe's face solutions as ``mp.solutions.<name>`` (``FACE_SOLUTIONS``) and
    ``mp.__version__``, imported once per process. The solution modules are imported without running the ``mediapipe``
    package's own ``__init__``, which loads every task (audio, text, vision) and the drawing
    helpers with matplotlib: 0.03 s instead of 0.3 s, most of a photo's start-up on the onnx
    runtime. Where that fails (another mediapipe layout), the whole package is imported, with an
    empty placeholder for matplotlib.pyplot (0.5-1 s, used only by a plotting function collaface
    never calls) while it loads."""
    try:
        version = importlib.metadata.version("mediapipe")
    except importlib.metadata.PackageNotFoundError:
        raise AnnotatorUnavailable(f"face annotation needs mediapipe; {INSTALL_HINT}") from None
    solutions = _import_face_solutions() or _import_whole_mediapipe().solutions
    return SimpleNamespace(__version__=version, solutions=solutions)


def _import_face_solutions() -> SimpleNamespace | None:
    """The face solution modules, their parent packages in ``sys.modules`` with their own
    ``__init__`` deferred to the first attribute asked of them (so a later ``import mediapipe``
    gets the whole package); None where this mediapipe has another layout."""
    parents = ("mediapipe", "mediapipe.python", "mediapipe.python.solutions")
    if any(name in sys.modules for name in parents):
        return None
    placed = []
    try:
        for name in parents:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.loader is None or spec.submodule_search_locations is None:
                return None
            sys.modules[name] = package = _initialised_on_first_use(spec)
            parent, _, child = name.rpartition(".")
            if parent:  # what the import system does for a submodule it loads itself
                setattr(sys.modules[parent], child, package)
            placed.append(name)
        return SimpleNamespace(**{name: importlib.import_module(f"mediapipe.python.solutions.{name}")
                                  for name in FACE_SOLUTIONS})
    except (ImportError, AttributeError):
        for name in placed:
            del sys.modules[name]
        return None


def _initialised_on_first_use(spec: importlib.machinery.ModuleSpec) -> ModuleType:
    """The package of ``spec``, its submodules importable at once, its ``__init__`` run into it
    when an attribute it lacks is first asked for."""
    package = importlib.util.module_from_spec(spec)

    def initialise_and_get(name: str):
        del package.__getattr__
        spec.loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = initialise_and_get
    return package


def _import_whole_mediapipe() -> ModuleType:
    placeholder = None
    if "matplotlib.pyplot" not in sys.modules:
        placeholder = ModuleType("matplotlib.pyplot", "placeholder while mediapipe is imported (collaface)")
        sys.modules["matplotlib.pyplot"] = placeholder
    try:
        mp = importlib.import_module("mediapipe")
    except ImportError as err:
        raise AnnotatorUnavailable(f"face annotation needs mediapipe ({err}); {INSTALL_HINT}") from None
    finally:
        if placeholder is not None and sys.modules.get("matplotlib.pyplot") is placeholder:
            del sys.modules["matplotlib.pyplot"]
    if not hasattr(mp, "solutions"):
        raise AnnotatorUnavailable(
            f"mediapipe {getattr(mp, '__version__', '?')} has no legacy `solutions` API; {INSTALL_HINT}")
    return mp


@dataclass
class FaceAnnotation:
    """One face. Coordinates are (x, y) photo pixels, pixel-centre convention.

    landmarks: (5, 2) float32, our order (left eye, right eye, nose, left mouth, right mouth; image
    sides). mesh: (478, 2) float32 mediapipe FaceMesh vertices. box: detector box (x0, y0, x1, y1).
    score: detector confidence in [0, 1].
    """

    landmarks: np.ndarray
    mesh: np.ndarray
    box: tuple[float, float, float, float]
    score: float


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def _tile_sides(longer_side: int, min_tile: int) -> list[int]:
    """Detection tile sides: longer_side / 2, / 4, ... while above 1.25 min_tile, then min_tile.

    None for photos whose longer side is at most 1.25 min_tile (the whole photo is enough).
    """
    if longer_side <= 1.25 * min_tile:
        return []
    sides = []
    tile = longer_side // 2
    while tile > 1.25 * min_tile:
        sides.append(tile)
        tile //= 2
    return sides + [min_tile]


def _tile_origins(length: int, tile: int) -> list[int]:
    """Start offsets of half-overlapping tiles of side ``tile`` covering [0, length)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile / 2)) + 1
    return [round(v) for v in np.linspace(0, length - tile, count)]


class FaceAnnotator:
    """Finds every face in a photo and annotates it. Use as a context manager or call close().

    min_confidence: detector threshold. min_tile: smallest detection tile (pixels); faces below
    about 0.12 * min_tile pixels wide are not searched for.
    """

    def __init__(self, min_confidence: float = 0.5, min_tile: int = MIN_TILE):
        mp = _import_mediapipe()
        self.mediapipe_version = mp.__version__
        self.min_tile = min_tile
        with native_stderr_silenced():
            self._short_range = mp.solutions.face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=min_confidence)
            self._full_range = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=min_confidence)
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=3, refine_landmarks=True,
                min_detection_confidence=min_confidence)
            # The graphs open their TFLite models (which log) on their own threads after the
            # constructors return: one run on a blank image waits for that inside the silence.
            blank = np.zeros((MESH_INPUT, MESH_INPUT, 3), np.uint8)
            for solution in (self._short_range, self._full_range, self._mesh):
                solution.process(blank)

    def close(self) -> None:
        for solution in (self._short_range, self._full_range, self._mesh):
            solution.close()

    def __enter__(self) -> FaceAnnotator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def annotate(self, image: np.ndarray) -> list[FaceAnnotation]:
        """All faces of an (H, W, 3) uint8 RGB photo, largest first (by mesh extent)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"need an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
        image = np.ascontiguousarray(image)
        faces: list[FaceAnnotation] = []
        with native_stderr_silenced():
            found = [(box, score, self._mesh_in_box(image, box)) for box, score in self._detect(image)]
        for box, score, mesh in found:
            if mesh is None:
                continue
            lo, hi = mesh.min(0), mesh.max(0)
            mesh_box = np.concatenate([lo, hi])
            if any(_iou(mesh_box, np.concatenate([f.mesh.min(0), f.mesh.max(0)])) > 0.5 for f in faces):
                continue  # the same face, found again at another tile or scale
            faces.append(FaceAnnotation(
                landmarks=mesh[list(LANDMARK_MESH_INDEX)].copy(), mesh=mesh,
                box=tuple(float(v) for v in box), score=score))
        faces.sort(key=lambda f: -float(np.prod(f.mesh.max(0) - f.mesh.min(0))))
        return faces

    def _detect(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Detector boxes (x0, y0, x1, y1) in photo pixels with scores, best first, de-duplicated."""
        height, width = image.shape[:2]
        found = self._run_detector(self._short_range, image, 0, 0)
        found += self._run_detector(self._full_range, image, 0, 0)
        for tile in _tile_sides(max(height, width), self.min_tile):
            for y in _tile_origins(height, tile):
                for x in _tile_origins(width, tile):
                    found += self._run_detector(self._full_range, image[y:y + tile, x:x + tile], x, y)
        found.sort(key=lambda d: -d[1])
        kept: list[tuple[np.ndarray, float]] = []
        for box, score in found:
            if all(_iou(box, k) < 0.5 for k, _ in kept):
                kept.append((box, score))
        return kept

    @staticmethod
    def _run_detector(detector, image: np.ndarray, x_offset: int, y_offset: int):
        height, width = image.shape[:2]
        result = detector.process(np.ascontiguousarray(image))
        boxes = []
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            # relative box edges -> pixel-centre coordinates
            x0, y0 = rel.xmin * width + x_offset - 0.5, rel.ymin * height + y_offset - 0.5
            box = np.array([x0, y0, x0 + rel.width * width, y0 + rel.height * height], np.float64)
            if rel.width > 0 and rel.height > 0:
                boxes.append((box, float(detection.score[0])))
        return boxes

    def _mesh_in_box(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """(478, 2) mesh of the face in ``box`` (photo pixels), or None when FaceMesh fails."""
        centre = (box[:2] + box[2:]) / 2
        side = MESH_CROP_SCALE * float(max(box[2] - box[0], box[3] - box[1]))
        scale = MESH_INPUT / side
        # photo pixel centre p -> crop pixel centre q = (p + 0.5 - corner) * scale - 0.5, with
        # corner = the crop's top-left edge in continuous (pixel-edge) coordinates
        corner = centre + 0.5 - side / 2
        shift = -corner * scale + (scale - 1) / 2
        matrix = np.array([[scale, 0, shift[0]], [0, scale, shift[1]]])
        crop = cv2.warpAffine(image, matrix, (MESH_INPUT, MESH_INPUT),
                              flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        meshes = [
            np.array([(p.x, p.y) for p in face.landmark], np.float64) * MESH_INPUT - 0.5
            for face in result.multi_face_landmarks
        ]
        # A crop can hold a neighbour's face too: keep the mesh nearest the crop centre.
        mesh = min(meshes, key=lambda m: np.linalg.norm(m.mean(0) - (MESH_INPUT - 1) / 2))
        return ((mesh - shift) / scale).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Parsing from the mesh

def _connections(mp: SimpleNamespace, name: str) -> frozenset[tuple[int, int]]:
    return getattr(mp.solutions.face_mesh_connections, name)


def _chains(edges) -> list[list[int]]:
    """Chain undirected edges (each vertex of degree <= 2) into ordered paths.

    Closed loops are returned without repeating the first vertex.
    """
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    unvisited = set(neighbours)
    chains = []
    while unvisited:
        ends = [v for v in unvisited if len(neighbours[v]) == 1]
        start = min(ends) if ends else min(unvisited)
        chain = [start]
        unvisited.discard(start)
        while True:
            nxt = [v for v in neighbours[chain[-1]] if v in unvisited]
            if not nxt:
                break
            chain.append(nxt[0])
            unvisited.discard(nxt[0])
        chains.append(chain)
    return chains


def _band(edges) -> list[int]:
    """A ring from a band drawn as two open chains (upper and lower edge of a brow)."""
    first, second = _chains(edges)  # both start at their lowest-numbered end vertex
    return first + second[::-1]


def _arc(ring: list[int], start: int, end: int, through: int) -> list[int]:
    """The path along a closed ring from ``start`` to ``end`` that passes ``through``."""
    i = ring.index(start)
    ring = ring[i:] + ring[:i]
    forward = ring[: ring.index(end) + 1]
    backward = [ring[0]] + ring[::-1][: len(ring) - ring.index(end)]
    return forward if through in forward else backward


# Region shapes tuned on the 4 CelebAMask-HQ samples (scripts/eval_annotator.py), symmetric:
# Nose: mediapipe's FACEMESH_NOSE is a midline plus a ring around the tip, not an outline, so
# the region is this ring: bridge from between the eyes, sides of the nose, alae, base (2).
NOSE_RING = (
    168, 417, 465, 412, 399, 437, 420, 360, 279, 278, 294, 327, 326, 2,
    97, 98, 64, 48, 49, 131, 198, 217, 174, 188, 245, 193,
)
# Brows: mediapipe's brow band covers only the upper part of a thick brow. Its lower edge is
# moved BROW_DROP of the way to the mesh row below it (lower brow vertex -> vertex below).
BROW_DROP = 0.5
BROW_ROW_BELOW = {
    46: 225, 53: 224, 52: 223, 65: 222, 55: 221,        # person's right = image left
    276: 445, 283: 444, 282: 443, 295: 442, 285: 441,   # person's left = image right
}
# Skin: the face oval stops mid-forehead; points above the eyes are lifted by FOREHEAD_LIFT x
# their height above the eyes, towards the hairline that CelebAMask-HQ's skin reaches.
FOREHEAD_LIFT = 0.3


@functools.cache
def _regions() -> dict[str, list[int]]:
    """Mesh-vertex ring of each parsing region, keyed by our label names (image sides)."""
    mp = _import_mediapipe()
    (oval,) = _chains(_connections(mp, "FACEMESH_FACE_OVAL"))
    (person_right_eye,) = _chains(_connections(mp, "FACEMESH_RIGHT_EYE"))
    (person_left_eye,) = _chains(_connections(mp, "FACEMESH_LEFT_EYE"))
    outer, inner = sorted(_chains(_connections(mp, "FACEMESH_LIPS")), key=lambda c: 61 not in c)
    outer_upper, outer_lower = _arc(outer, 61, 291, 0), _arc(outer, 61, 291, 17)
    inner_upper, inner_lower = _arc(inner, 78, 308, 13), _arc(inner, 78, 308, 14)
    return {
        "skin": oval,
        # mediapipe's "right" = the person's right = the image's left (unmirrored photo)
        "left_brow": _band(_connections(mp, "FACEMESH_RIGHT_EYEBROW")),
        "right_brow": _band(_connections(mp, "FACEMESH_LEFT_EYEBROW")),
        "left_eye": person_right_eye,
        "right_eye": person_left_eye,
        "nose": list(NOSE_RING),
        "upper_lip": outer_upper + inner_upper[::-1],
        "lower_lip": outer_lower + inner_lower[::-1],
        "inner_mouth": inner_upper + inner_lower[::-1][1:-1],
    }


def _fill(canvas: np.ndarray, points: np.ndarray, label: int) -> None:
    """Fill one polygon of (N, 2) pixel-centre points with sub-pixel precision."""
    fixed = np.round(points * 16).astype(np.int32)  # 4 fractional bits (shift=4)
    cv2.fillPoly(canvas, [fixed], int(label), lineType=cv2.LINE_8, shift=4)


def _lifted_oval(mesh: np.ndarray, oval: list[int]) -> np.ndarray:
    """(N, 2) face-oval polygon with the forehead raised by FOREHEAD_LIFT (rotation-aware)."""
    eyes = mesh[list(LANDMARK_MESH_INDEX[:2])].mean(0)
    mouth = mesh[list(LANDMARK_MESH_INDEX[3:])].mean(0)
    up = (eyes - mouth) / max(np.linalg.norm(eyes - mouth), 1e-6)
    points = mesh[oval]
    height = np.maximum((points - eyes) @ up, 0)
    return points + FOREHEAD_LIFT * height[:, None] * up


def _dropped_brow(mesh: np.ndarray, ring: list[int]) -> np.ndarray:
    """(N, 2) brow polygon with its lower edge moved BROW_DROP towards the row below."""
    points = mesh[ring].copy()
    for i, vertex in enumerate(ring):
        if vertex in BROW_ROW_BELOW:
            points[i] += BROW_DROP * (mesh[BROW_ROW_BELOW[vertex]] - mesh[vertex])
    return points


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def rasterize_parsing(
    mesh: np.ndarray,
    shape: int | tuple[int, int],
    transform: np.ndarray | None = None,
    open_mouth_ratio: float = 0.08,
) -> np.ndarray:
    """(H, W) uint8 parsing map (``contracts.LABELS``) drawn from a (478, 2) mesh in pixels.

    shape: side of a square map or (H, W). transform: optional (2, 3) affine matrix applied to
    the mesh first (e.g. photo -> crop). The inner mouth is drawn only when the mouth is open:
    area inside the inner lip contour > ``open_mouth_ratio`` x (mouth-corner distance)^2, i.e. a
    mean lip gap above about that fraction of the mouth width. Never draws hair: outside the
    face oval stays background.
    """
    mesh = np.asarray(mesh, np.float64)
    if mesh.shape != (MESH_POINTS, 2):
        raise ValueError(f"mesh must be ({MESH_POINTS}, 2), got {mesh.shape}")
    if transform is not None:
        transform = np.asarray(transform, np.float64)
        mesh = mesh @ transform[:, :2].T + transform[:, 2]
    height, width = (shape, shape) if isinstance(shape, int) else shape
    regions = _regions()
    canvas = np.zeros((height, width), np.uint8)
    _fill(canvas, _lifted_oval(mesh, regions["skin"]), LABEL_INDEX["skin"])
    for name in ("left_brow", "right_brow"):
        _fill(canvas, _dropped_brow(mesh, regions[name]), LABEL_INDEX[name])
    for name in ("nose", "left_eye", "right_eye", "upper_lip", "lower_lip"):
        _fill(canvas, mesh[regions[name]], LABEL_INDEX[name])
    mouth = mesh[regions["inner_mouth"]]
    left_corner, right_corner = mesh[list(LANDMARK_MESH_INDEX[3:])]
    mouth_width = np.linalg.norm(left_corner - right_corner)
    if _polygon_area(mouth) > open_mouth_ratio * mouth_width**2:
        _fill(canvas, mouth, LABEL_INDEX["inner_mouth"])
    return canvas
