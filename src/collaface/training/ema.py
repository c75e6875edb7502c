"""Exponential moving average of the generator's weights (``train.ema``), as StyleGAN and ESRGAN
release: smoother than any single step of an adversarial run, at no cost to training."""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    """theta_avg <- decay * theta_avg + (1 - decay) * theta after each update; buffers (BatchNorm
    statistics, integer counters) are copied. Kept in float32 on the module's device."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.state = {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                      for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        buffers = {name for name, _ in module.named_buffers()}
        for name, value in module.state_dict().items():
            if value.is_floating_point() and name not in buffers:
                self.state[name].lerp_(value.float(), 1 - self.decay)
            else:
                self.state[name].copy_(value)
