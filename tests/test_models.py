"""Generator and discriminators over every preset (timm style): shapes, finiteness, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from collaface.config import ConfigError, list_presets, load_config, resolved_lambdas
from collaface.contracts import NUM_CLASSES, NUM_LANDMARKS, TARGET_KEYS
from collaface.losses import discriminator_loss, generator_loss
from collaface.models import (
    UNetGenerator,
    build_generator,
    build_model,
    count_macs,
    count_parameters,
    example_batch,
    model_costs,
    patch_grid_size,
)

# collaGAN presets; the baselines (model.arch ce/gfc/sii) have their own tests in test_baselines.py
PRESETS = [p for p in list_presets() if load_config(p).model.arch == "collagan"]
CHANNELS = {"i": 3, "s": NUM_CLASSES, "d": NUM_LANDMARKS}


def tiny_config(preset: str, size: int = 32, *extra: str):
    return load_config(preset, [f"data.image_size={size}", "model.ngf=4", "model.ndf=4", *extra])


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("preset", PRESETS)
def test_generator_outputs_one_tensor_per_task(preset):
    cfg = tiny_config(preset)
    model = build_model(cfg)
    batch = example_batch(cfg, 2, rng())
    outputs = model(batch["masked"], batch["mask"])
    assert list(outputs) == cfg.model.tasks
    for task, out in outputs.items():
        assert out.shape == (2, CHANNELS[task], 32, 32)
        assert torch.isfinite(out).all()
        assert out.abs().max() <= 1


@pytest.mark.parametrize("preset", PRESETS)
def test_one_discriminator_per_task_with_patch_logits(preset):
    cfg = tiny_config(preset, 64)
    model = build_model(cfg)
    assert list(model.discriminators) == cfg.model.tasks + cfg.model.components  # components: test_recipe
    batch = example_batch(cfg, 2, rng())
    for task in cfg.model.tasks:
        logits = model.discriminators[task](batch["masked"], batch["mask"], batch[TARGET_KEYS[task]])[-1]
        assert logits.shape == (2, 1, patch_grid_size(64), patch_grid_size(64)) == (2, 1, 6, 6)
        assert torch.isfinite(logits).all()


def _assert_all_have_gradients(module: nn.Module, what: str) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{what}.{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{what}.{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{what}.{name} got an all-zero gradient"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_generator_parameter_gets_a_gradient(preset):
    cfg = tiny_config(preset)
    model = build_model(cfg)
    batch = example_batch(cfg, 2, rng())
    total, _ = generator_loss(model(batch["masked"], batch["mask"]), batch, model.discriminators, cfg)
    assert torch.isfinite(total)
    total.backward()
    _assert_all_have_gradients(model.generator, "generator")


@pytest.mark.parametrize("preset", [p for p in PRESETS if any(resolved_lambdas(load_config(p))[f"adv_{t}"]
                                                                for t in load_config(p).model.tasks)])
def test_every_discriminator_parameter_gets_a_gradient(preset):
    cfg = tiny_config(preset)
    cfg.loss.gan = "bce"  # under the hinge loss the logit bias's gradient is exactly 0 while all logits are in (-1, 1)
    model = build_model(cfg)
    batch = example_batch(cfg, 2, rng())
    total, _ = discriminator_loss(model(batch["masked"], batch["mask"]), batch, model.discriminators, cfg)
    assert torch.isfinite(total)
    total.backward()
    weights = resolved_lambdas(cfg)
    for name, disc in model.discriminators.items():
        if weights.get(f"adv_{name}", cfg.loss.adv_components):  # a D whose terms are off is not trained
            _assert_all_have_gradients(disc, f"D_{name}")
    assert all(p.grad is None for p in model.generator.parameters()), "the D loss reached the generator"


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_image_sizes_set_the_depth_and_shapes(size):
    cfg = tiny_config("m_isd", size)
    model = build_model(cfg)
    assert model.generator.num_downs == int(math.log2(size))  # 7 at 128 px, as in the paper
    batch = example_batch(cfg, 1, rng())
    model.eval()
    with torch.no_grad():
        outputs = model(batch["masked"], batch["mask"])
        logits = model.discriminators["i"](batch["masked"], batch["mask"], outputs["i"])[-1]
    assert {t: tuple(o.shape) for t, o in outputs.items()} == {
        t: (1, CHANNELS[t], size, size) for t in ("i", "s", "d")
    }
    assert logits.shape == (1, 1, size // 8 - 2, size // 8 - 2)


def test_generator_runs_at_batch_one_in_eval_and_train_mode():
    cfg = tiny_config("m_isd_star", 128)
    generator = build_generator(cfg)
    batch = example_batch(cfg, 1, rng())
    generator.eval()
    with torch.no_grad():
        assert generator(batch["masked"], batch["mask"])["i"].shape == (1, 3, 128, 128)
    generator.train()  # the 1x1 bottleneck has no BatchNorm, so batch 1 trains too
    assert torch.isfinite(generator(batch["masked"], batch["mask"])["i"]).all()


def test_mask_channel_is_fed_to_generator_and_discriminators():
    cfg = tiny_config("m_isd", 32, "model.mask_channel=true")
    model = build_model(cfg)
    assert model.generator.encoder[0][0].in_channels == 4
    assert model.discriminators["s"].net[0][0].in_channels == 4 + NUM_CLASSES
    batch = example_batch(cfg, 2, rng())
    outputs = model(batch["masked"], batch["mask"])
    changed = model(batch["masked"], 1 - batch["mask"])
    assert not torch.equal(outputs["i"], changed["i"])


def test_wrong_input_size_is_rejected():
    generator = UNetGenerator(64, ["i"], ngf=4)
    with pytest.raises(AssertionError, match="64x64"):
        generator(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 32, 32))


def test_initialisation_is_dcgan_and_deterministic():
    cfg = load_config("m_isd")  # full width: enough weights for the statistics
    model = build_model(cfg)
    conv_weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Conv2d)])
    bn_weights = torch.cat([m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert conv_weights.mean().abs() < 1e-3 and abs(conv_weights.std() - 0.02) < 1e-3
    assert abs(bn_weights.mean() - 1) < 5e-3 and abs(bn_weights.std() - 0.02) < 5e-3
    small = tiny_config("m_isd")
    same, other = build_model(small), build_model(tiny_config("m_isd", 32, "train.seed=1"))
    reference = build_model(small).state_dict()
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in reference.items())
    assert not all(torch.equal(v, other.state_dict()[k]) for k, v in reference.items())
    alone = build_generator(small).state_dict()
    assert all(torch.equal(v, alone[k]) for k, v in same.generator.state_dict().items())


def test_cost_counts():
    conv = nn.Conv2d(3, 8, 4, stride=2, padding=1)
    assert count_macs(conv, torch.zeros(2, 3, 16, 16)) == 8 * 8 * 8 * 3 * 16
    up = nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)
    assert count_macs(up, torch.zeros(2, 8, 8, 8)) == 8 * 8 * 8 * 3 * 16
    cfg = tiny_config("m_is")
    model = build_model(cfg)
    costs = model_costs(model, cfg)
    assert list(costs) == ["generator", "D_i", "D_s"]
    assert sum(c["params"] for c in costs.values()) == count_parameters(model)
    assert all(c["macs"] > 0 for c in costs.values())
    assert model.training  # counting does not leave the model in eval mode


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_decoder_upsampling_choice(upsample):
    cfg = tiny_config("m_isd_star", 64, f"model.upsample={upsample}")
    model = build_model(cfg)
    kinds = {type(m) for m in model.generator.decoder.modules()} | {type(m) for m in model.generator.head.modules()}
    assert (nn.ConvTranspose2d in kinds) == (upsample == "transpose")
    assert (nn.Upsample in kinds) == (upsample == "resize")
    batch = example_batch(cfg, 2, rng())
    outputs = model(batch["masked"], batch["mask"])
    assert {t: tuple(o.shape) for t, o in outputs.items()} == {t: (2, CHANNELS[t], 64, 64) for t in ("i", "s", "d")}
    assert all(torch.isfinite(o).all() for o in outputs.values())
    for bad in (["model.upsample=bilinear"], ["model.arch=ce", "model.tasks=[i]", "loss.concentrated=false",
                                               "model.upsample=resize"]):
        with pytest.raises(ConfigError, match="upsample"):
            tiny_config("m_i", 64, *bad)
