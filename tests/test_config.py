"""Typed configs: presets, dotted overrides, errors naming the key, the paper's lambda tables."""

from __future__ import annotations

import pytest

from collaface import config as C
from collaface.cli import main

PAPER = {
    1: dict(adv_i=1.0, adv_s=1.0, adv_d=1.0, rec_i=100.0, rec_s=1000.0, rec_d=1000.0),
    2: dict(adv_i=0.8, adv_s=0.2, adv_d=0.2, rec_i=100.0, rec_s=200.0, rec_d=200.0),
    3: dict(adv_i=0.8, adv_s=0.1, adv_d=0.1, rec_i=100.0, rec_s=200.0, rec_d=200.0),
}
VARIANTS = {
    "m_i": ["i"], "m_s": ["s"], "m_d": ["d"], "m_is": ["i", "s"], "m_id": ["i", "d"],
    "m_isd": ["i", "s", "d"], "m_isd_star": ["i", "s", "d"],
}


def test_every_paper_variant_has_a_preset():
    assert set(VARIANTS) <= set(C.list_presets())


@pytest.mark.parametrize("preset", sorted(VARIANTS))
def test_preset_tasks_and_lambdas(preset):
    cfg = C.load_config(preset)
    assert cfg.name == preset
    assert cfg.model.tasks == VARIANTS[preset]
    assert cfg.loss.concentrated == (preset == "m_isd_star")
    table = PAPER[len(VARIANTS[preset])]
    expected = {f"{k}_{t}": table[f"{k}_{t}"] for t in VARIANTS[preset] for k in ("adv", "rec")}
    assert C.resolved_lambdas(cfg) == expected
    assert cfg.data.image_size == 128 and cfg.model.ngf == 64 and cfg.train.epochs == 20


def test_overrides_nested_and_typed():
    cfg = C.load_config("m_isd", ["train.batch_size=32", "data.augment.scale=[0.8, 1.2]", "loss.rec_i=50",
                                  "train.lr=1e-3", "model.tasks=[d, i]"])
    assert cfg.train.batch_size == 32
    assert cfg.data.augment.scale == (0.8, 1.2)
    assert cfg.train.lr == 1e-3
    assert cfg.model.tasks == ["i", "d"]  # canonical order
    assert C.resolved_lambdas(cfg) == {"adv_i": 0.8, "rec_i": 50.0, "adv_d": 0.2, "rec_d": 200.0}


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.batchsize=3", "unknown key train.batchsize"),
        ("nope=1", "unknown key nope"),
        ("train.batch_size=abc", "train.batch_size: expected an integer"),
        ("train.batch_size=2.5", "train.batch_size: expected an integer"),
        ("train.compile=1", "train.compile: expected true/false"),
        ("data.augment.scale=[1.0]", "data.augment.scale: expected 2 values"),
        ("model.tasks=[i, x]", "model.tasks"),
        ("data.image_size=100", "data.image_size"),
        ("data.masks.kinds=[block, blob]", "data.masks.kinds"),
        ("train.precision=fp16", "train.precision"),
        ("model.tasks=[s, d]", None),  # valid; concentrated check below uses it
        ("train", "must look like section.key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    if message is None:
        C.load_config("m_isd", [override])
        return
    with pytest.raises(C.ConfigError, match=message.replace("[", r"\[")):
        C.load_config("m_isd", [override])


def test_concentrated_needs_inpainting():
    with pytest.raises(C.ConfigError, match="loss.concentrated"):
        C.load_config("m_isd_star", ["model.tasks=[s, d]"])


def test_unknown_preset_lists_available():
    with pytest.raises(C.ConfigError, match="available: .*m_isd_star"):
        C.load_config("m_xyz")


def test_yaml_file_preset_and_save_roundtrip(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  tasks: [i, s]\n  ngf: 32\n")
    cfg = C.load_config(str(path))
    assert cfg.name == "mine" and cfg.model.ngf == 32
    C.save_config(cfg, tmp_path / "resolved.yaml")
    again = C.load_config(str(tmp_path / "resolved.yaml"))
    assert C.to_dict(again) == C.to_dict(cfg)
    path.write_text("model: [1, 2\n")
    with pytest.raises(C.ConfigError, match="invalid YAML"):
        C.load_config(str(path))


def test_show_config_cli(capsys):
    assert main(["show-config", "m_isd_star", "train.batch_size=8"]) == 0
    out = capsys.readouterr().out
    assert "batch_size: 8" in out and "concentrated: true" in out and "adv_i=0.8" in out
    assert main(["show-config", "m_isd_star", "train.nope=1"]) == 2
    assert "unknown key train.nope" in capsys.readouterr().err
