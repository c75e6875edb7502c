"""A dataset written by ``collaface prepare``::

    ROOT/manifest.csv    file,source,identity,split,x0,y0,side,lex,ley,rex,rey,nx,ny,lmx,lmy,rmx,rmy
    ROOT/images/<name>.png    square RGB crops
    ROOT/parsing/<name>.png   label maps in our label space, same size

Landmarks in the manifest are pixels of the stored crop, in our image-side order.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from collaface.data import io
from collaface.data.sources.base import SPLITS, DatasetLayoutError, RawSample

MANIFEST_COLUMNS = (
    "file", "source", "identity", "split", "x0", "y0", "side",
    "lex", "ley", "rex", "rey", "nx", "ny", "lmx", "lmy", "rmx", "rmy",
)
LANDMARK_COLUMNS = MANIFEST_COLUMNS[7:]


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of a prepared manifest; a missing column or bad row is an error naming the line."""
    if not path.is_file():
        raise DatasetLayoutError(f"manifest not found: {path} (is this a folder written by `collaface prepare`?)")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetLayoutError(f"{path}: missing columns {', '.join(missing)}")
        rows = list(reader)
    for number, row in enumerate(rows, start=2):
        if row["split"] not in SPLITS:
            raise DatasetLayoutError(f"{path}:{number}: split {row['split']!r} is not train, val or test")
    return rows


class PreparedSource:
    """Faces of a prepared folder (one split or all), as stored."""

    def __init__(self, root: Path, split: str | None = None):
        self.root = Path(root)
        rows = read_manifest(self.root / "manifest.csv")
        if split is not None:
            rows = [r for r in rows if r["split"] == split]
        if not rows:
            raise DatasetLayoutError(f"no faces{' in split ' + split if split else ''} in {self.root / 'manifest.csv'}")
        self.rows = rows
        self.files = [r["file"] for r in rows]
        points = [[float(r[c]) for c in LANDMARK_COLUMNS] for r in rows]
        self.landmarks = np.asarray(points, np.float32).reshape(-1, 5, 2)
        self.identities = [r["identity"].strip() or None for r in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, index: int) -> RawSample:
        name = self.files[index]
        image = io.load_rgb(self.root / name)
        parsing_path = self.root / "parsing" / Path(name).relative_to("images")
        parsing = io.load_label_map(parsing_path) if parsing_path.is_file() else None
        if parsing is not None and parsing.shape != image.shape[:2]:
            raise io.ImageDecodeError(parsing_path,
                                      f"parsing size {parsing.shape} differs from image {image.shape[:2]}")
        return RawSample(image, parsing, self.landmarks[index].copy(), self.identities[index], name)
