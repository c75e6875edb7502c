"""The realism recipe's parts (issue 19): mirrored input, face-region training holes, component
discriminators, hinge loss, feature matching, spectral norm, DiffAugment, the generator's moving
average, fine-tuning from another generator and network interpolation at export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_training import FAST, data, small_cfg  # noqa: F401  (data is a fixture)

from collaface import cli, model_format
from collaface.config import ConfigError, MaskConfig, load_config
from collaface.data import masks
from collaface.losses import MIN_COMPONENT_HOLE, component_inputs, discriminator_loss, gan_loss, generator_loss
from collaface.models.build import TYPICAL_LANDMARKS, build_model, example_batch
from collaface.models.components import CROP_SIZE, component_crops
from collaface.models.diffaugment import CUTOUT, cutout, translation
from collaface.training.ema import WeightAverage
from collaface.training.loop import TrainingError, train

RECIPE = ["data.image_size=32", "model.ngf=4", "model.ndf=4", "model.mirror_input=true", "model.upsample=resize",
          "model.spectral_norm=true", "model.components=[left_eye,right_eye,mouth]", "loss.gan=hinge",
          "loss.adv_components=0.1", "loss.feature_matching=1.0", "train.d_augment=[translation,cutout]"]


def recipe_setup(*extra: str):
    cfg = load_config("default", [*RECIPE, *extra])
    model = build_model(cfg)
    batch = example_batch(cfg, 4, torch.Generator().manual_seed(0))
    return cfg, model, batch


def test_mirror_input_feeds_the_flipped_input_as_extra_channels():
    _, model, batch = recipe_setup()
    seen = []
    model.generator.encoder[0].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    model(batch["masked"], batch["mask"])
    x = seen[0]
    assert x.shape[1] == 8  # image + mask, then their mirror
    torch.testing.assert_close(x[:, 4:], x[:, :4].flip(-1))
    torch.testing.assert_close(x[:, :3], batch["masked"])


def test_region_training_holes_are_jittered_face_regions():
    points = TYPICAL_LANDMARKS.numpy().astype(np.float64)
    exact = {name: masks.region_mask(name, points, 128) for name in masks.REGIONS}
    for seed in range(20):  # no jitter: always one of the named regions
        mask = masks.jittered_region_mask(points, 128, np.random.default_rng(seed), 0.0)
        assert any(np.array_equal(mask, m) for m in exact.values())
    jittered = [masks.jittered_region_mask(points, 128, np.random.default_rng(s), 0.2) for s in range(20)]
    assert not all(any(np.array_equal(m, e) for e in exact.values()) for m in jittered)
    assert all(0 < m.mean() < 0.5 for m in jittered)


def test_region_kind_without_landmarks_draws_a_block():
    cfg = MaskConfig(kinds=["region"], weights=[1.0])
    mask, fill = masks.sample_train_mask(cfg, 128, np.random.default_rng(0), None)
    assert fill == "noise" and mask.sum() == cfg.block_size**2
    with_points, _ = masks.sample_train_mask(cfg, 128, np.random.default_rng(0), TYPICAL_LANDMARKS.numpy())
    assert with_points.sum() != cfg.block_size**2


@pytest.mark.parametrize("crop_size", [CROP_SIZE, 64])
def test_component_crops_are_centred_on_the_landmarks(crop_size):
    size = 64
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    coordinates = torch.stack([xs, ys])[None].repeat(2, 1, 1, 1)  # pixel value = its own (x, y)
    points = TYPICAL_LANDMARKS[None].repeat(2, 1, 1) * size / 128
    points[1] += 3.0
    for name, centre in (("left_eye", points[:, 0]), ("mouth", points[:, 3:5].mean(1))):
        crop = component_crops(coordinates, points, name, crop_size)
        assert crop.shape == (2, 2, crop_size, crop_size)
        half = crop_size // 2
        middle = crop[:, :, half - 1: half + 1, half - 1: half + 1].mean((2, 3))
        torch.testing.assert_close(middle, centre, atol=0.05, rtol=0)
    eye = component_crops(coordinates, points, "left_eye", crop_size)
    span = eye[0, 0, 0, -1] - eye[0, 0, 0, 0]  # x covered by the crop: 0.7 x inter-ocular distance
    assert abs(span - 0.7 * 20 * (crop_size - 1) / crop_size) < 0.5


def test_components_judge_only_faces_whose_hole_covers_them():
    cfg, _, batch = recipe_setup()
    batch["mask"].zero_()
    size = cfg.data.image_size
    batch["mask"][0, :, : size // 2, : size // 2] = 1  # face 0: the left eye hidden
    batch["landmarks"][2] = float("nan")                 # face 2: no landmarks
    batch["mask"][2] = 1
    _, _, w = component_inputs("left_eye", batch["image"], batch, CROP_SIZE)
    assert w.tolist() == [1.0, 0.0, 0.0, 0.0]
    _, _, w = component_inputs("mouth", batch["image"], batch, CROP_SIZE)
    assert w.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert 0 < MIN_COMPONENT_HOLE < 1


def test_hinge_loss():
    logits = torch.tensor([[[[-2.0, 0.5]]], [[[1.5, 3.0]]]])
    torch.testing.assert_close(gan_loss(logits, True, "hinge"), torch.relu(1 - logits).mean())
    torch.testing.assert_close(gan_loss(logits, False, "hinge"), torch.relu(1 + logits).mean())
    torch.testing.assert_close(gan_loss(logits, True, "hinge", generator=True), -logits.mean())
    weights = torch.tensor([1.0, 0.0])
    torch.testing.assert_close(gan_loss(logits, True, "hinge", weights=weights), torch.relu(1 - logits[0]).mean())


@pytest.mark.parametrize(("component_size", "logit_side"), [(32, 6), (64, 14)])
def test_recipe_losses_reach_every_network(component_size, logit_side):
    cfg, model, batch = recipe_setup(f"model.component_size={component_size}")
    crop = torch.zeros(1, 1, component_size, component_size), torch.zeros(1, 3, component_size, component_size)
    assert model.discriminators["mouth"](*crop)[-1].shape == (1, 1, logit_side, logit_side)
    batch["mask"].fill_(1.0)  # every component is hidden, so every component D judges every face
    outputs = model(batch["masked"], batch["mask"])
    total, metrics = generator_loss(outputs, batch, model.discriminators, cfg, augment=None)
    assert {"g/adv_components", "g/feature_matching"} <= set(metrics) and torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in model.generator.parameters())
    model.zero_grad()
    d_total, d_metrics = discriminator_loss(model(batch["masked"], batch["mask"]), batch, model.discriminators, cfg)
    d_total.backward()
    assert {"d/real_left_eye", "d/fake_mouth", "d/real_i"} <= set(d_metrics)
    for name in ("i", *cfg.model.components):  # D_s and D_d are off in the default (adv_s = adv_d = 0)
        assert all(p.grad is not None for p in model.discriminators[name].parameters()), name
    assert all(p.grad is None for p in model.generator.parameters())


def test_feature_matching_is_zero_when_the_completion_is_the_original():
    cfg, model, batch = recipe_setup()
    outputs = {"i": batch["image"].clone(), "s": batch["parsing_onehot"].clone(), "d": batch["heatmaps"].clone()}
    _, metrics = generator_loss(outputs, batch, model.discriminators, cfg)
    assert metrics["g/feature_matching"] == 0


def test_spectral_norm_replaces_batchnorm_and_is_initialised():
    _, model, _ = recipe_setup()
    disc = model.discriminators["i"]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in disc.modules())
    first = disc.net[0][0]
    assert torch.nn.utils.parametrize.is_parametrized(first, "weight")
    assert abs(float(first.parametrizations.weight.original.std()) - 0.02) < 0.01


def test_diffaugment_translation_and_cutout():
    torch.manual_seed(0)
    x = torch.ones(8, 2, 16, 16, requires_grad=True)
    moved = translation(x)
    assert moved.shape == x.shape and set(moved.unique().tolist()) <= {0.0, 1.0}
    cut = cutout(x)
    hidden = (cut[:, 0] == 0).flatten(1).sum(1)
    assert (hidden == round(16 * CUTOUT) ** 2).all()
    (moved.sum() + cut.sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_weight_average_follows_the_decay():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.BatchNorm2d(1))
    average = WeightAverage(net, 0.9)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(5.0)
    average.update(net)
    torch.testing.assert_close(average.state["0.weight"], start + 0.1)
    assert average.state["1.running_mean"].item() == 5.0  # buffers are copied


def test_moving_average_is_checkpointed_and_released(data, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    train(small_cfg(data, "train.max_steps=3", "train.ema=0.5"), run, progress=False)
    state = model_format.load_latest(run / "checkpoints")[1]
    assert state["generator_ema"].keys() == state["generator"].keys()
    assert not all(torch.equal(state["generator_ema"][k], state["generator"][k]) for k in state["generator"])
    _, generator = model_format.load_generator(run)
    for name, value in generator.state_dict().items():
        torch.testing.assert_close(value, state["generator_ema"][name])


def test_fine_tuning_starts_from_another_generator_and_interpolation_exports_between(data, tmp_path):  # noqa: F811
    start = tmp_path / "l1"
    train(small_cfg(data, "train.max_steps=2", "loss.adv_i=0", "loss.adv_s=0", "loss.adv_d=0"), start,
          progress=False)
    start_weights = model_format.load_latest(start / "checkpoints")[1]["generator"]
    tuned = tmp_path / "gan"
    train(small_cfg(data, "train.max_steps=1", f"train.init_from={start}", "train.lr=1e-12"), tuned, progress=False)
    tuned_weights = model_format.load_latest(tuned / "checkpoints")[1]["generator"]
    for name, value in start_weights.items():  # one step at a negligible lr: still the start's weights
        if value.is_floating_point() and "running" not in name:
            torch.testing.assert_close(tuned_weights[name], value, atol=1e-6, rtol=0)
    with pytest.raises(TrainingError, match="model.ngf"):
        train(small_cfg(data, "train.max_steps=1", f"train.init_from={start}", "model.ngf=4"), tmp_path / "x",
              progress=False)

    gan = tmp_path / "gan2"
    train(small_cfg(data, "train.max_steps=2", f"train.init_from={start}"), gan, progress=False)
    for alpha in (0.0, 0.5, 1.0):
        out = tmp_path / f"alpha{alpha}"
        args = ["export", str(gan), "--out", str(out), "--interpolate", str(start), "--alpha", str(alpha)]
        assert cli.main(args) == 0
        _, mixed = model_format.load_generator(out)
        own = model_format.load_latest(gan / "checkpoints")[1]["generator"]
        name = "encoder.0.0.weight"
        torch.testing.assert_close(mixed.state_dict()[name], (1 - alpha) * start_weights[name] + alpha * own[name])
    assert cli.main(["export", str(gan), "--out", str(tmp_path / "bad"), "--alpha", "0.5"]) == 2


def test_recipe_options_are_validated():
    with pytest.raises(ConfigError, match="model.components"):
        load_config("default", ["model.components=[nose]"])
    with pytest.raises(ConfigError, match="loss.adv_components"):
        load_config("default", ["model.components=[]"])
    with pytest.raises(ConfigError, match="model.component_size"):
        load_config("default", ["model.component_size=16"])
    with pytest.raises(ConfigError, match="loss.rec_i_lowpass"):
        load_config("default", ["loss.rec_i_lowpass=-1"])
    with pytest.raises(ConfigError, match="loss.gan"):
        load_config("default", ["loss.gan=wasserstein"])
    with pytest.raises(ConfigError, match="train.d_augment"):
        load_config("default", ["train.d_augment=[color]"])
    with pytest.raises(ConfigError, match="train.ema"):
        load_config("default", ["train.ema=1.0"])
