"""``collaface evaluate``: baselines, masks per condition, determinism, the report on tiny models."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import math

import cv2
import numpy as np
import pytest
import torch
from test_dataset import make_prepared

from collaface import config as C
from collaface import realism as R
from collaface.blending import inpaint_opencv
from collaface.contracts import LANDMARK_NAMES
from collaface.data.sources.base import DatasetLayoutError
from collaface.data.transforms import to_uint8_image
from collaface.evaluation.baselines import BASELINES, face_axis, mirror_fill, run_baselines
from collaface.evaluation.cli import add_evaluate_parser, run_evaluation
from collaface.evaluation.conditions import (
    ALL_CONDITIONS,
    FREEFORM_BINS,
    OCCLUSION_CONDITIONS,
    condition_dataset,
    evaluation_data_config,
    resolve_conditions,
)
from collaface.evaluation.figures import TILE_MIN
from collaface.evaluation.reports import OCCLUSIONS_MEAN
from collaface.evaluation.scoring import COMPARISON_METRICS, IMAGE_METRICS, evaluate, load_models, weights_sha256
from collaface.evaluation.statistics import summarize
from collaface.model_format import CheckpointError, export_generator, load_generator
from collaface.models.build import build_model
from collaface.training.loop import train

FAST = ["train.precision=fp32", "train.channels_last=false", "data.num_workers=0", "train.log_every=1"]


def export_untrained(cfg: C.Config, out, white: bool = False) -> str:
    """Export an untrained generator; ``white``: its image output is all white (a bad model)."""
    generator = build_model(cfg).generator
    if white:
        head = generator.head[0]
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.constant_(head.bias, 5.0)  # tanh(5) ~ 1
    export_generator({"generator": generator.state_dict(), "config": C.to_dict(cfg), "step": 0}, out)
    return str(out)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A prepared folder of 8 faces, a 2-step trained isd model (run dir) and two untrained
    exported models: image only (i, painting holes white) and labels only (s, d). All 32 px, ngf 8."""
    root = tmp_path_factory.mktemp("evaluation")
    data = root / "data"
    make_prepared(data, n=8, size=64)
    run = root / "run_isd"
    train(C.load_config("small", [f"data.root={data}", *FAST, "train.max_steps=2"]), run, progress=False)
    only_i = export_untrained(C.load_config("small", [*FAST, "model.tasks=[i]", "name=tiny_i"]), root / "tiny_i",
                              white=True)
    only_sd = export_untrained(C.load_config("small", [*FAST, "model.tasks=[s, d]", "loss.concentrated=false",
                                                       "name=tiny_sd"]), root / "tiny_sd")
    return {"data": data, "run": str(run), "only_i": only_i, "only_sd": only_sd, "root": root}


@pytest.fixture(scope="module")
def report(tiny):
    """The full report of all three models on 4 faces (2 batches), every condition, through the CLI
    parser; without the realism measures (see test_realism_scores_in_the_report)."""
    parser = argparse.ArgumentParser()
    add_evaluate_parser(parser.add_subparsers())
    out = tiny["root"] / "report"
    args = parser.parse_args(["evaluate", tiny["run"], tiny["only_i"], tiny["only_sd"], "--data", str(tiny["data"]),
                              "--split", "train", "--out", str(out), "--limit", "4", "--batch-size", "3",
                              "--bootstrap", "50", "--workers", "0", "--device", "cpu", "--no-progress",
                              "--no-realism"])
    assert args.func(args) == 0
    return out


def test_report_files_and_tables(report, tiny):
    names = {p.name for p in report.iterdir()}
    assert {"report.json", "report.csv", "report.md", "qualitative.png", "median_crops.png"} <= names
    assert {f"bars_{m}.png" for m in IMAGE_METRICS} <= names
    data = json.loads((report / "report.json").read_text())
    assert data["seed"] == 0 and data["image_size"] == 32 and data["bootstrap_resamples"] == 50
    assert list(data["conditions"]) == list(ALL_CONDITIONS)
    assert all(c["faces"] == 4 for c in data["conditions"].values())
    assert len(data["data"]["sha256"]) == 64 and "manifest.csv" in data["data"]["annotation_files_sha256"]
    _, generator = load_generator(tiny["run"])
    assert data["models"][0]["sha256"] == weights_sha256(generator)
    table1 = data["results"]["table1"]
    assert list(table1["O1"]) == ["small", "tiny_i", *BASELINES]  # tiny_sd has no image output
    assert set(table1["O3"]["telea"]) == set(IMAGE_METRICS)
    ssim = table1["O1"]["small"]["ssim"]
    assert 0 < ssim["low"] <= ssim["value"] <= ssim["high"] <= 100 and ssim["n"] == 4
    with open(report / "report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["table"] for r in rows} == {"table1", "table2", "table3"}
    assert len([r for r in rows if r["table"] == "table1"]) == len(ALL_CONDITIONS) * 5 * len(IMAGE_METRICS)
    assert data["results"]["realism"] == {"by_condition": {}, "occlusions": {}}
    text = (report / "report.md").read_text()
    assert "Realism" not in text
    for expected in ("## Occlusions O1-O6", "paper: M*_isd", "## Table 2", "## Table 3", "Navier-Stokes (OpenCV)",
                     "freeform-40-50", "LPIPS and FID are not reported"):
        assert expected in text
    image = cv2.imread(str(report / "qualitative.png"))
    assert image.shape[1] > 5 * TILE_MIN  # label, input, 2 models, 3 baselines, ground truth


def test_models_without_label_heads_get_no_table_2_or_3(report):
    results = json.loads((report / "report.json").read_text())["results"]
    for condition in ALL_CONDITIONS:
        assert set(results["table2"][condition]) == {"small", "tiny_sd"}
        assert set(results["table3"][condition]) == {"small", "tiny_sd"}
        assert set(results["table2"][condition]["small"]) == {"whole", "hole"}
        assert list(results["table3"][condition]["tiny_sd"]) == [*LANDMARK_NAMES, "average", "nme"]


def test_only_an_image_model_reports_no_table_2_3(tiny, tmp_path):
    report = run_evaluation([tiny["only_i"]], str(tiny["data"]), tmp_path, split="train", conditions=("block",),
                              eval_cfg=C.EvalConfig(batch_size=4, bootstrap=20), limit=4, workers=0, device="cpu",
                              progress=False)
    assert report["results"]["table2"] == {"block": {}} and report["results"]["table3"] == {"block": {}}
    text = (tmp_path / "report.md").read_text()
    assert "no Table 2" in text and "no Table 3" in text


def test_a_bad_model_is_reported_as_not_beating_baselines(report):
    results = json.loads((report / "report.json").read_text())["results"]
    assert results["verdicts"]["O1"]["tiny_i"]["ssim"]["verdict"] == "worse"
    assert "**tiny_i does not beat the best baseline**" in (report / "report.md").read_text()
    assert results["comparisons"]["reference"] == "small"
    assert set(results["comparisons"]["by_condition"]["O1"]) == {"tiny_i"}
    paired = results["comparisons"]["by_condition"]["O1"]["tiny_i"]
    assert list(paired) == list(COMPARISON_METRICS)
    # sharpness is compared as a log ratio of the per-face values: check against the per-face CSV
    table = results["table1"]["O1"]
    assert (paired["sharpness"]["value"] > 0) == (table["tiny_i"]["sharpness"]["value"]
                                                  > table["small"]["sharpness"]["value"])


def test_realism_scores_in_the_report(tiny, tmp_path, monkeypatch):
    """C2ST (3 seeds, CI) and SWD per condition and method, their mean over the occlusions, in
    report.json, .csv and .md; two runs agree."""
    monkeypatch.setattr(R, "c2st", functools.partial(R.c2st, steps=3))  # a fast, not a meaningful, test
    reports = [run_evaluation([tiny["run"]], str(tiny["data"]), tmp_path / name, split="train",
                                conditions=("O1", "O2", "block"), eval_cfg=C.EvalConfig(batch_size=3, bootstrap=20),
                                limit=4, workers=0, device="cpu", progress=False) for name in ("a", "b")]
    assert reports[0]["results"] == reports[1]["results"]
    realism = reports[0]["results"]["realism"]
    assert list(realism["by_condition"]) == ["O1", "O2", "block"]
    for methods in realism["by_condition"].values():
        assert list(methods) == ["small", *BASELINES]
        for scores in methods.values():
            test = scores["c2st"]
            assert len(test["seeds"]) == 3 and test["n_test"] == 2  # 30% of 4 faces: one face, two patches
            assert test["accuracy"] == pytest.approx(np.mean(test["seeds"]))
            assert 0 <= test["low"] <= test["accuracy"] <= test["high"] <= 1
            assert len(scores["swd"]["levels"]) == R.SWD_LEVELS and scores["swd"]["faces"] == 4
    mean = realism["occlusions"]["telea"]
    assert mean["conditions"] == ["O1", "O2"] and mean["c2st"]["n_test"] == 4
    assert mean["c2st"]["accuracy"] == pytest.approx(np.mean([realism["by_condition"][c]["telea"]["c2st"]["accuracy"]
                                                              for c in ("O1", "O2")]))
    assert reports[0]["conditions"]["O1"]["realism_seconds"] > 0
    assert "c2st" in reports[0]["metrics"] and "swd" in reports[0]["metrics"]
    with open(tmp_path / "a" / "report.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["table"] == "realism"]
    assert {r["condition"] for r in rows} == {"O1", "O2", "block", OCCLUSIONS_MEAN}
    assert {r["metric"] for r in rows} == {"c2st_accuracy", "swd", *(f"swd_level{k}" for k in range(R.SWD_LEVELS))}
    text = (tmp_path / "a" / "report.md").read_text()
    assert text.count("### Realism: C2ST accuracy, 50% = indistinguishable; SWD") == 2  # occlusions, paper masks
    assert "| method | O1 | O2 | mean O1, O2 |" in text


def test_occlusion_evaluation_is_deterministic(tiny):
    """Two runs (in-process and with 2 loader workers) give identical per-face values and CIs."""
    models = load_models([tiny["run"]])
    data_cfg = evaluation_data_config(models[0].cfg, str(tiny["data"]), None)
    runs = []
    for workers in (0, 2):
        evaluation = evaluate(models, data_cfg, split="train", conditions=OCCLUSION_CONDITIONS,
                                eval_cfg=C.EvalConfig(batch_size=3, bootstrap=30), limit=5, workers=workers,
                                progress=False)
        runs.append(evaluation)
    first, second = runs
    for condition in OCCLUSION_CONDITIONS:
        a, b = first.conditions[condition], second.conditions[condition]
        assert a.indices == b.indices == list(range(5))
        for method in a.image:
            for name in IMAGE_METRICS:
                assert np.array_equal(a.image[method][name], b.image[method][name])
    assert json.dumps(summarize(first, 30, 0)) == json.dumps(summarize(second, 30, 0))


def test_freeform_bins_have_their_hole_area(tiny):
    """Baselines only (no model): each free-form bin's faces have holes inside the bin's range."""
    data_cfg = dataclasses.replace(evaluation_data_config(None, str(tiny["data"]), "prepared"), image_size=32)
    evaluation = evaluate([], data_cfg, split="train", conditions=tuple(FREEFORM_BINS),
                            eval_cfg=C.EvalConfig(batch_size=8, bootstrap=0), progress=False, workers=0)
    for condition, (low, high) in FREEFORM_BINS.items():
        fractions = np.array(evaluation.conditions[condition].hole_fraction)
        assert len(fractions) == 8 and ((fractions > 0) & (fractions >= low) & (fractions <= high)).all()
    assert evaluation.methods == list(BASELINES)


def test_resolve_conditions():
    assert resolve_conditions(["all"]) == ALL_CONDITIONS
    assert resolve_conditions(["noise", "occlusions"]) == (*OCCLUSION_CONDITIONS, "noise")
    with pytest.raises(ValueError, match="unknown mask condition 'O7'"):
        resolve_conditions(["O7"])


def test_clear_errors_for_missing_data_model_and_size(tiny, tmp_path):
    with pytest.raises(DatasetLayoutError, match="dataset folder not found"):
        run_evaluation([tiny["run"]], str(tmp_path / "nowhere"), tmp_path / "out", progress=False)
    with pytest.raises(CheckpointError, match="not found"):
        run_evaluation([str(tmp_path / "no_model")], str(tiny["data"]), tmp_path / "out", progress=False)
    models = load_models([tiny["run"]])
    wrong_size = C.DataConfig(root=str(tiny["data"]), image_size=64)
    with pytest.raises(ValueError, match="works at 32 px"):
        evaluate(models, wrong_size, split="train", progress=False)


# --------------------------------------------------------------------------- baselines


def symmetric_image(size: int = 32) -> np.ndarray:
    left = np.random.default_rng(0).integers(0, 256, (size, size // 2, 3), dtype=np.uint8)
    return np.concatenate([left, left[:, ::-1]], axis=1)


def test_mirror_fill_restores_a_symmetric_face_exactly():
    image = symmetric_image()
    hole = np.zeros((32, 32), bool)
    hole[8:20, 3:12] = True
    garbage = np.where(hole[..., None], 255, image).astype(np.uint8)
    assert np.array_equal(mirror_fill(garbage, hole, 15.5), image)


def test_mirror_fill_falls_back_to_telea_where_the_mirror_is_unknown():
    image = symmetric_image()
    hole = np.zeros((32, 32), bool)
    hole[10:20, 12:20] = True  # straddles the axis: every mirror pixel is in the hole too
    assert np.array_equal(mirror_fill(image, hole, 15.5), inpaint_opencv(image, hole, cv2.INPAINT_TELEA))


def test_face_axis_from_landmarks_or_centre():
    points = np.array([[10, 10], [18, 10], [14, 14], [11, 20], [17, 20]], np.float32)
    assert face_axis(points, 32) == pytest.approx(14.0)
    assert face_axis(np.full((5, 2), np.nan), 32) == pytest.approx(15.5)


@pytest.mark.parametrize("method", [cv2.INPAINT_TELEA, cv2.INPAINT_NS])
def test_opencv_baselines_never_read_the_hole(method):
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    hole = np.zeros((32, 32), bool)
    hole[5:15, 5:15] = True
    other = image.copy()
    other[hole] = 0
    out = inpaint_opencv(image, hole, method)
    assert np.array_equal(out, inpaint_opencv(other, hole, method))
    assert np.array_equal(out[~hole], image[~hole])


def test_run_baselines_shapes():
    images = np.stack([symmetric_image(), symmetric_image()])
    holes = np.zeros((2, 32, 32), bool)
    holes[:, 4:9, 4:9] = True
    out = run_baselines(images, holes, np.full((2, 5, 2), math.nan, np.float32))
    assert set(out) == set(BASELINES)
    assert all(v.shape == images.shape and v.dtype == np.uint8 for v in out.values())
    assert torch.equal(torch.from_numpy(out["mirror"]), torch.from_numpy(images))


def test_baselines_never_read_the_hole_of_a_real_batch(tiny):
    """The evaluation hands baselines the original image: the hole content must not leak."""
    dataset = condition_dataset(evaluation_data_config(None, str(tiny["data"]), "prepared"), "train", "O3", 0)
    batch = torch.utils.data.default_collate([dataset[k] for k in range(3)])
    hole = batch["mask"][:, 0].numpy() > 0.5
    images = to_uint8_image(batch["image"])
    scrambled = np.where(hole[..., None], 7, images).astype(np.uint8)
    landmarks = batch["landmarks"].numpy()
    first, second = run_baselines(images, hole, landmarks), run_baselines(scrambled, hole, landmarks)
    assert all(np.array_equal(first[name], second[name]) for name in BASELINES)


def test_broken_files_are_skipped_once_and_counted(tmp_path):
    make_prepared(tmp_path / "data", n=6, size=64, broken=(2,))
    data_cfg = dataclasses.replace(evaluation_data_config(None, str(tmp_path / "data"), "prepared"), image_size=32)
    evaluation = evaluate([], data_cfg, split="train", conditions=("O1",),
                            eval_cfg=C.EvalConfig(batch_size=4, bootstrap=0), progress=False, workers=0)
    record = evaluation.conditions["O1"]
    assert record.indices == [0, 1, 3, 4, 5] and record.unusable_files == 1
    assert "f2.png" not in " ".join(record.files)
