"""Loss weights, reconstruction terms and the inpainting-concentrated scheme (paper 3.2-3.3, 4.2)."""

from __future__ import annotations

import math

import pytest
import torch

from collaface.config import list_presets, load_config, resolved_lambdas
from collaface.contracts import TARGET_KEYS
from collaface.losses import discriminator_loss, gaussian_blur, generator_loss, masked_l1
from collaface.models import build_model, example_batch

# The paper's section 4.2, written out independently of config.PAPER_LAMBDAS.
PAPER_TABLE = {
    "m_i": {"adv_i": 1.0, "rec_i": 100.0},
    "m_s": {"adv_s": 1.0, "rec_s": 1000.0},
    "m_d": {"adv_d": 1.0, "rec_d": 1000.0},
    "m_is": {"adv_i": 0.8, "rec_i": 100.0, "adv_s": 0.2, "rec_s": 200.0},
    "m_id": {"adv_i": 0.8, "rec_i": 100.0, "adv_d": 0.2, "rec_d": 200.0},
    "m_isd": {"adv_i": 0.8, "rec_i": 100.0, "adv_s": 0.1, "rec_s": 200.0, "adv_d": 0.1, "rec_d": 200.0},
}
PAPER_TABLE["m_isd_star"] = PAPER_TABLE["small"] = PAPER_TABLE["m_isd"]
# default_v1 (beyond the paper): the adversarial weights at a quarter of the 3-task table
PAPER_TABLE["default_v1"] = {**PAPER_TABLE["m_isd"], "adv_i": 0.2, "adv_s": 0.025, "adv_d": 0.025}
# default: only the image adversary (hinge loss), plus component discriminators and feature matching;
# the hole's L1 at 20, not 100, so that it does not drown the adversarial terms
PAPER_TABLE["default"] = {**PAPER_TABLE["m_isd"], "rec_i": 20.0, "adv_i": 1.0, "adv_s": 0.0, "adv_d": 0.0}
# default_l1: the default's reconstruction terms only (the generator the default is fine-tuned from)
PAPER_TABLE["default_l1"] = {**PAPER_TABLE["m_isd"], "adv_i": 0.0, "adv_s": 0.0, "adv_d": 0.0}


def tiny_config(preset: str, *extra: str):
    return load_config(preset, ["data.image_size=32", "model.ngf=4", "model.ndf=4", *extra])


def setup(preset: str, *extra: str, batch_size: int = 2):
    cfg = tiny_config(preset, *extra)
    model = build_model(cfg)
    batch = example_batch(cfg, batch_size, torch.Generator().manual_seed(0))
    return cfg, model, batch


def spy_on(module: torch.nn.Module) -> list[tuple[torch.Tensor, ...]]:
    """Records the positional inputs of every forward call of ``module``."""
    calls: list[tuple[torch.Tensor, ...]] = []
    module.register_forward_pre_hook(lambda _, args: calls.append(tuple(a.detach().clone() for a in args)))
    return calls


COLLAGAN_PRESETS = [p for p in list_presets() if load_config(p).model.arch == "collagan"]


def test_every_preset_is_covered():
    assert set(PAPER_TABLE) == set(COLLAGAN_PRESETS)


@pytest.mark.parametrize("preset", COLLAGAN_PRESETS)
def test_lambdas_follow_the_paper_table(preset):
    assert resolved_lambdas(tiny_config(preset)) == PAPER_TABLE[preset]


def test_lambda_overrides_apply_and_weight_the_total():
    cfg, model, batch = setup("m_isd", "loss.adv_s=0.5", "loss.rec_i=10")
    weights = resolved_lambdas(cfg)
    assert weights["adv_s"] == 0.5 and weights["rec_i"] == 10.0 and weights["adv_d"] == 0.1
    total, metrics = generator_loss(model(batch["masked"], batch["mask"]), batch, model.discriminators, cfg)
    expected = sum(weights[name[2:]] * value for name, value in metrics.items() if name != "g/total")
    torch.testing.assert_close(total.detach(), expected)
    assert set(metrics) == {f"g/{k}" for k in weights} | {"g/total"}


@pytest.mark.parametrize("preset", COLLAGAN_PRESETS)
def test_losses_are_finite_named_scalars(preset):
    cfg, model, batch = setup(preset)
    outputs = model(batch["masked"], batch["mask"])
    for loss_fn, phase in ((generator_loss, "g"), (discriminator_loss, "d")):
        total, metrics = loss_fn(outputs, batch, model.discriminators, cfg)
        assert total.dim() == 0 and torch.isfinite(total)
        weights = resolved_lambdas(cfg)
        terms = {"g": {"adv": "adv", "rec": "rec"}, "d": {"real": "adv", "fake": "adv"}}[phase]
        expected = {f"{phase}/{k}_{t}" for t in cfg.model.tasks for k, w in terms.items() if weights[f"{w}_{t}"]}
        expected |= {f"{phase}/total"}
        if cfg.loss.adv_components:
            expected |= {"g/adv_components"} if phase == "g" else {f"d/{k}_{c}" for c in cfg.model.components
                                                                  for k in ("real", "fake")}
        if cfg.loss.feature_matching and phase == "g":
            expected |= {"g/feature_matching"}
        assert set(metrics) == expected
        for value in metrics.values():
            assert value.dim() == 0 and not value.requires_grad and torch.isfinite(value)


def test_zero_weight_terms_are_skipped():
    cfg, model, batch = setup("m_isd", "loss.rec_s=0", "loss.adv_d=0")
    calls = spy_on(model.discriminators["d"])
    outputs = model(batch["masked"], batch["mask"])
    _, g_metrics = generator_loss(outputs, batch, model.discriminators, cfg)
    _, d_metrics = discriminator_loss(outputs, batch, model.discriminators, cfg)
    assert "g/rec_s" not in g_metrics and "g/adv_s" in g_metrics
    assert "g/adv_d" not in g_metrics and "g/rec_d" in g_metrics
    assert not any(name.endswith("_d") for name in d_metrics)
    assert calls == []


def test_reconstruction_terms_are_l1_image_and_l2_labels():
    cfg, model, batch = setup("m_isd")
    outputs = model(batch["masked"], batch["mask"])
    _, metrics = generator_loss(outputs, batch, model.discriminators, cfg)
    error = {t: (outputs[t] - batch[TARGET_KEYS[t]]).detach() for t in outputs}
    torch.testing.assert_close(metrics["g/rec_i"], error["i"].abs().mean())
    torch.testing.assert_close(metrics["g/rec_s"], (error["s"] ** 2).mean())
    torch.testing.assert_close(metrics["g/rec_d"], (error["d"] ** 2).mean())


def test_masked_l1_is_the_mean_over_hole_values():
    pred, target = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    target[..., :2, :] = 5.0  # large errors outside the hole must not count
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 2:, :] = 1  # 8 hole pixels x 3 channels, error 1 each
    assert masked_l1(pred, target, mask) == 1.0
    assert masked_l1(pred, target, torch.zeros_like(mask)) == 0.0  # no hole: 0, not NaN


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.0])
def test_gaussian_blur_matches_opencv(sigma):
    cv2 = pytest.importorskip("cv2")
    image = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    radius = math.ceil(3 * sigma)
    expected = cv2.GaussianBlur(image[0].permute(1, 2, 0).numpy(), (2 * radius + 1, 2 * radius + 1), sigma,
                                borderType=cv2.BORDER_REFLECT_101)
    torch.testing.assert_close(gaussian_blur(image, sigma)[0].permute(1, 2, 0), torch.from_numpy(expected))


@pytest.mark.parametrize("concentrated", [True, False])
def test_lowpass_image_l1_leaves_fine_detail_to_the_discriminators(concentrated):
    """loss.rec_i_lowpass=1: a +-0.5 pixel checkerboard on the truth costs almost nothing, a
    smooth offset of 0.5 costs 0.5 (the plain L1 charges both 0.5). Under the concentrated
    scheme the offset is in the hole only, and the blur mixes true known pixels into its border."""
    scheme = f"loss.concentrated={concentrated}"
    _, model, batch = setup("m_isd_star", scheme)
    batch["mask"] = torch.zeros_like(batch["mask"])
    batch["mask"][..., 8:24, 8:24] = 1
    y, x = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    outputs = {t: o.detach() for t, o in model(batch["masked"], batch["mask"]).items()}
    fills = {"checker": batch["image"] + 0.5 * (-1.0) ** (y + x), "offset": batch["image"] + 0.5}
    rec = {(fill, sigma): generator_loss({**outputs, "i": image}, batch, model.discriminators,
                                         tiny_config("m_isd_star", scheme, f"loss.rec_i_lowpass={sigma}"))[1]["g/rec_i"]
           for fill, image in fills.items() for sigma in (0, 1)}
    assert rec["checker", 1] < 0.02
    torch.testing.assert_close(rec["checker", 0], torch.tensor(0.5))
    torch.testing.assert_close(rec["offset", 0], torch.tensor(0.5))
    if concentrated:
        assert 0.4 < rec["offset", 1] < 0.49
    else:
        torch.testing.assert_close(rec["offset", 1], torch.tensor(0.5))


def test_lowpass_concentrated_gradient_stays_in_the_hole():
    cfg, model, batch = setup("m_isd_star", "loss.rec_i_lowpass=1.5", "loss.adv_i=0", "loss.adv_s=0", "loss.adv_d=0")
    image = model(batch["masked"], batch["mask"])["i"].detach().requires_grad_()
    generator_loss({"i": image, "s": batch["parsing_onehot"], "d": batch["heatmaps"]}, batch,
                   model.discriminators, cfg)[0].backward()
    hole = batch["mask"].bool().expand_as(image)
    assert torch.all(image.grad[~hole] == 0) and image.grad[hole].abs().sum() > 0


@pytest.mark.parametrize("adversarial", [False, True], ids=["rec_only", "rec_and_adv"])
def test_concentrated_image_gradient_stays_in_the_hole(adversarial):
    extra = [] if adversarial else ["loss.adv_i=0", "loss.adv_s=0", "loss.adv_d=0"]
    cfg, model, batch = setup("m_isd_star", *extra)
    outputs = model(batch["masked"], batch["mask"])
    image = outputs["i"].detach().requires_grad_()
    total, metrics = generator_loss({**outputs, "i": image}, batch, model.discriminators, cfg)
    total.backward()
    hole = batch["mask"].bool().expand_as(image)
    assert torch.all(image.grad[~hole] == 0)
    assert torch.all(image.grad[hole] != 0)
    assert ("g/adv_i" in metrics) == adversarial


def test_non_concentrated_image_gradient_reaches_known_pixels():
    cfg, model, batch = setup("m_isd")
    outputs = model(batch["masked"], batch["mask"])
    image = outputs["i"].detach().requires_grad_()
    generator_loss({**outputs, "i": image}, batch, model.discriminators, cfg)[0].backward()
    assert torch.all(image.grad[~batch["mask"].bool().expand_as(image)] != 0)


@pytest.mark.parametrize("concentrated", [True, False])
def test_what_the_image_discriminator_sees(concentrated):
    cfg, model, batch = setup("m_isd", f"loss.concentrated={str(concentrated).lower()}")
    calls = spy_on(model.discriminators["i"])
    outputs = model(batch["masked"], batch["mask"])
    generator_loss(outputs, batch, model.discriminators, cfg)
    discriminator_loss(outputs, batch, model.discriminators, cfg)
    g_fake, d_real, d_fake = calls
    hole = batch["mask"].bool().expand_as(batch["image"])
    for masked, mask, _target in (g_fake, d_real, d_fake):
        assert torch.equal(masked, batch["masked"]) and torch.equal(mask, batch["mask"])  # condition x
    assert torch.equal(d_real[2], batch["image"])
    for fake in (g_fake[2], d_fake[2]):
        assert torch.equal(fake[hole], outputs["i"][hole].detach())
        if concentrated:
            assert torch.equal(fake[~hole], batch["image"][~hole])
        else:
            assert torch.equal(fake, outputs["i"].detach())


@pytest.mark.parametrize("task", ["s", "d"])
def test_label_discriminators_see_raw_outputs_and_real_labels(task):
    cfg, model, batch = setup("m_isd_star")
    calls = spy_on(model.discriminators[task])
    outputs = model(batch["masked"], batch["mask"])
    discriminator_loss(outputs, batch, model.discriminators, cfg)
    (_, _, real), (_, _, fake) = calls
    assert torch.equal(real, batch[TARGET_KEYS[task]]) and torch.equal(fake, outputs[task].detach())


def test_generator_adversarial_term_is_non_saturating():
    cfg, model, batch = setup("m_i", "loss.rec_i=0")
    outputs = model(batch["masked"], batch["mask"])
    _, metrics = generator_loss(outputs, batch, model.discriminators, cfg)
    logits = model.discriminators["i"](batch["masked"], batch["mask"], outputs["i"])[-1]
    torch.testing.assert_close(metrics["g/adv_i"], torch.nn.functional.softplus(-logits).mean().detach())
