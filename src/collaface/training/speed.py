"""The precision and memory format training steps run in (chosen by ``training.hardware``)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SpeedSettings:
    """How steps run: autocast precision and whether 4-D tensors are channels_last."""

    precision: str       # fp32 | bf16
    channels_last: bool

    def autocast(self, device: torch.device):
        if self.precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return nullcontext()

    def __str__(self) -> str:
        return f"{self.precision}{' channels_last' if self.channels_last else ''}"
