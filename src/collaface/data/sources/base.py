"""The common source interface and small parsing helpers for the release text files."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

SPLITS = ("train", "val", "test")
PARTITION_CODES = {"0": "train", "1": "val", "2": "test"}


@dataclass
class RawSample:
    """One face as a square crop.

    image: (H, W, 3) uint8 RGB; parsing: (H, W) uint8 labels (contracts.LABELS) or None;
    landmarks: (5, 2) float32 x, y in this crop's pixels (our image-side order) or None;
    identity: str or None (CelebA's integer ids as text); file: the source file, relative to the dataset root.
    """

    image: np.ndarray
    parsing: np.ndarray | None
    landmarks: np.ndarray | None
    identity: str | None
    file: str


class FaceSource(Protocol):
    root: Path
    files: list[str]

    def __len__(self) -> int: ...

    def load(self, index: int) -> RawSample:
        """Decode sample ``index``; raises io.ImageDecodeError for a bad image file."""
        ...


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder does not have the expected layout; the message says what is missing."""


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetLayoutError(f"{what} not found: {path}")
    return path


def read_table(path: Path, n_values: int, header_lines: int) -> dict[str, list[str]]:
    """Whitespace table of the CelebA release: ``file v1 ... vn`` per line after the header lines.

    Tolerates CRLF and blank lines; a malformed line is an error naming file and line number.
    """
    rows: dict[str, list[str]] = {}
    with open(path, encoding="utf-8", newline=None) as handle:
        for number, line in enumerate(handle, start=1):
            if number <= header_lines:
                continue
            parts = line.split()
            if not parts:
                continue
            if len(parts) != n_values + 1:
                raise DatasetLayoutError(
                    f"{path}:{number}: expected a file name and {n_values} values, got {len(parts)} fields"
                )
            rows[parts[0]] = parts[1:]
    return rows


class ConcatSource:
    """Several datasets of one layout read as one, e.g. ``data.root=prepared/a:prepared/b``.

    ``files`` are the members' files prefixed with their root, so every entry is unique."""

    def __init__(self, sources: list[FaceSource]):
        self.sources = sources
        self.root = Path(sources[0].root)
        self.files = [str(Path(s.root) / f) for s in sources for f in s.files]
        self.offsets = list(itertools.accumulate(len(s) for s in sources))

    def __len__(self) -> int:
        return self.offsets[-1]

    def load(self, index: int) -> RawSample:
        member = bisect.bisect_right(self.offsets, index)
        start = self.offsets[member - 1] if member else 0
        sample = self.sources[member].load(index - start)
        sample.file = self.files[index]
        return sample
