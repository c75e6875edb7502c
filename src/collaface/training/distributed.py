"""Plain torchrun data parallelism: one code path for ``python`` and ``torchrun``.

Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set, world > 1) the process group is initialised
(NCCL on CUDA, gloo on CPU). Gradients are averaged across ranks explicitly after each backward
(as StyleGAN2-ADA does) instead of wrapping modules in DistributedDataParallel: the G and D phases
toggle ``requires_grad`` and call the discriminators in both phases, which DDP's hooks handle
badly. BatchNorm statistics are per rank during the forward (SyncBatchNorm needs CUDA); the
running statistics are averaged after every step so all ranks hold identical weights. Only rank 0
writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_kind: str) -> DistInfo:
    """Initialise the process group when launched by torchrun with several processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return info


def teardown(info: DistInfo, *, finished: bool) -> None:
    """Destroy the process group. After a clean finish the ranks first meet at a barrier, so no
    rank tears down gloo's connections while another still uses them (an abort at exit,
    "terminate called without an active exception"); after an error they do not wait for
    ranks that may never arrive."""
    if info.enabled and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not info.enabled:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def _average_(tensors: list[torch.Tensor], info: DistInfo) -> None:
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t).to(t.dtype))
        offset += n


def average_gradients(module: nn.Module, info: DistInfo) -> None:
    """All-reduce (mean) the gradients of ``module``'s parameters across ranks."""
    if info.enabled:
        _average_([p.grad for p in module.parameters() if p.grad is not None], info)


def average_buffers(module: nn.Module, info: DistInfo) -> None:
    """Mean of floating buffers (BatchNorm running statistics) across ranks."""
    if info.enabled:
        _average_([b.data for b in module.buffers() if b.is_floating_point()], info)


def all_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True only when ``flag`` holds on every rank."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return bool(tensor.item())


def max_scalar(value: float, info: DistInfo, device: torch.device) -> float:
    """The largest ``value`` over the ranks (itself when not distributed)."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.item()
