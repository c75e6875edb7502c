"""The re-implemented baselines CE, GFC and SII: forward/backward, GFC's local crop and stages,
SII's z search, resuming, evaluation and ablation hooks."""

from __future__ import annotations

import pytest
import torch
from test_ablate import make_split_data
from test_training import assert_same_weights, weights

from collaface import ablate as A
from collaface import config as C
from collaface import model_format
from collaface.evaluation.scoring import complete_batch, load_models
from collaface.models.build import build_model, example_batch
from collaface.models.gfc import crop_boxes, hole_boxes
from collaface.models.sii import contextual_loss, importance_weights
from collaface.training.loop import train
from collaface.training.speed import SpeedSettings
from collaface.training.step import make_optimizers, train_step

ARCHS = ("ce", "gfc", "sii")
TINY = ["data.image_size=32", "model.ngf=4", "model.ndf=4", "train.batch_size=4", "train.precision=fp32",
        "train.channels_last=false", "data.num_workers=0", "train.log_every=1", "data.heatmap_sigma=1.0",
        "baseline.gfc_local_from=1", "baseline.gfc_global_from=2", "baseline.sii_iterations=30"]
FP32 = SpeedSettings("fp32", False)


def tiny(arch: str, *extra: str) -> C.Config:
    return C.load_config(arch, [*TINY, *extra])


def setup(arch: str, *extra: str):
    cfg = tiny(arch, *extra)
    torch.manual_seed(0)
    model = build_model(cfg)
    opt_g, opt_d = make_optimizers(model, cfg)
    return cfg, model, opt_g, opt_d, example_batch(cfg, 4, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_backward_updates_every_trained_network(arch):
    cfg, model, opt_g, opt_d, batch = setup(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(3):
        metrics, applied = train_step(model, batch, cfg, opt_g, opt_d, FP32, step=step)
        assert applied and all(torch.isfinite(v) for v in metrics.values()), metrics
    changed = {k.split(".")[0] + "." + k.split(".")[1] for k, v in model.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, before[k])}
    expected = {"ce": {"generator.encoder", "generator.decoder", "discriminators.i"},
                "gfc": {"generator.enc", "generator.dec", "discriminators.global", "discriminators.local",
                        "discriminators.parser"},
                "sii": {"generator.netG", "generator.netD", "discriminators.i"}}[arch]
    assert expected <= changed
    model.eval()
    with torch.no_grad():
        out = model.generator(batch["masked"], batch["mask"])
    assert list(out) == ["i"] and out["i"].shape == batch["image"].shape and torch.isfinite(out["i"]).all()


def test_optimisers_split_sii_parameters_between_g_and_d():
    _, model, opt_g, opt_d, _ = setup("sii")
    g_ids = {id(p) for group in opt_g.param_groups for p in group["params"]}
    d_ids = {id(p) for group in opt_d.param_groups for p in group["params"]}
    assert g_ids == {id(p) for p in model.generator.netG.parameters()}
    assert d_ids == {id(p) for p in model.generator.netD.parameters()}


def test_ce_discriminator_learns_ten_times_slower():
    cfg, _, opt_g, opt_d, _ = setup("ce")
    assert opt_d.param_groups[0]["lr"] == pytest.approx(cfg.train.lr * 0.1)
    assert opt_g.param_groups[0]["lr"] == cfg.train.lr


def test_hole_box_crop_is_the_square_around_the_hole():
    size = 64
    mask = torch.zeros(3, 1, size, size)
    mask[0, :, 40:50, 5:12] = 1      # small hole near the left edge: widened to 32, kept inside
    mask[1, :, 2:60, 20:30] = 1      # tall hole: its height
    image = torch.arange(size * size, dtype=torch.float32).reshape(1, 1, size, size).repeat(3, 3, 1, 1)
    boxes = hole_boxes(mask, size // 2)
    assert boxes.tolist() == [[0.0, 29.0, 32.0], [0.0, 2.0, 58.0], [16.0, 16.0, 32.0]]
    crops = crop_boxes(image, boxes[:1], size // 2)
    assert torch.equal(crops[0], image[0, :, 29:61, 0:32])


def test_gfc_local_discriminator_sees_the_hole_crop_of_the_completion(monkeypatch):
    cfg, model, opt_g, opt_d, batch = setup("gfc")
    batch["mask"].zero_()
    batch["mask"][:, :, 4:12, 18:26] = 1
    seen = []
    local = model.discriminators["local"]
    original_forward = local.forward
    monkeypatch.setattr(local, "forward", lambda x: seen.append(x.detach().clone()) or original_forward(x))
    train_step(model, batch, cfg, opt_g, opt_d, FP32, step=1)
    real = seen[0]  # first call in the D phase: the real crop
    expected = crop_boxes(batch["image"], hole_boxes(batch["mask"], 16), 16)
    assert real.shape == (4, 3, 16, 16) and torch.allclose(real, expected)
    assert torch.allclose(real, batch["image"][:, :, 0:16, 14:30])


def test_gfc_stages_switch_losses_and_freeze_the_parser():
    cfg, model, opt_g, opt_d, batch = setup("gfc", "baseline.gfc_local_from=1", "baseline.gfc_global_from=2")
    keys = []
    parser_before = None
    for step in range(4):
        if step == 2:
            parser_before = {k: v.clone() for k, v in model.discriminators["parser"].state_dict().items()}
        metrics, _ = train_step(model, batch, cfg, opt_g, opt_d, FP32, step=step)
        keys.append({k for k in metrics if k.startswith("g/")})
    assert keys[0] == {"g/rec_i", "g/total"}
    assert keys[1] == {"g/rec_i", "g/adv_local", "g/total"}
    assert keys[2] == keys[3] == {"g/rec_i", "g/adv_local", "g/adv_global", "g/parsing", "g/total"}
    assert_same_weights(parser_before, model.discriminators["parser"].state_dict())


def test_sii_importance_weights_favour_known_pixels_next_to_the_hole():
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 6:10, 6:10] = 1
    w = importance_weights(mask, 3)
    assert w[0, 0, 7, 7] == 0            # hole
    assert w[0, 0, 0, 0] == 0            # known, no hole within the window
    assert w[0, 0, 5, 7] == pytest.approx(3 / 9)  # known, three hole neighbours
    assert w[0, 0, 5, 5] == pytest.approx(1 / 9)


def test_sii_search_lowers_its_contextual_loss():
    cfg, model, opt_g, opt_d, batch = setup("sii", "baseline.sii_iterations=40", "baseline.sii_lr=0.1")
    for step in range(3):
        train_step(model, batch, cfg, opt_g, opt_d, FP32, step=step)
    completer = model.generator.eval()
    weights_map = importance_weights(batch["mask"], cfg.baseline.sii_window)
    z0 = torch.Generator().manual_seed(cfg.baseline.sii_seed)
    with torch.no_grad():
        start = completer.netG(torch.rand(4, cfg.baseline.sii_z_dim, generator=z0) * 2 - 1)
        initial = contextual_loss(start, batch["masked"], weights_map)
    generated, history = completer.search(batch["masked"], batch["mask"])
    final = contextual_loss(generated, batch["masked"], weights_map)
    assert len(history) == 40 and history[-1] < history[0]
    assert (final < initial).all()
    with torch.no_grad():  # as evaluation runs it: the search still gets its gradients
        out = completer(batch["masked"], batch["mask"])["i"]
    known = (batch["mask"] < 0.5).expand_as(out)
    quantised = ((batch["masked"].clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1
    assert torch.allclose(out[known], quantised[known], atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_baseline_presets_resume_exactly(arch, tmp_path):
    data = tmp_path / "data"
    make_split_data(data)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    steps = ["train.epochs=5", f"data.root={data}"]
    train(tiny(arch, *steps, "train.max_steps=4"), straight, progress=False)
    train(tiny(arch, *steps, "train.max_steps=2"), resumed, progress=False)
    pos = train(tiny(arch, *steps, "train.max_steps=4"), resumed, progress=False)
    assert pos.step == 4
    assert_same_weights(weights(straight), weights(resumed))


def test_exported_sii_evaluates_with_its_search(tmp_path):
    data = tmp_path / "data"
    make_split_data(data)
    run = tmp_path / "run"
    train(tiny("sii", f"data.root={data}", "train.max_steps=2", "baseline.sii_iterations=3"), run, progress=False)
    state = model_format.resolve_checkpoint(run)[1]
    model_format.export_generator(state, tmp_path / "exported")
    [model] = load_models([str(tmp_path / "exported")])
    assert model.label == "sii" and model.cfg.model.arch == "sii"
    batch = example_batch(model.cfg, 2, torch.Generator().manual_seed(1))
    batch["landmarks"] = torch.full((2, 5, 2), 16.0)
    completions, _ = complete_batch(batch, [model], torch.device("cpu"), baselines=False)
    assert completions["sii"].shape == (2, 3, 32, 32) and model.faces == 2 and model.ms_per_face > 0


def test_baseline_configs_are_image_only():
    with pytest.raises(C.ConfigError, match="model.arch gfc"):
        C.load_config("gfc", ["model.tasks=[i,s]"])
    with pytest.raises(C.ConfigError, match="model.arch"):
        C.load_config("m_i", ["model.arch=pix2pix"])
    with pytest.raises(C.ConfigError, match="gfc_global_from"):
        C.load_config("gfc", ["baseline.gfc_global_from=0", "baseline.gfc_local_from=0"])


def test_ablate_accepts_baselines_and_fits_gfc_stages_to_the_budget(tmp_path):
    options = A.AblationOptions(data=str(tmp_path), out=tmp_path, budget=1000, variants=("m_i", "gfc"))
    cfg = A.variant_config("gfc", options, 0, 100)
    assert (cfg.baseline.gfc_local_from, cfg.baseline.gfc_global_from) == (300, 600)
    assert cfg.model.arch == "gfc" and cfg.train.max_steps == 100
    override = A.AblationOptions(data=str(tmp_path), out=tmp_path, budget=1000,
                                 overrides=("baseline.gfc_local_from=10",))
    assert A.variant_config("gfc", override, 0, 100).baseline.gfc_local_from == 10


def test_collagan_discriminators_train_on_every_d_every_th_adversarial_step():
    cfg, model, opt_g, opt_d, batch = setup("m_isd_star", "train.warmup_steps=1", "train.d_every=2")
    trained = []
    for step in range(5):
        d_before = {k: v.clone() for k, v in model.discriminators.named_parameters()}  # not BN statistics
        g_before = {k: v.clone() for k, v in model.generator.state_dict().items()}
        metrics, applied = train_step(model, batch, cfg, opt_g, opt_d, FP32, step=step)
        assert applied
        assert any(not torch.equal(v, g_before[k]) for k, v in model.generator.state_dict().items())
        d_moved = any(not torch.equal(v, d_before[k]) for k, v in model.discriminators.named_parameters())
        assert d_moved == any(k.startswith("d/") for k in metrics)
        trained.append(d_moved)
        assert (step >= 1) == any(k.startswith("g/adv") for k in metrics)  # G's adversarial terms: every step
    assert trained == [False, True, False, True, False]
    with pytest.raises(C.ConfigError, match="d_every"):
        tiny("m_isd_star", "train.d_every=0")
