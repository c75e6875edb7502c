"""Pack prepared training sets small enough to travel to a lent GPU machine (issue 19).

    python scripts/pack_training_set.py /work/prepared/celeba_aligned /work/prepared/celeba_crops \\
        --out work/device_pack --max-mib 36

Reads folders written by ``collaface prepare`` (manifest.csv with a split column, images/,
parsing/) and writes ONE folder that the normal ``prepared`` source reads as it is
(``collaface train PRESET --data work/device_pack``), holding the train split of every source
and the first ``--val`` val faces of each (the fixed sample grids); test faces stay behind.

Per face:

* the crop is resized (area filter) to ``--size`` px, never up, and stored lossy (WebP by default).
  The prepared crops are 256 px but upsampled from ~125-150 px of CelebA, and training draws a
  128 px window at 0.6-1.5x, so 160 px keeps the detail a 1.5x zoom uses; 160 px WebP q82 is
  2.6-2.9 KB an image, 38.4-39.3 dB PSNR on the 128 px training crop against the 256 px PNG
  (docs/results/default-model.md, "Training on a lent GPU");
* the parsing map is resized with pixel-centre nearest neighbour (labels never mix) and stored
  lossless as PNG. The ``prepared`` source looks the map up as ``parsing/<the image's name>``, so
  the PNG keeps the image's name: ``parsing/<src>/x.webp`` holds PNG data (decoders read the
  content, not the suffix);
* landmark columns (pixels of the crop, pixel centres) are scaled: ``x' = (x + 0.5) s/S - 0.5``;
  the other columns (crop box in the photo, identity, split, source) are kept.

File names: ``images/<source folder name>/<name in the source's images/>`` with the new suffix.
Writes ``pack.json`` (settings, counts, bytes). The total size is printed; a pack over
``--max-mib`` is an error (exit 2) and is not left behind. Needs numpy, Pillow, OpenCV and
collaface's torch-free data code only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from collaface.data.sources.prepared import LANDMARK_COLUMNS, MANIFEST_COLUMNS

FORMATS = {"webp": ("WEBP", ".webp"), "jpeg": ("JPEG", ".jpg")}
MIB = 1024 * 1024
CHECK_AFTER = 400  # faces written before the projected size is checked against the cap


class PackError(RuntimeError):
    """A problem with the inputs or a pack over the cap; the message says what to change."""


def read_rows(src: Path, val: int) -> tuple[list[str], list[dict]]:
    """The header and the rows to pack of one prepared folder: its train split, its first ``val`` val rows."""
    path = src / "manifest.csv"
    if not path.is_file():
        raise PackError(f"{path}: not found (is {src} a folder written by `collaface prepare`?)")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        missing = [c for c in MANIFEST_COLUMNS if c not in header]
        if missing:
            raise PackError(f"{path}: missing columns {', '.join(missing)}")
        rows = list(reader)
    train = [r for r in rows if r["split"] == "train"]
    vals = [r for r in rows if r["split"] == "val"][:val]
    if not train:
        raise PackError(f"{path}: no train rows")
    return header, train + vals


def nearest_resize(labels: np.ndarray, size: int) -> np.ndarray:
    """Label map resized by sampling the source pixel under each output pixel's centre."""
    index = np.minimum(np.floor((np.arange(size) + 0.5) * labels.shape[0] / size).astype(np.int64),
                       labels.shape[0] - 1)
    return labels[index][:, index]


def pack_one(job: tuple) -> tuple[dict, int]:
    """Write one face (image, parsing) and return its manifest row and bytes written."""
    src, out, name, row, size, fmt, quality = job
    rel = Path(row["file"]).relative_to("images")
    new_rel = Path(name) / rel.with_suffix(FORMATS[fmt][1])
    with Image.open(src / row["file"]) as photo:
        image = np.asarray(photo.convert("RGB"))
    side = image.shape[0]
    if image.shape[1] != side:
        raise PackError(f"{src / row['file']}: not square ({image.shape[1]}x{side})")
    target = min(size, side)
    if target != side:
        image = cv2.resize(image, (target, target), interpolation=cv2.INTER_AREA)
    image_path = out / "images" / new_rel
    image_path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": quality, "method": 6} if fmt == "webp" else {"quality": quality, "optimize": True}
    Image.fromarray(image).save(image_path, FORMATS[fmt][0], **options)
    written = image_path.stat().st_size
    parsing_src = src / "parsing" / rel
    if parsing_src.is_file():
        with Image.open(parsing_src) as labels_image:
            if labels_image.mode not in ("L", "P"):
                raise PackError(f"{parsing_src}: label map of mode {labels_image.mode}, expected L or P")
            labels = np.asarray(labels_image, dtype=np.uint8)
        if labels.shape != (side, side):
            raise PackError(f"{parsing_src}: size {labels.shape} differs from its image ({side}, {side})")
        parsing_path = out / "parsing" / new_rel  # PNG data under the image's name (module docstring)
        parsing_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(nearest_resize(labels, target), "L").save(parsing_path, "PNG", optimize=True)
        written += parsing_path.stat().st_size
    packed = dict(row)
    packed["file"] = str(Path("images") / new_rel)
    ratio = target / side
    for column in LANDMARK_COLUMNS:
        if row[column].strip():
            packed[column] = f"{(float(row[column]) + 0.5) * ratio - 0.5:.3f}"
    return packed, written


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def pack(sources: list[Path], out: Path, *, size: int = 160, fmt: str = "webp", quality: int = 82,
         val: int = 64, max_mib: float = 36.0, jobs: int = 1, force: bool = False, quiet: bool = False) -> dict:
    """Pack ``sources`` into ``out`` (see the module docstring); returns pack.json's content."""
    if fmt not in FORMATS:
        raise PackError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    names = [s.resolve().name for s in sources]
    if len(set(names)) != len(names):
        raise PackError(f"source folders need distinct names, got {', '.join(names)}")
    if out.exists() and not force:
        raise PackError(f"{out} exists: remove it or pass --force")
    plans = [(src, name, *read_rows(src, val)) for src, name in zip(sources, names)]
    header = list(dict.fromkeys(c for _, _, h, _ in plans for c in h))
    total = sum(len(rows) for *_, rows in plans)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    cap = max_mib * MIB
    try:
        jobs_list = [(src, tmp, name, row, size, fmt, quality) for src, name, _, rows in plans for row in rows]
        packed_rows, written = [], 0
        with ProcessPoolExecutor(max(1, jobs)) if jobs > 1 else _Serial() as pool:
            for row, nbytes in pool.map(pack_one, jobs_list, chunksize=32):
                packed_rows.append(row)
                written += nbytes
                done = len(packed_rows)
                if done == CHECK_AFTER and total > CHECK_AFTER and written / done * total > 1.1 * cap:
                    raise PackError(
                        f"the pack would be ~{written / done * total / MIB:.1f} MiB ({total} faces at "
                        f"{written / done / 1024:.2f} KiB), over --max-mib {max_mib}: lower --quality or --size, "
                        "or pack fewer faces")
                if not quiet and done % 1000 == 0:
                    print(f"  {done}/{total} faces, {written / MIB:.1f} MiB", flush=True)
        with open(tmp / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(packed_rows)
        splits = {s: sum(r["split"] == s for r in packed_rows) for s in ("train", "val")}
        info = {
            "sources": [str(s) for s in sources], "size": size, "format": fmt, "quality": quality,
            "val_per_source": val, "faces": len(packed_rows), "splits": splits,
            "parsing": "PNG (lossless), pixel-centre nearest resize, stored under the image's file name",
            "seconds": round(time.perf_counter() - start, 1),
        }
        (tmp / "pack.json").write_text(json.dumps(info, indent=2) + "\n")
        nbytes = folder_bytes(tmp)
        info["bytes"] = nbytes
        info["mib"] = round(nbytes / MIB, 2)
        (tmp / "pack.json").write_text(json.dumps(info, indent=2) + "\n")
        nbytes = folder_bytes(tmp)
        if nbytes > cap:
            raise PackError(f"the pack is {nbytes / MIB:.2f} MiB, over --max-mib {max_mib}: lower --quality "
                            "or --size, or pack fewer faces (nothing was written)")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return info


class _Serial:
    """In-process stand-in for a ProcessPoolExecutor (``--jobs 1``)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, items, chunksize=1):
        return map(fn, items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", type=Path, help="folders written by `collaface prepare`")
    parser.add_argument("--out", type=Path, required=True, help="pack folder (keep it under the ignored work/)")
    parser.add_argument("--size", type=int, default=160, help="largest stored side, px (never upsampled)")
    parser.add_argument("--format", default="webp", choices=sorted(FORMATS), help="image format")
    parser.add_argument("--quality", type=int, default=82, help="lossy quality of the images (0-100)")
    parser.add_argument("--val", type=int, default=64, help="val faces kept per source (sample grids)")
    parser.add_argument("--max-mib", type=float, default=36.0, help="refuse a pack larger than this")
    parser.add_argument("--jobs", type=int, default=1, help="processes")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    try:
        info = pack(args.sources, args.out, size=args.size, fmt=args.format, quality=args.quality, val=args.val,
                    max_mib=args.max_mib, jobs=args.jobs, force=args.force)
    except PackError as err:
        print(f"pack_training_set: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.out}: {info['faces']} faces ({info['splits']['train']} train, {info['splits']['val']} val), "
          f"{info['size']} px {info['format']} q{info['quality']}, {info['mib']:.2f} MiB "
          f"({info['bytes']} bytes) of --max-mib {args.max_mib:g}, {info['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
