"""Precision and memory-format choice from what the hardware actually does well.

On CPUs the right setting differs by machine: native bf16 (AVX-512 BF16 / AMX) makes bf16
autocast about 2x faster than fp32, while on AVX2-only CPUs it is ~20x slower; channels_last
helps some convolution shapes and not others. ``train.precision=auto`` and
``train.channels_last=auto`` therefore time a few real training steps (at the real batch size)
of each candidate on a copy of the model and keep the fastest; this costs seconds to a minute at
start-up (not on resume: the choice is saved), and explicit values skip the probe.
"""

from __future__ import annotations

import logging
import multiprocessing
import time

import torch

from collaface import config as cfgmod
from collaface.config import Config
from collaface.training.speed import SpeedSettings

log = logging.getLogger(__name__)

PROBE_STEPS = 3


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


def choose_speed_settings(cfg: Config, device: torch.device) -> SpeedSettings:
    """The fastest candidate for ``cfg`` on ``device``. On CPU each candidate is timed for a few
    real training steps in a separate process, so the probe leaves the training process's heap
    and caches untouched (in-process probing slowed the following training by 6-12%). CUDA
    skips the probe: bf16 where supported, channels_last."""
    options = candidates(cfg, device)
    if len(options) == 1:
        return options[0]
    if device.type == "cuda":
        return SpeedSettings("bf16" if bf16_supported(device) else "fp32", True)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        seconds = pool.apply(_probe, (cfgmod.to_dict(cfg), [(o.precision, o.channels_last) for o in options]))
    timings = dict(zip(options, seconds))
    best = min(timings, key=timings.get)
    log.info("speed probe (s/step at batch %d): %s -> %s", cfg.train.batch_size,
             ", ".join(f"{o}: {t:.3f}" for o, t in timings.items()), best)
    return best


def _probe(config: dict, options: list[tuple[str, bool]]) -> list[float]:
    """(In the probe process.) Fastest of PROBE_STEPS timed steps per option, after a warm-up."""
    from collaface.models.build import build_model, example_batch
    from collaface.training.step import make_optimizers, train_step

    cfg = cfgmod.from_dict(config)
    batch = example_batch(cfg, cfg.train.batch_size, torch.Generator().manual_seed(0))
    seconds = []
    for precision, channels_last in options:
        settings = SpeedSettings(precision, channels_last)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = build_model(cfg).to(memory_format=fmt)
        opt_g, opt_d = make_optimizers(model, cfg)
        inputs = {k: v.contiguous(memory_format=fmt) if v.dim() == 4 else v for k, v in batch.items()}
        runs = []
        for _ in range(1 + PROBE_STEPS):
            start = time.perf_counter()
            train_step(model, inputs, cfg, opt_g, opt_d, settings)
            runs.append(time.perf_counter() - start)
        seconds.append(min(runs[1:]))  # least disturbed run after the warm-up
    return seconds
