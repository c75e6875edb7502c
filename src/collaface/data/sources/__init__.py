"""Dataset sources: each turns one on-disk layout into square face crops (RawSample).

* ``celeba``: the official CelebA release layout (aligned or in-the-wild images).
* ``celebamask_hq``: the CelebAMask-HQ release layout (per-part mask PNGs).
* ``prepared``: the output of ``collaface prepare`` (any folder of face photos).

The interface and shared helpers are in ``base``; this package opens a layout by name.
"""

from __future__ import annotations

import os
from pathlib import Path

from collaface.data.sources.base import SPLITS, ConcatSource, DatasetLayoutError, FaceSource
from collaface.data.sources.celeba import CelebASource
from collaface.data.sources.celebamask_hq import CelebAMaskHQSource
from collaface.data.sources.prepared import PreparedSource

LAYOUTS: dict[str, type] = {"prepared": PreparedSource, "celeba": CelebASource, "celebamask_hq": CelebAMaskHQSource}


def open_sources(kind: str, roots: str, split: str | None = None, **options) -> FaceSource:
    """``roots`` = one folder or several joined by ``os.pathsep`` (":" on Linux); folders with no
    face in ``split`` are left out, and it is an error only when none has any."""
    folders = [r for r in roots.split(os.pathsep) if r]
    if len(folders) == 1:
        return open_source(kind, folders[0], split, **options)
    opened, empty = [], []
    for folder in folders:
        try:
            opened.append(open_source(kind, folder, split, **options))
        except DatasetLayoutError as err:
            if not Path(folder).is_dir():
                raise
            empty.append(str(err))
    if not opened:
        raise DatasetLayoutError("; ".join(empty))
    return ConcatSource(opened)


def open_source(kind: str, root: str | Path, split: str | None = None, **options) -> FaceSource:
    """Open a dataset of layout ``kind`` (prepared | celeba | celebamask_hq) at ``root``."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder not found: {root}")
    if kind not in LAYOUTS:
        raise ValueError(f"unknown dataset kind {kind!r}: prepared, celeba or celebamask_hq")
    return LAYOUTS[kind](root, split, **options)
