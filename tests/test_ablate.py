"""``collaface ablate`` on tiny variants: outputs, resuming, no retraining, claims."""

from __future__ import annotations

import argparse
import csv
import json

import pytest
from test_dataset import make_prepared

from collaface import ablate as A
from collaface import config as C
from collaface import model_format
from collaface.config import EvalConfig
from collaface.evaluation.conditions import OCCLUSION_CONDITIONS, resolve_conditions

TINY = ["data.image_size=32", "model.ngf=4", "model.ndf=4", "train.batch_size=4", "train.precision=fp32",
        "train.channels_last=false", "data.num_workers=0", "train.log_every=1", "data.heatmap_sigma=1.0"]
VARIANTS = ("m_i", "m_s", "m_d", "m_isd_star")


def make_split_data(root) -> None:
    """12 faces: 8 train, 2 val, 2 test."""
    make_prepared(root, n=12, size=64)
    path = root / "manifest.csv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for k, row in enumerate(rows):
        row["split"] = "train" if k < 8 else "val" if k < 10 else "test"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def options(data, out, budget, **changes) -> A.AblationOptions:
    base = A.AblationOptions(data=str(data), out=out, budget=budget, variants=VARIANTS, overrides=tuple(TINY),
                             conditions=("O1", "O2", "block"), eval=EvalConfig(batch_size=4, bootstrap=20),
                             eval_every=1, val_faces=2, val_conditions=("block",), workers=0, device="cpu",
                             progress=False)
    return A.dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate")
    make_split_data(root / "data")
    result = A.run_ablation(options(root / "data", root / "out", budget=2))
    return root, result


def test_outputs_and_tables(ablation):
    root, result = ablation
    out = root / "out"
    for name in ("ablation.md", "ablation.json", "validation.png", "report/report.md", "report/qualitative.png"):
        assert (out / name).is_file(), name
    assert result["settings"]["trained_steps"] == {v: 2 for v in VARIANTS}
    assert [m["label"] for m in result["report"]["models"]] == ["m_i", "m_isd_star", "m_s", "m_d"]
    for variant in VARIANTS:
        steps = [r["step"] for r in result["validation"][variant]]
        assert steps == [1, 2]
    assert "ssim" in result["validation"]["m_i"][0]["conditions"]["block"]
    assert "dice" in result["validation"]["m_s"][0]["conditions"]["block"]
    assert "landmark_error" in result["validation"]["m_d"][0]["conditions"]["block"]
    text = (out / "ablation.md").read_text()
    for expected in ("## Table 1", "ours M*_isd", "paper GFC", "## Table 2", "ours M_s", "paper M_is",
                     "## Table 3", "ours M_d", "## The paper's claims"):
        assert expected in text, expected
    hole_section = text.split("## In the hole: PSNR (dB) / sharpness")[1].split("## Table 2")[0]
    assert "| ours M*_isd | " in hole_section and "| ours M_i | " in hole_section and "| paper " not in hole_section


def test_claims_cover_the_variants_present(ablation):
    _, result = ablation
    claims = {c["key"]: c for c in result["claims"]}
    assert set(claims) == {"more_tasks_vs_m_i", "parsing_collaboration", "landmark_collaboration"}
    more = claims["more_tasks_vs_m_i"]
    assert more["total"] == 2 * 2  # M*_isd vs M_i at O1, O2 on SSIM and PSNR
    assert {r["a"] for r in more["comparisons"]} == {"m_isd_star"}
    landmarks = claims["landmark_collaboration"]["comparisons"]
    assert [(r["a"], r["b"], r["condition"]) for r in landmarks] == [("m_isd_star", "m_d", "block")]
    assert all(r["verdict"] in ("better", "worse", "no significant difference") for r in landmarks)


def test_rerun_does_not_retrain_or_reevaluate(ablation, monkeypatch):
    root, first = ablation
    before = {p: p.stat().st_mtime_ns for p in (root / "out" / "runs").rglob("ckpt-*.pt")}

    def no_call(*args, **kwargs):
        raise AssertionError("should not be called on a finished ablation")

    monkeypatch.setattr(A, "train", no_call)
    monkeypatch.setattr(A, "evaluate", no_call)
    again = A.run_ablation(options(root / "data", root / "out", budget=2))
    assert {p: p.stat().st_mtime_ns for p in (root / "out" / "runs").rglob("ckpt-*.pt")} == before
    assert again["report"] == first["report"] and again["claims"] == first["claims"]


def test_larger_budget_continues_from_the_checkpoint(tmp_path):
    make_split_data(tmp_path / "data")
    small = options(tmp_path / "data", tmp_path / "out", budget=1, variants=("m_i",), conditions=("O1",),
                    eval_every=0)
    A.run_ablation(small)
    run = tmp_path / "out" / "runs" / "m_i-seed0"
    assert A.trained_step(run) == 1
    result = A.run_ablation(A.dataclasses.replace(small, budget=3))
    assert A.trained_step(run) == 3 and result["settings"]["trained_steps"] == {"m_i": 3}
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # continued, not restarted
    assert [p.name for p in model_format.list_checkpoints(run / "checkpoints")][-1] == "ckpt-00000003.pt"


def test_train_only_subsets_then_one_joint_evaluation(tmp_path, monkeypatch):
    make_split_data(tmp_path / "data")
    base = options(tmp_path / "data", tmp_path / "out", budget=1, conditions=("O1",), eval_every=0,
                   variants=("m_i", "m_s"))
    for subset in (("m_i",), ("m_s",)):  # as two parallel processes would
        result = A.run_ablation(A.dataclasses.replace(base, variants=subset, train_only=True))
        assert result == {"trained_steps": {subset[0]: 1}}
    assert not (tmp_path / "out" / "ablation.json").exists() and not (tmp_path / "out" / "report").exists()

    def no_train(*args, **kwargs):
        raise AssertionError("both variants are already trained")

    monkeypatch.setattr(A, "train", no_train)
    joint = A.run_ablation(base)
    assert [m["label"] for m in joint["report"]["models"]] == ["m_i", "m_s"]
    assert (tmp_path / "out" / "ablation.md").is_file()


def test_reserved_overrides_and_unknown_variants_are_errors(tmp_path):
    with pytest.raises(C.ConfigError, match="train.max_steps: set by ablate"):
        A.variant_config("m_i", options(tmp_path, tmp_path, 2, overrides=("train.max_steps=5",)), 0, 2)
    with pytest.raises(C.ConfigError, match="--variants"):
        A.run_ablation(options(tmp_path, tmp_path / "out", 2, variants=("m_x",)))


def test_milestones_and_labels():
    assert A.milestones(10, 4) == [4, 8, 10]
    assert A.milestones(10, 0) == [10]
    assert A.model_label("m_i", 1, (0, 1)) == "m_i/s1" and A.model_label("m_i", 0, (0,)) == "m_i"


def test_parser_builds_options():
    parser = argparse.ArgumentParser()
    A.add_ablate_parser(parser.add_subparsers())
    args = parser.parse_args(["ablate", "model.ngf=32", "--data", "D", "--budget", "1000", "--out", "O",
                              "--variants", "m_i", "m_isd_star", "--seeds", "0", "1", "--masks", "occlusions",
                              "--train-only"])
    assert args.overrides == ["model.ngf=32"] and args.variants == ["m_i", "m_isd_star"] and args.seeds == [0, 1]
    assert resolve_conditions(args.masks) == OCCLUSION_CONDITIONS and args.train_only
