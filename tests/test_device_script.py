"""scripts/pack_training_set.py, scripts/device_train.py and scripts/device_join.py (issue 19):
pack a prepared set, train the default recipe's two phases within a budget on a machine without
mediapipe or gradio, return parts that fit the device's limits, join them into loadable models.

The scripts use the public CLI only; so does this test (plus Pillow, numpy and csv)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collaface.data.sources.prepared import LANDMARK_COLUMNS, MANIFEST_COLUMNS, read_manifest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
POINTS = np.array([[20, 24], [44, 24], [32, 36], [24, 48], [40, 48]], np.float32)  # at 64 px
BLOB_LABELS = (4, 5, 6, 2, 3)  # eyes, nose, brows: a blob of each on its landmark, skin (1) around


def make_prepared(root: Path, n: int = 12, val: int = 4, size: int = 64, sub: str = "images") -> None:
    """A tiny folder as `collaface prepare` writes it (images/<sub>/x.png, parsing/<sub>/x.png)."""
    rng = np.random.default_rng(0)
    rows = []
    points = POINTS * size / 64
    for i in range(n + val + 2):
        image = rng.integers(60, 200, (size, size, 3), dtype=np.uint8)
        parsing = np.ones((size, size), np.uint8)
        for (x, y), label in zip(points.astype(int), BLOB_LABELS):
            parsing[y - 4:y + 5, x - 4:x + 5] = label
        rel = f"{sub}/f{i:03d}.png"
        for folder, array in (("images", image), ("parsing", parsing)):
            (root / folder / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / folder / rel)
        split = "train" if i < n else "val" if i < n + val else "test"
        row = {"file": f"images/{rel}", "source": f"f{i}.jpg", "identity": str(i % 5), "split": split,
               "x0": 1.5, "y0": 2.5, "side": size / 2}
        row.update(dict(zip(LANDMARK_COLUMNS, points.reshape(-1).tolist())))
        rows.append(row)
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def blocked_extras(tmp_path: Path) -> Path:
    """A folder whose mediapipe, gradio and matplotlib fail to import, as on the device machine."""
    folder = tmp_path / "no_extras"
    for name in ("mediapipe", "gradio", "matplotlib"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('{name} is not on the device machine')\n")
    return folder


def run(args: list, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_pack_keeps_train_and_some_val_scales_landmarks_and_keeps_labels(tmp_path):
    make_prepared(tmp_path / "a", size=64)
    make_prepared(tmp_path / "b", size=64, sub="x")
    out = tmp_path / "pack"
    result = run([SCRIPTS / "pack_training_set.py", tmp_path / "a", tmp_path / "b", "--out", out,
                  "--size", 48, "--val", 2, "--max-mib", 1])
    assert result.returncode == 0, result.stderr
    assert "MiB" in result.stdout and str(out) in result.stdout
    rows = read_manifest(out / "manifest.csv")
    assert [r["split"] for r in rows].count("train") == 24 and [r["split"] for r in rows].count("val") == 4
    assert not any(r["split"] == "test" for r in rows)
    first = rows[0]
    assert first["file"] == "images/a/images/f000.webp" and first["identity"] == "0" and first["side"] == "32.0"
    with Image.open(out / first["file"]) as image:
        assert image.format == "WEBP" and image.size == (48, 48)
    with Image.open(out / "parsing" / Path(first["file"]).relative_to("images")) as parsing:
        assert parsing.format == "PNG" and parsing.mode == "L" and parsing.size == (48, 48)
        labels = np.asarray(parsing)
    assert set(np.unique(labels).tolist()) == {1, *BLOB_LABELS}  # nearest: no label mixed
    points = np.array([float(first[c]) for c in LANDMARK_COLUMNS]).reshape(5, 2)
    np.testing.assert_allclose(points, (POINTS + 0.5) * 48 / 64 - 0.5, atol=1e-3)
    for (x, y), label in zip(points.round().astype(int), BLOB_LABELS):
        assert labels[y, x] == label  # landmarks still on their blobs
    info = json.loads((out / "pack.json").read_text())
    assert info["faces"] == 28 and info["mib"] < 1


def test_pack_over_the_cap_is_refused_and_leaves_nothing(tmp_path):
    make_prepared(tmp_path / "a")
    out = tmp_path / "pack"
    result = run([SCRIPTS / "pack_training_set.py", tmp_path / "a", "--out", out, "--max-mib", 0.001])
    assert result.returncode == 2
    assert "over --max-mib 0.001" in result.stderr and "lower --quality" in result.stderr
    assert not out.exists() and not (tmp_path / "pack.tmp").exists()


TINY = ["model.ngf=4", "model.ndf=4", "data.image_size=32", "train.precision=fp32", "train.channels_last=false"]


@pytest.mark.slow  # ~35 s: four CLI processes (train, export per phase), join, export, complete
def test_device_script_end_to_end_on_cpu(tmp_path):
    make_prepared(tmp_path / "prepared")
    pack = tmp_path / "pack"
    assert run([SCRIPTS / "pack_training_set.py", tmp_path / "prepared", "--out", pack]).returncode == 0
    out = tmp_path / "OUT"
    env = dict(os.environ, OUT=str(out), PYTHONPATH=str(blocked_extras(tmp_path)))
    result = run([SCRIPTS / "device_train.py", "--minutes", 5, "--data", pack, "--runs", tmp_path / "runs",
                  "--batch-size", 4, "--num-workers", 0, "--max-steps", 2, "--sample-every", 1,
                  "--part-mib", 0.15, "--log-every", 1, "--set", *TINY], env=env)
    log = (out / "device_train.log").read_text()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(ok)" in log and "machine:" in log and "steps 2" in log
    assert "train.init_from=" + str(tmp_path / "runs" / "l1") in log  # gan fine-tunes the l1 run

    # What comes back fits the device tool's limits: <= 8 flat files, plain names, <= 16 MiB each.
    files = sorted(p.name for p in out.iterdir())
    assert all(p.is_file() for p in out.iterdir()) and len(files) <= 8
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in files)
    assert all((out / n).stat().st_size <= 16 * 2**20 for n in files)
    assert {"SHA256SUMS", "device_train.log", "l1.tar.part00", "l1.tar.part01", "gan.tar.part00"} <= set(files)

    # A corrupt part is refused, the intact parts join into two loadable models.
    copy = tmp_path / "returned"
    copy.mkdir()
    for name in files:
        (copy / name).write_bytes((out / name).read_bytes())
    damaged = bytearray((copy / "l1.tar.part01").read_bytes())
    damaged[-1] ^= 1
    (copy / "l1.tar.part01").write_bytes(bytes(damaged))
    bad = run([SCRIPTS / "device_join.py", copy, "--out", tmp_path / "bad"])
    assert bad.returncode == 2 and "l1.tar.part01" in bad.stderr and "checksum" in bad.stderr
    joined = run([SCRIPTS / "device_join.py", out, "--out", tmp_path / "result"])
    assert joined.returncode == 0, joined.stderr
    result_dir = tmp_path / "result"
    for phase in ("l1", "gan"):
        assert (result_dir / phase / "model" / "generator.safetensors").is_file()
        assert (result_dir / phase / "run" / "stats.jsonl").is_file()
        assert list((result_dir / phase / "run" / "samples").glob("*.png"))
    gan_config = json.loads((result_dir / "gan" / "model" / "config.json").read_text())
    assert json.dumps(gan_config).count("hinge") and "pick alpha" in joined.stdout

    # The documented follow-ups: interpolate between the two, complete a face with the result.
    cli_env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    blend = tmp_path / "alpha05"
    exported = run(["-m", "collaface", "export", result_dir / "gan" / "model", "--interpolate",
                    result_dir / "l1" / "model", "--alpha", "0.5", "--out", blend], env=cli_env)
    assert exported.returncode == 0, exported.stderr
    face = tmp_path / "face.png"
    mask = tmp_path / "mask.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(face)
    hole = np.zeros((32, 32), np.uint8)
    hole[8:20, 8:20] = 255
    Image.fromarray(hole).save(mask)
    completed = run(["-m", "collaface", "complete", face, "--mask", mask, "--no-detect", "--model", blend,
                     "--out", tmp_path / "completed.png", "--no-progress"], env=cli_env)
    assert completed.returncode == 0, completed.stderr
    with Image.open(tmp_path / "completed.png") as image:
        assert image.size == (32, 32)


@pytest.mark.slow  # ~15 s: two failing train commands
def test_a_failing_phase_is_retried_once_then_its_logs_come_back(tmp_path):
    make_prepared(tmp_path / "prepared")
    pack = tmp_path / "pack"
    assert run([SCRIPTS / "pack_training_set.py", tmp_path / "prepared", "--out", pack]).returncode == 0
    out = tmp_path / "OUT"
    result = run([SCRIPTS / "device_train.py", "--minutes", 3, "--data", pack, "--runs", tmp_path / "runs",
                  "--out", out, "--phases", "l1", "--batch-size", 1000, "--num-workers", 0, "--set", *TINY])
    assert result.returncode == 1
    log = (out / "device_train.log").read_text()
    assert "retrying once with train.precision=fp32 train.channels_last=false data.num_workers=0" in log
    assert "retry exited with" in log and "fewer than one batch" in log and "(INCOMPLETE)" in log
    joined = run([SCRIPTS / "device_join.py", out, "--out", tmp_path / "result"])
    assert joined.returncode == 0 and "no exported model: logs only" in joined.stdout
    assert (tmp_path / "result" / "l1" / "run" / "train.log").read_text().count("$ ") == 2  # both tries
