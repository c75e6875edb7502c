"""One collaGAN training step as explicit phases: generator forward, D phase, G phase."""

from __future__ import annotations

import torch
from torch import nn

from collaface import losses
from collaface.config import Config
from collaface.data.targets import parsing_to_onehot
from collaface.models.build import CollaGAN
from collaface.training import distributed
from collaface.training.distributed import DistInfo
from collaface.training.hardware import SpeedSettings

MODEL_INPUT_KEYS = ("image", "mask", "masked", "parsing", "heatmaps")


def make_optimizers(model: CollaGAN, cfg: Config) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and one Adam over all discriminators (lr, betas from cfg.train)."""
    betas = (cfg.train.beta1, cfg.train.beta2)
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=cfg.train.lr, betas=betas)
    opt_d = torch.optim.Adam(model.discriminators.parameters(), lr=cfg.train.lr, betas=betas)
    return opt_g, opt_d


def prepare_batch(batch: dict, cfg: Config, device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    """Move the model's inputs/targets to ``device`` and add the one-hot parsing target."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = {}
    for key in MODEL_INPUT_KEYS:
        value = batch[key].to(device, non_blocking=True)
        out[key] = value.contiguous(memory_format=fmt) if value.dim() == 4 else value
    if "s" in cfg.model.tasks:
        out["parsing_onehot"] = parsing_to_onehot(out["parsing"]).contiguous(memory_format=fmt)
    return out


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def train_step(
    model: CollaGAN,
    batch: dict[str, torch.Tensor],
    cfg: Config,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    settings: SpeedSettings,
    info: DistInfo = DistInfo(),
    adversarial: bool = True,
) -> tuple[dict[str, torch.Tensor], bool]:
    """D step on detached fakes, then G step with the discriminators frozen.

    batch: output of :func:`prepare_batch`. ``adversarial=False`` (warm-up) skips the D phase and
    trains G on its reconstruction terms only. Returns (metrics, applied): a non-finite D loss on
    any rank skips the whole step; a non-finite G loss skips the G update (D was updated).
    """
    device = batch["image"].device
    autocast = settings.autocast(device)
    with autocast:
        outputs = model.generator(batch["masked"], batch["mask"])
    outputs = {task: value.float() for task, value in outputs.items()}
    d_metrics = {}
    if adversarial:
        applied, d_metrics = _discriminator_phase(model, outputs, batch, cfg, opt_d, autocast, info)
        if not applied:
            return d_metrics, False

    _set_requires_grad(model.discriminators, False)
    opt_g.zero_grad(set_to_none=True)
    with autocast:
        g_total, g_metrics = losses.generator_loss(outputs, batch, model.discriminators, cfg, adversarial)
    g_ok = distributed.all_true(bool(torch.isfinite(g_total)), info, device)
    if g_ok:
        g_total.backward()
        distributed.average_gradients(model.generator, info)
        opt_g.step()
    _set_requires_grad(model.discriminators, True)
    distributed.average_buffers(model, info)
    metrics = {**d_metrics, **g_metrics}
    return metrics, g_ok


def _discriminator_phase(model, outputs, batch, cfg, opt_d, autocast, info) -> tuple[bool, dict[str, torch.Tensor]]:
    """One update of all discriminators on detached fakes; False when the loss is non-finite on
    any rank (nothing is updated then)."""
    device = batch["image"].device
    _set_requires_grad(model.discriminators, True)
    opt_d.zero_grad(set_to_none=True)
    with autocast:
        d_total, d_metrics = losses.discriminator_loss(outputs, batch, model.discriminators, cfg)
    if not distributed.all_true(bool(torch.isfinite(d_total)), info, device):
        return False, d_metrics
    if d_total.requires_grad:
        d_total.backward()
        distributed.average_gradients(model.discriminators, info)
        opt_d.step()
    return True, d_metrics
