"""Folder of face photos -> prepared dataset (``collaface prepare``).

For every photo under ``src`` (recursive): decode, annotate (:mod:`collaface.data.annotate`),
take the largest face, cut the square crop of :mod:`collaface.data.crop` (no alignment) and
write, under ``out``::

    images/<rel-stem>.png    crop, size x size RGB
    parsing/<rel-stem>.png   label map (contracts.LABELS) drawn from the mesh in crop pixels
    manifest.csv             file,source,identity,split,x0,y0,side,lex,ley,rex,rey,nx,ny,lmx,lmy,rmx,rmy
    failures.csv             source,reason  (every photo that was not prepared, and why)
    prepare.json             settings, annotator and mediapipe version, counts, speed
    progress.jsonl           resume state: one JSON line per finished photo (done or failed)
    preview.png              with preview=N: contact sheet of N faces (parsing + landmarks)

``<rel-stem>`` is the photo's path relative to ``src`` without its suffix; when two photos share
a stem (``a.jpg`` and ``a.png`` in one folder) both keep their extension: ``a_jpg``, ``a_png``.
Manifest coordinates: ``x0, y0, side`` = the crop box in source pixels; the 10 landmark columns
are (x, y) in the size x size crop, pixel centres, our image-side order.

Splits are by group, never by image: the meta CSV's ``partition`` (train/val/test or 0/1/2) when
it gives one (for an identity's other photos too); otherwise the sorted unique identities are
shuffled with ``seed`` and cut into the ``split`` fractions. A photo with unknown identity is its
own group (its source path). Groups are formed over all photos under ``src``, so the split does
not change with ``limit`` or reruns.

Robust to a kill: crops are written atomically before their progress line is appended and
flushed; a rerun skips photos whose progress line exists, whose source is unchanged (size and
mtime) and whose outputs exist (recorded failures are skipped the same way). The CSVs are
rewritten (temp + rename) from the progress file at the end of every run, also an interrupted one.
One process per output folder.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from collaface.data import annotate, crop, io
from collaface.data.sources.base import SPLITS
from collaface.data.sources.prepared import LANDMARK_COLUMNS, MANIFEST_COLUMNS
from collaface.data.visualize import contact_sheet, draw_landmarks, legend, overlay_parsing

PREPARE_FAILURE_COLUMNS = ("source", "reason")  # OUT/failures.csv: source photo, why it is unusable
_PARTITION_VALUES = {"train": "train", "val": "val", "test": "test", "0": "train", "1": "val", "2": "test"}


@dataclass
class PrepareSummary:
    """Counts of one ``prepare_folder`` run and where its outputs are."""

    out: Path
    prepared: int                    # faces prepared by this run
    already_done: int                # skipped: prepared by an earlier run
    failed: int                      # photos that failed in this run
    failed_before: int               # skipped: failed in an earlier run, source unchanged
    seconds: float
    split_counts: dict[str, int] = field(default_factory=dict)
    preview: Path | None = None

    def __str__(self) -> str:
        rate = self.prepared / self.seconds if self.seconds > 0 else 0.0
        splits = ", ".join(f"{s} {self.split_counts.get(s, 0)}" for s in SPLITS)
        lines = [
            f"prepared {self.prepared} new faces ({rate:.1f}/s), {self.already_done} already done, "
            f"{self.failed} failed ({self.failed_before} more failed in earlier runs)",
            f"manifest: {self.out / 'manifest.csv'} ({splits})",
            f"failures: {self.out / 'failures.csv'}",
        ]
        if self.preview:
            lines.append(f"preview:  {self.preview}")
        return "\n".join(lines)


def output_stems(sources: list[str]) -> dict[str, str]:
    """Relative source path (posix) -> output stem; colliding stems keep their extension."""
    stems = {s: s.rsplit(".", 1)[0] for s in sources}
    counts = Counter(stem.lower() for stem in stems.values())
    return {
        s: stem if counts[stem.lower()] == 1 else f"{stem}_{s.rsplit('.', 1)[1].lower()}"
        for s, stem in stems.items()
    }


# ---------------------------------------------------------------------------------------------
# Identities and splits

def read_meta(path: Path) -> dict[str, dict[str, str]]:
    """Meta CSV -> {file key: {"identity": str, "partition": str}}; keys as written in ``file``.

    Needs a ``file`` column (basename or path relative to src); ``identity`` and ``partition``
    are optional (empty = unknown). Raises ValueError naming the file and the problem.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if "file" not in columns:
            raise ValueError(f"{path}: meta CSV needs a 'file' column, has {columns}")
        meta = {}
        for line, row in enumerate(reader, start=2):
            partition = (row.get("partition") or "").strip().lower()
            if partition and partition not in _PARTITION_VALUES:
                raise ValueError(
                    f"{path}, line {line}: partition {partition!r} is not one of train/val/test/0/1/2")
            meta[row["file"].strip().replace("\\", "/")] = {
                "identity": (row.get("identity") or "").strip(),
                "partition": _PARTITION_VALUES.get(partition, ""),
            }
    return meta


def assign_splits(
    sources: list[str], meta: dict[str, dict[str, str]], fractions: tuple[float, float, float], seed: int,
) -> tuple[dict[str, str], dict[str, str]]:
    """Split and identity of every source (relative posix path).

    Meta rows match by relative path first, then by basename. A given partition wins, also for
    the identity's photos without one; the rest are split by group (identity, or the photo
    itself when unknown): the sorted groups are shuffled with ``seed`` and cut at the
    cumulative ``fractions``.
    """
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"split fractions must be 3 non-negative numbers, got {fractions}")
    rows = {s: meta.get(s) or meta.get(s.rsplit("/", 1)[-1]) or {} for s in sources}
    identity = {s: row.get("identity", "") for s, row in rows.items()}
    identity_partition = {row["identity"]: row["partition"] for row in rows.values()
                          if row.get("identity") and row.get("partition")}
    split, group_of = {}, {}
    for source, row in rows.items():
        partition = row.get("partition") or identity_partition.get(identity[source])
        if partition:
            split[source] = partition
        else:
            group_of[source] = f"id:{identity[source]}" if identity[source] else f"photo:{source}"
    groups = sorted(set(group_of.values()))
    order = np.random.default_rng(seed).permutation(len(groups))
    bounds = np.round(np.cumsum(fractions) / sum(fractions) * len(groups)).astype(int)
    group_split = {groups[g]: SPLITS[int(np.searchsorted(bounds, rank, side="right"))]
                   for rank, g in enumerate(order)}
    for source, group in group_of.items():
        split[source] = group_split[group]
    return split, identity


# ---------------------------------------------------------------------------------------------
# Resume state

def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _read_progress(path: Path) -> dict[str, dict]:
    """progress.jsonl -> {source: last record}.

    A torn last line (killed mid-write) is cut off the file so that new lines start clean.
    """
    if not path.is_file():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        with open(path, "r+b") as f:
            f.truncate(len(data))
    records = {}
    for number, line in enumerate(data.decode().splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path}, line {number}: not valid JSON; delete the line or the file") from None
        records[record["source"]] = record
    return records


def _check_settings(out: Path, size: int) -> None:
    """Refuse to mix crops of another size or crop rule into an existing output folder."""
    settings_path = out / "prepare.json"
    if not settings_path.is_file():
        return
    previous = json.loads(settings_path.read_text())
    for key, value in (("size", size), ("crop_scale", crop.CROP_SCALE)):
        if previous.get(key) != value:
            raise ValueError(
                f"{out} was prepared with {key}={previous.get(key)}, this run has {key}={value}; "
                "use a new output folder")


# ---------------------------------------------------------------------------------------------
# One photo

def _prepare_one(
    annotator: annotate.FaceAnnotator, path: Path, stem: str, out: Path, size: int, min_face: int,
) -> dict:
    """Annotate and write one photo; returns its progress record (status done or failed)."""
    try:
        image = io.load_rgb(path)
    except io.ImageDecodeError as err:
        return {"status": "failed", "reason": err.reason}
    faces = annotator.annotate(image)
    if not faces:
        return {"status": "failed", "reason": "no face found"}
    face = faces[0]
    box = crop.crop_box_from_landmarks(face.landmarks)
    if box.side < min_face:
        return {"status": "failed",
                "reason": f"face too small: crop side {box.side:.0f} px < min_face {min_face} px"}
    io.save_rgb(out / "images" / f"{stem}.png", crop.crop_resize(image, box, size))
    parsing = annotate.rasterize_parsing(box.to_crop(face.mesh, size), size)
    io.save_label_map(out / "parsing" / f"{stem}.png", parsing)
    return {
        "status": "done",
        "file": f"images/{stem}.png",
        "box": [round(box.x0, 3), round(box.y0, 3), round(box.side, 3)],
        "landmarks": np.round(box.to_crop(face.landmarks, size).astype(np.float64), 3).tolist(),
        "faces": len(faces),
    }


def _already_prepared(record: dict | None, stamp: list[int], out: Path) -> bool:
    """Whether the photo of ``record`` was handled (prepared or failed) at its current ``stamp``."""
    if record is None or record.get("stamp") != stamp:
        return False
    if record["status"] == "failed":
        return True
    return (out / record["file"]).is_file() and (out / "parsing" / record["file"][len("images/"):]).is_file()


# ---------------------------------------------------------------------------------------------
# The folder

def prepare_folder(
    src: Path,
    out: Path,
    *,
    size: int = 256,
    meta: Path | None = None,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    min_face: int = 40,
    limit: int = 0,
    preview: int = 0,
) -> PrepareSummary:
    """Prepare every photo under ``src`` into ``out`` (see the module docstring)."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: source folder not found")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    meta = meta if meta is not None else (src / "meta.csv" if (src / "meta.csv").is_file() else None)
    meta_rows = read_meta(meta) if meta is not None else {}
    out_resolved = out.resolve()
    paths = [p for p in io.list_images(src) if not p.resolve().is_relative_to(out_resolved)]
    sources = [p.relative_to(src).as_posix() for p in paths]
    splits, identities = assign_splits(sources, meta_rows, split, seed)
    stems = output_stems(sources)
    if limit > 0:
        paths, sources = paths[:limit], sources[:limit]

    settings = {
        "src": str(src), "meta": str(meta) if meta else None, "size": size,
        "crop_scale": crop.CROP_SCALE, "min_face": min_face, "split": list(split), "seed": seed,
        "limit": limit,
    }
    with annotate.FaceAnnotator() as annotator:  # fails here, before any output, without mediapipe
        out.mkdir(parents=True, exist_ok=True)
        _check_settings(out, size)
        progress_path = out / "progress.jsonl"
        records = _read_progress(progress_path)
        counts = Counter()
        start = time.perf_counter()
        try:
            with open(progress_path, "a") as progress:
                bar = tqdm(zip(paths, sources), total=len(paths), desc="prepare", unit="photo")
                for path, source in bar:
                    stamp = _stamp(path)
                    if _already_prepared(records.get(source), stamp, out):
                        counts["already_done" if records[source]["status"] == "done" else "failed_before"] += 1
                        continue
                    try:
                        record = _prepare_one(annotator, path, stems[source], out, size, min_face)
                    except Exception as err:  # one bad photo must not end a long run: record it
                        record = {"status": "failed", "reason": f"unexpected {type(err).__name__}: {err}"}
                    record.update(source=source, stamp=stamp)
                    records[source] = record
                    progress.write(json.dumps(record) + "\n")
                    progress.flush()
                    counts["prepared" if record["status"] == "done" else "failed"] += 1
                    bar.set_postfix(done=counts["prepared"], failed=counts["failed"], refresh=False)
        finally:  # also after an interrupt: the tables then list what is done so far
            seconds = time.perf_counter() - start
            rows = _write_tables(out, records, splits, identities)
            settings["annotator"] = {
                "name": "mediapipe FaceDetection (short + full range, tiled) + FaceMesh (refined irises)",
                "mediapipe": annotator.mediapipe_version,
                "landmark_mesh_index": list(annotate.LANDMARK_MESH_INDEX),
            }
            settings["last_run"] = {
                **{k: counts[k] for k in ("prepared", "already_done", "failed", "failed_before")},
                "seconds": round(seconds, 2),
                "faces_per_second": round(counts["prepared"] / seconds, 2) if seconds > 0 else None,
            }
            settings["manifest_rows"] = len(rows)
            settings["photos_with_several_faces"] = sum(
                r.get("faces", 0) > 1 for s, r in records.items() if s in splits)
            settings["split_counts"] = dict(Counter(r["split"] for r in rows))
            io.write_text_atomic(out / "prepare.json", json.dumps(settings, indent=2) + "\n")
    summary = PrepareSummary(
        out=out, prepared=counts["prepared"], already_done=counts["already_done"],
        failed=counts["failed"], failed_before=counts["failed_before"], seconds=seconds,
        split_counts=settings["split_counts"],
    )
    if preview > 0 and rows:
        summary.preview = write_preview(out, rows, preview)
    return summary


def _write_tables(out: Path, records: dict[str, dict], splits: dict[str, str],
                  identities: dict[str, str]) -> list[dict]:
    """Write manifest.csv and failures.csv from the progress records; returns manifest rows."""
    rows, failures = [], []
    for source in sorted(records):
        record = records[source]
        if source not in splits:
            continue  # the photo was removed from src since it was prepared
        if record["status"] == "failed":
            failures.append({"source": source, "reason": record["reason"]})
            continue
        x0, y0, side = record["box"]
        points = [v for xy in record["landmarks"] for v in xy]
        rows.append(dict(
            zip(MANIFEST_COLUMNS, [record["file"], source, identities[source], splits[source], x0, y0, side, *points])
        ))
    io.write_csv_atomic(out / "manifest.csv", MANIFEST_COLUMNS, rows)
    io.write_csv_atomic(out / "failures.csv", PREPARE_FAILURE_COLUMNS, failures)
    return rows


def write_preview(out: Path, rows: list[dict], count: int, tile: int = 256) -> Path:
    """out/preview.png: ``count`` manifest rows (evenly spread) with parsing overlay and landmarks."""
    picks = np.unique(np.linspace(0, len(rows) - 1, min(count, len(rows))).round().astype(int))
    tiles = []
    for i in picks:
        row = rows[i]
        image = io.load_rgb(out / row["file"])
        parsing = io.load_label_map(out / "parsing" / row["file"][len("images/"):])
        points = np.array([float(row[c]) for c in LANDMARK_COLUMNS]).reshape(5, 2)
        scale = tile / image.shape[0]
        image = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        parsing = cv2.resize(parsing, (tile, tile), interpolation=cv2.INTER_NEAREST)
        tiles.append(draw_landmarks(overlay_parsing(image, parsing), (points + 0.5) * scale - 0.5))
    sheet = contact_sheet(tiles, columns=int(np.ceil(np.sqrt(len(tiles)))))
    sheet = np.concatenate([sheet, legend(sheet.shape[1])], axis=0)
    path = out / "preview.png"
    io.save_rgb(path, sheet)
    return path
