"""prepare_folder: outputs, failures, identity splits, resume, preview; split helpers."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from conftest import requires_mediapipe
from PIL import Image

from collaface.data import annotate, io, labels, prepare
from collaface.data.visualize import contact_sheet, draw_landmarks, legend, overlay_parsing


def test_output_stems_keep_folders_and_separate_collisions():
    stems = prepare.output_stems(["a.jpg", "a.PNG", "sub/a.jpg", "b.jpeg"])
    assert stems == {"a.jpg": "a_jpg", "a.PNG": "a_png", "sub/a.jpg": "sub/a", "b.jpeg": "b"}


def test_splits_follow_identities_with_seeded_fractions():
    sources = [f"p{i:03d}.jpg" for i in range(300)]
    meta = {s: {"identity": str(i % 60), "partition": ""} for i, s in enumerate(sources)}
    split, identity = prepare.assign_splits(sources, meta, (0.8, 0.1, 0.1), seed=3)
    by_identity = {}
    for s in sources:
        by_identity.setdefault(identity[s], set()).add(split[s])
    assert all(len(v) == 1 for v in by_identity.values())
    counts = {name: sum(v == {name} for v in by_identity.values()) for name in prepare.SPLITS}
    assert counts == {"train": 48, "val": 6, "test": 6}
    assert prepare.assign_splits(sources, meta, (0.8, 0.1, 0.1), seed=3)[0] == split
    assert prepare.assign_splits(sources, meta, (0.8, 0.1, 0.1), seed=4)[0] != split


def test_partition_column_wins_and_unknown_identity_is_its_own_group(tmp_path):
    meta_path = tmp_path / "meta.csv"
    meta_path.write_text("file,identity,partition\nsub/a.jpg,7,2\nb.jpg,7,val\nc.jpg,,\n")
    meta = prepare.read_meta(meta_path)
    meta["e.jpg"] = {"identity": "8", "partition": ""}
    meta["f.jpg"] = {"identity": "8", "partition": "test"}
    split, identity = prepare.assign_splits(
        ["sub/a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg"], meta, (1, 0, 0), 0)
    assert split == {"sub/a.jpg": "test", "b.jpg": "val", "c.jpg": "train", "d.jpg": "train",
                     "e.jpg": "test", "f.jpg": "test"}
    assert identity == {"sub/a.jpg": "7", "b.jpg": "7", "c.jpg": "", "d.jpg": "", "e.jpg": "8", "f.jpg": "8"}
    # by basename when the meta file lists bare names
    split, identity = prepare.assign_splits(["x/b.jpg"], meta, (1, 0, 0), 0)
    assert split == {"x/b.jpg": "val"} and identity == {"x/b.jpg": "7"}


def test_bad_meta_files_are_named(tmp_path):
    (tmp_path / "m1.csv").write_text("name,identity\na.jpg,1\n")
    with pytest.raises(ValueError, match="m1.csv.*'file' column"):
        prepare.read_meta(tmp_path / "m1.csv")
    (tmp_path / "m2.csv").write_text("file,partition\na.jpg,holdout\n")
    with pytest.raises(ValueError, match="m2.csv, line 2.*holdout"):
        prepare.read_meta(tmp_path / "m2.csv")


def test_visual_helpers_shapes_and_untouched_background():
    image = np.full((32, 32, 3), 100, np.uint8)
    parsing = np.zeros((32, 32), np.uint8)
    parsing[10:20, 10:20] = labels.LABEL_INDEX["nose"]
    over = overlay_parsing(image, parsing)
    assert (over[0, 0] == 100).all() and not (over[15, 15] == 100).all()
    dotted = draw_landmarks(image, np.array([[5, 5], [25, 5], [16, 16], [8, 26], [24, 26]], float))
    assert dotted.shape == image.shape and (image == 100).all()
    assert contact_sheet([image] * 5, columns=3).shape == (2 * 34 + 2, 3 * 34 + 2, 3)
    assert legend(400).shape[1] == 400


def test_missing_mediapipe_fails_before_any_work(tmp_path, monkeypatch):
    def no_mediapipe(name, *args):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(annotate.importlib, "import_module", no_mediapipe)
    annotate._import_mediapipe.cache_clear()  # imported once per process: forget an earlier test's import
    (tmp_path / "src").mkdir()
    with pytest.raises(annotate.AnnotatorUnavailable, match=r"pip install 'collaface\[annotate\]'"):
        prepare.prepare_folder(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def photo_folder(shared_faces, tmp_path_factory):
    """4 real photos (identities 1, 1, 2, 3) in subfolders, plus 4 files that cannot be used."""
    src = tmp_path_factory.mktemp("photos")
    originals = sorted((shared_faces / "celeba_crops" / "images").glob("*.jpg"))[:4]
    names = ["a/one.jpg", "a/two.jpg", "b/three.jpg", "four.jpg"]
    for original, name in zip(originals, names):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(original, src / name)
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.jpg").write_text("this is not a photo\n")
    (src / "cut.jpg").write_bytes(originals[0].read_bytes()[:2000])
    Image.new("RGB", (240, 200), (128, 128, 128)).save(src / "grey.png")
    (src / "meta.csv").write_text(
        "file,identity\none.jpg,1\ntwo.jpg,1\nthree.jpg,2\nfour.jpg,3\n")
    return src


def _read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


@requires_mediapipe
def test_prepare_folder_end_to_end_and_resume(photo_folder, tmp_path, monkeypatch):
    out = tmp_path / "out"
    summary = prepare.prepare_folder(photo_folder, out, size=128, split=(0.34, 0.33, 0.33), preview=4)
    assert (summary.prepared, summary.failed, summary.already_done) == (4, 4, 0)
    assert "prepared 4 new faces" in str(summary) and str(out / "manifest.csv") in str(summary)

    columns, rows = _read_csv(out / "manifest.csv")
    assert tuple(columns) == prepare.MANIFEST_COLUMNS
    assert [r["source"] for r in rows] == ["a/one.jpg", "a/two.jpg", "b/three.jpg", "four.jpg"]
    assert [r["file"] for r in rows] == [
        "images/a/one.png", "images/a/two.png", "images/b/three.png", "images/four.png"]
    assert [r["identity"] for r in rows] == ["1", "1", "2", "3"]
    split_of = {r["identity"]: set() for r in rows}
    for r in rows:
        split_of[r["identity"]].add(r["split"])
    assert all(len(s) == 1 for s in split_of.values())       # no identity in two splits
    for r in rows:
        image = io.load_rgb(out / r["file"])
        parsing = io.load_label_map(out / "parsing" / r["file"][len("images/"):])
        assert image.shape == (128, 128, 3) and parsing.shape == (128, 128)
        points = np.array([float(r[c]) for c in prepare.MANIFEST_COLUMNS[7:]]).reshape(5, 2)
        assert ((points > 0) & (points < 128)).all()
        assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]
        x, y = np.round(points[0]).astype(int)
        assert (parsing[y - 2:y + 3, x - 2:x + 3] == labels.LABEL_INDEX["left_eye"]).any()
        assert float(r["side"]) > 40

    columns, failures = _read_csv(out / "failures.csv")
    assert tuple(columns) == prepare.PREPARE_FAILURE_COLUMNS
    reasons = {f["source"]: f["reason"] for f in failures}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["notes.jpg"] == "not a recognised image format"
    assert "truncated" in reasons["cut.jpg"]
    assert reasons["grey.png"] == "no face found"

    settings = json.loads((out / "prepare.json").read_text())
    assert settings["size"] == 128 and settings["manifest_rows"] == 4
    assert settings["annotator"]["mediapipe"] == "0.10.21"
    assert io.load_rgb(out / "preview.png").shape[1] >= 2 * 128

    # Rerun: nothing is annotated again and no output is rewritten.
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")}
    calls = []
    real_annotate = annotate.FaceAnnotator.annotate
    monkeypatch.setattr(annotate.FaceAnnotator, "annotate",
                        lambda self, image: calls.append(1) or real_annotate(self, image))
    again = prepare.prepare_folder(photo_folder, out, size=128, split=(0.34, 0.33, 0.33))
    assert (again.prepared, again.already_done, again.failed_before, calls) == (0, 4, 4, [])
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert _read_csv(out / "manifest.csv")[1] == rows

    # Killed mid-write (torn progress line) and a lost crop: only that photo is redone.
    with open(out / "progress.jsonl", "a") as f:
        f.write('{"status": "do')
    (out / "images" / "b" / "three.png").unlink()
    third = prepare.prepare_folder(photo_folder, out, size=128, split=(0.34, 0.33, 0.33))
    assert (third.prepared, third.already_done, len(calls)) == (1, 3, 1)
    assert (out / "images" / "b" / "three.png").is_file()
    fourth = prepare.prepare_folder(photo_folder, out, size=128, split=(0.34, 0.33, 0.33))
    assert (fourth.prepared, fourth.already_done, len(calls)) == (0, 4, 1)

    with pytest.raises(ValueError, match="size=128"):
        prepare.prepare_folder(photo_folder, out, size=64)
