"""The shipped default weights: present, small, fast enough to load, the default of every command,
and they complete the example photo (known pixels untouched, the hole filled like skin, not noise)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_mediapipe

from collaface.data import io
from collaface.evaluation.cli import add_evaluate_parser
from collaface.inference.engine import FaceCompleter
from collaface.model_format import (
    CONFIG_FILE,
    DEFAULT_MODEL_DIR,
    WEIGHTS_FILE,
    CheckpointError,
    default_model_dir,
    load_generator,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
MAX_WEIGHTS_BYTES = 30 * 1024 * 1024


def test_default_weights_are_shipped_small_and_load_without_network():
    folder = default_model_dir()
    assert folder == DEFAULT_MODEL_DIR
    assert (folder / WEIGHTS_FILE).stat().st_size < MAX_WEIGHTS_BYTES
    assert (folder / "MODEL_CARD.md").is_file()
    meta = json.loads((folder / CONFIG_FILE).read_text())
    assert meta["dtype"] == "float16" and meta["step"] > 0
    cfg, generator = load_generator(folder)
    assert cfg.name == "default" and cfg.model.arch == "collagan" and cfg.model.tasks == ["i", "s", "d"]
    assert cfg.loss.concentrated and cfg.data.image_size == 128
    with torch.no_grad():
        out = generator(torch.zeros(1, 3, 128, 128), torch.zeros(1, 1, 128, 128))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"i": (1, 3, 128, 128), "s": (1, 11, 128, 128),
                                                           "d": (1, 5, 128, 128)}


def test_corrupt_default_weights_name_the_file(tmp_path):
    broken = tmp_path / "weights"
    shutil.copytree(DEFAULT_MODEL_DIR, broken)
    data = (broken / WEIGHTS_FILE).read_bytes()
    (broken / WEIGHTS_FILE).write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=str(broken / WEIGHTS_FILE)):
        FaceCompleter(broken, device="cpu")


def test_evaluate_defaults_to_the_shipped_weights():
    import argparse

    parser = argparse.ArgumentParser()
    add_evaluate_parser(parser.add_subparsers())
    assert parser.parse_args(["evaluate", "--data", "x"]).models == []


@requires_mediapipe
def test_example_photo_eyes_are_completed_like_a_face(tmp_path):
    out = tmp_path / "eyes.png"
    subprocess.run([sys.executable, "-m", "collaface", "complete", str(EXAMPLE), "--region", "eyes",
                    "--out", str(out)], check=True, capture_output=True)
    original, result = io.load_rgb(EXAMPLE), io.load_rgb(out)
    with FaceCompleter(None, device="cpu") as completer:
        hole = completer.complete(original, region="eyes").hole
    assert np.array_equal(result[~hole], original[~hole])
    filled = result[hole].astype(np.float32)
    truth = original[hole].astype(np.float32)
    flat = np.broadcast_to(original[~hole].reshape(-1, 3).mean(0), truth.shape)
    # closer to the real eyes than a flat fill with the photo's mean colour, and not noise
    assert np.abs(filled - truth).mean() < np.abs(flat - truth).mean()
    assert filled.std(0).max() < 4 * truth.std(0).max()
