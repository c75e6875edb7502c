"""The two phases every method's training step ends in: D update, then G update with D frozen."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from collaface.models.build import GanModel
from collaface.training import distributed
from collaface.training.distributed import DistInfo
from collaface.training.speed import SpeedSettings


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def gan_update(model: GanModel, opt_g, opt_d, settings: SpeedSettings, info: DistInfo,
               d_loss: Callable[[], tuple[torch.Tensor, dict]] | None,
               g_loss: Callable[[], tuple[torch.Tensor, dict]]) -> tuple[dict[str, torch.Tensor], bool]:
    """The two phases of every method: ``d_loss()`` (None: no D phase) backpropagated into the
    networks beside G, then ``g_loss()`` into G with those networks frozen. Both closures build
    their loss from the generator outputs (detaching them where D trains). -> (metrics, applied)."""
    device = next(model.generator.parameters()).device
    autocast = settings.autocast(device)
    d_metrics = {}
    if d_loss is not None:
        _set_requires_grad(model.discriminators, True)
        opt_d.zero_grad(set_to_none=True)
        with autocast:
            d_total, d_metrics = d_loss()
        if not distributed.all_true(bool(torch.isfinite(d_total)), info, device):
            return d_metrics, False  # skip the whole step: nothing is updated
        if d_total.requires_grad:
            d_total.backward()
            distributed.average_gradients(model.discriminators, info)
            opt_d.step()

    _set_requires_grad(model.discriminators, False)
    opt_g.zero_grad(set_to_none=True)
    with autocast:
        g_total, g_metrics = g_loss()
    g_ok = distributed.all_true(bool(torch.isfinite(g_total)), info, device)
    if g_ok:
        g_total.backward()
        distributed.average_gradients(model.generator, info)
        opt_g.step()
    _set_requires_grad(model.discriminators, True)
    distributed.average_buffers(model, info)
    return {**d_metrics, **g_metrics}, g_ok
