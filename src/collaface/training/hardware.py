"""Device, precision and memory-format choice from what the hardware actually does well.

On CPUs the right setting differs by machine: native bf16 (AVX-512 BF16 / AMX) makes bf16
autocast about 2x faster than fp32, while on AVX2-only CPUs it is ~20x slower; channels_last
helps some convolution shapes and not others. ``train.precision=auto`` and
``train.channels_last=auto`` therefore time a few real training steps (at the real batch size)
of each candidate on a copy of the model and keep the fastest; this costs seconds to a minute at
start-up (not on resume: the choice is saved), and explicit values skip the probe.
"""

from __future__ import annotations

import copy
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from collaface.config import Config

log = logging.getLogger(__name__)

PROBE_STEPS = 3


@dataclass(frozen=True)
class SpeedSettings:
    precision: str       # fp32 | bf16
    channels_last: bool

    def autocast(self, device: torch.device):
        if self.precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return nullcontext()

    def __str__(self) -> str:
        return f"{self.precision}{' channels_last' if self.channels_last else ''}"


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name} but CUDA is not available on this machine")
    return torch.device(f"cuda:{local_rank}" if name == "cuda" else name)


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_description() -> str:
    """CPU model name and the capability flags that matter for speed."""
    name = "unknown CPU"
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and name == "unknown CPU":
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        return f"{name} (torch capability {torch.backends.cpu.get_cpu_capability()})"
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
    have = [f for f in wanted if f in flags]
    return f"{name} [{', '.join(have) or 'no AVX2'}] (torch capability {torch.backends.cpu.get_cpu_capability()})"


def candidates(cfg: Config, device: torch.device) -> list[SpeedSettings]:
    t = cfg.train
    precisions = [t.precision] if t.precision != "auto" else (["fp32", "bf16"] if bf16_supported(device) else ["fp32"])
    layouts = [t.channels_last] if t.channels_last != "auto" else [False, True]
    return [SpeedSettings(p, bool(c)) for p in precisions for c in layouts]


def choose_speed_settings(cfg: Config, model: torch.nn.Module, device: torch.device, step_fn) -> SpeedSettings:
    """The fastest candidate; ``step_fn(model, settings, batch_size)`` runs one training step on
    a throwaway copy. CUDA skips the probe: bf16 where supported, channels_last."""
    options = candidates(cfg, device)
    if len(options) == 1:
        return options[0]
    if device.type == "cuda":
        return SpeedSettings("bf16" if bf16_supported(device) else "fp32", True)
    batch = cfg.train.batch_size
    timings = {}
    for option in options:
        probe = copy.deepcopy(model)
        step_fn(probe, option, batch)  # warm-up (allocations, kernel selection)
        runs = []
        for _ in range(PROBE_STEPS):
            start = time.perf_counter()
            step_fn(probe, option, batch)
            runs.append(time.perf_counter() - start)
        timings[option] = min(runs)  # the least disturbed run: robust to a busy machine
    best = min(timings, key=timings.get)
    log.info("speed probe (s/step at batch %d): %s -> %s", batch,
             ", ".join(f"{o}: {s:.3f}" for o, s in timings.items()), best)
    return best
