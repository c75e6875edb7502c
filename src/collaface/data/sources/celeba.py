"""CelebA in its official release layout.

::

    ROOT/img_align_celeba/000001.jpg ...     (aligned, 178x218)   or
    ROOT/img_celeba/000001.jpg ...           (in the wild)
    ROOT/list_eval_partition.txt             ``000001.jpg 0``   (0 train, 1 val, 2 test)
    ROOT/list_landmarks_align_celeba.txt     count line, header line, ``file lex ley rex rey nx ny lmx lmy rmx rmy``
    ROOT/list_landmarks_celeba.txt           same, in-the-wild coordinates
    ROOT/list_bbox_celeba.txt                count line, header line, ``file x_1 y_1 width height`` (in the wild)
    ROOT/identity_CelebA.txt                 ``000001.jpg 2880`` (optional)

The text files may also sit in ``ROOT/Anno`` and ``ROOT/Eval`` as in the Google-Drive release.
CelebA names landmark sides from the image's left, which is our convention: no swap needed.
Each face is cropped with the shared rule (``crop.crop_box_from_landmarks``, no alignment).
CelebA has no parsing labels: they come from the annotator (optional extra) and are cached
per image under ``annotation_cache`` so each photo is annotated once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from collaface.data import crop, io
from collaface.data.sources.base import PARTITION_CODES, DatasetLayoutError, RawSample, read_table

IMAGE_DIRS = {"aligned": "img_align_celeba", "wild": "img_celeba"}
LANDMARK_FILES = {"aligned": "list_landmarks_align_celeba.txt", "wild": "list_landmarks_celeba.txt"}


def find_release_file(root: Path, name: str) -> Path | None:
    """The release text file ``name`` in ROOT, ROOT/Anno or ROOT/Eval, or None."""
    for folder in (root, root / "Anno", root / "Eval"):
        if (folder / name).is_file():
            return folder / name
    return None


class CelebASource:
    """Faces of the official CelebA layout, one split or all, as square crops of ``crop_size``."""

    def __init__(
        self,
        root: Path,
        split: str | None = None,
        images: str = "aligned",
        crop_size: int = 128,
        annotation_cache: str | Path = "",
        annotate_missing: bool = True,
    ):
        if images not in IMAGE_DIRS:
            raise ValueError(f"images must be 'aligned' or 'wild', got {images!r}")
        self.root = Path(root)
        self.image_dir = self.root / IMAGE_DIRS[images]
        if not self.image_dir.is_dir():
            raise DatasetLayoutError(f"CelebA image folder not found: {self.image_dir}")
        self.crop_size = crop_size
        self.cache_dir = Path(annotation_cache) if annotation_cache else self.root / ".collaface_cache"
        self.annotate_missing = annotate_missing
        self._annotator = None

        landmark_path = find_release_file(self.root, LANDMARK_FILES[images])
        if landmark_path is None:
            raise DatasetLayoutError(f"{LANDMARK_FILES[images]} not found in {self.root} (or Anno/)")
        self.landmarks = {
            name: np.asarray(values, np.float32).reshape(5, 2)
            for name, values in read_table(landmark_path, 10, header_lines=2).items()
        }
        partition_path = find_release_file(self.root, "list_eval_partition.txt")
        partition = read_table(partition_path, 1, 0) if partition_path else {}
        identity_path = find_release_file(self.root, "identity_CelebA.txt")
        self.identity = {k: v[0] for k, v in read_table(identity_path, 1, 0).items()} if identity_path else {}
        bbox_path = find_release_file(self.root, "list_bbox_celeba.txt")
        self.bbox = (
            {k: np.asarray(v, np.float32) for k, v in read_table(bbox_path, 4, 2).items()} if bbox_path else {}
        )
        if split is not None and not partition:
            raise DatasetLayoutError(f"list_eval_partition.txt not found in {self.root}: cannot select split {split!r}")
        for name, code in partition.items():
            if code[0] not in PARTITION_CODES:
                raise DatasetLayoutError(f"{partition_path}: {name} has partition {code[0]!r}, expected 0, 1 or 2")

        present = {p.name for p in os.scandir(self.image_dir) if p.is_file()}
        names = sorted(n for n in self.landmarks if n in present)
        if split is not None:
            names = [n for n in names if PARTITION_CODES.get(partition.get(n, ["?"])[0]) == split]
        if not names:
            raise DatasetLayoutError(
                f"no CelebA images with landmarks{' in split ' + split if split else ''} under {self.image_dir}"
            )
        self.files = names
        self.split_of = {n: PARTITION_CODES[partition[n][0]] for n in names if n in partition}

    def __len__(self) -> int:
        return len(self.files)

    def _parsing(self, name: str, image: np.ndarray) -> np.ndarray | None:
        """Annotator parsing of the whole photo, cached as ``cache/parsing/<stem>.png``."""
        cached = self.cache_dir / "parsing" / (Path(name).stem + ".png")
        no_face = cached.with_suffix(".noface")
        if cached.is_file():
            return io.load_label_map(cached)
        if no_face.is_file() or not self.annotate_missing:
            return None
        from collaface.data.annotate import FaceAnnotator, rasterize_parsing

        if self._annotator is None:
            self._annotator = FaceAnnotator()
        faces = self._annotator.annotate(image)
        if not faces:
            no_face.parent.mkdir(parents=True, exist_ok=True)
            no_face.touch()
            return None
        parsing = rasterize_parsing(faces[0].mesh, image.shape[:2])
        io.save_label_map(cached, parsing)
        return parsing

    def load(self, index: int) -> RawSample:
        name = self.files[index]
        image = io.load_rgb(self.image_dir / name)
        landmarks = self.landmarks[name]
        box = crop.crop_box_from_landmarks(landmarks)
        parsing = self._parsing(name, image)
        return RawSample(
            image=crop.crop_resize(image, box, self.crop_size),
            parsing=None if parsing is None else crop.crop_resize(parsing, box, self.crop_size, nearest=True),
            landmarks=box.to_crop(landmarks, self.crop_size),
            identity=self.identity.get(name),
            file=str(Path(self.image_dir.name) / name),
        )
