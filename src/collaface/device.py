"""The one device helper: which torch device a ``--device`` / ``train.device`` name means."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a device is resolved: the onnx path never does
    import torch


class DeviceError(ValueError):
    """A device that cannot be used here; the message says why."""


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """torch.device for "auto" (this process's CUDA device when CUDA is available, else the CPU),
    "cpu", "cuda" (``cuda:<local_rank>``, the GPU of this torchrun process) or "cuda:N"."""
    import torch

    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but CUDA is not available on this machine; use cpu")
    return torch.device(f"cuda:{local_rank}" if name == "cuda" else name)
