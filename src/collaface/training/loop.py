"""``collaface train``: the resumable collaGAN training loop.

Run folder::

    RUN/config.yaml            resolved config of the latest (re)start: model/loss/baseline must match
                               the run's; budget and logging settings may change (logged)
    RUN/checkpoints/ckpt-<step>.pt   resumable state, newest ``train.keep_checkpoints`` kept
    RUN/stats.jsonl            one JSON line per ``train.log_every`` steps (same numbers as TensorBoard)
    RUN/tb/                    TensorBoard scalars
    RUN/samples/step-<step>.png   sample grids on fixed validation faces

``train.warmup_steps`` first steps train the generator on its reconstruction terms only (the
discriminators wait); ``train.max_minutes`` stops training (with a checkpoint) once the loop's
wall-clock time, summed over resumes, reaches the budget: equal-time comparisons of recipes.
``train.lr_decay_minutes`` lowers every learning rate linearly to 0 over the budget's last minutes
(pix2pix's linear decay, timed in loop seconds; the ranks share the slowest rank's clock).

Rerunning the same command continues from the newest loadable checkpoint (same data order,
masks and augmentation: they are keyed by (seed, epoch, index) and the data position is saved).
SIGINT/SIGTERM save a checkpoint and stop cleanly; ``kill -9`` loses at most the steps since the
last checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from collaface import config as cfgmod
from collaface import model_format
from collaface.config import Config
from collaface.data import io
from collaface.data.dataset import FaceDataset, build_dataset
from collaface.data.sources.base import DatasetLayoutError
from collaface.device import resolve_device
from collaface.models.build import GanModel, build_model
from collaface.training import distributed
from collaface.training.ema import WeightAverage
from collaface.training.hardware import choose_speed_settings, cpu_description
from collaface.training.samples import write_sample_grid
from collaface.training.speed import SpeedSettings
from collaface.training.step import lr_scale, make_optimizers, prepare_batch, set_learning_rates, train_step

log = logging.getLogger(__name__)

SAMPLE_FACES = 8
SAMPLE_MASKS = ("block", "freeform", "O1", "O6")
# Sections that define the model and objective: a run folder keeps them for its whole life.
FROZEN_SECTIONS = ("model", "loss", "baseline")


def compile_model(model: GanModel) -> None:
    """torch.compile every network's forward in place; state_dict keys stay unprefixed."""
    for module in (model.generator, *model.discriminators.values()):
        module.forward = torch.compile(module.forward)


class TrainingError(RuntimeError):
    """Training cannot continue; the message says why and what is kept."""


class EpochSampler(Sampler[int]):
    """Seeded permutation for one epoch, this rank's share, whole batches only, starting at
    ``start_batch`` (the saved data position on resume)."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, info: distributed.DistInfo, start_batch: int):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        per_rank = n // info.world_size
        mine = order[: per_rank * info.world_size][info.rank::info.world_size]
        self.batches = per_rank // batch_size
        self.indices = mine[start_batch * batch_size: self.batches * batch_size].tolist()

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class Position:
    step: int = 0            # batches trained so far (all epochs)
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of the current epoch already trained
    train_seconds: float = 0.0  # wall-clock spent in the training loop, summed over resumes


def _flatten(tree: dict, prefix: str = "") -> dict:
    """{"train": {"max_steps": 2}} -> {"train.max_steps": 2} (nested sections too)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_run_config(cfg: Config, run_dir: Path) -> dict | None:
    """A run folder keeps its model/loss/baseline config; other sections (budget, logging) may change.
    Returns the saved config flattened to dotted keys (None for a new run folder)."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return None
    saved = _flatten(cfgmod.to_dict(cfgmod.from_dict(cfgmod.read_yaml(saved_path))))
    current = _flatten(cfgmod.to_dict(cfg))
    frozen = tuple(f"{section}." for section in FROZEN_SECTIONS)
    diffs = [f"{key}: run has {saved[key]!r}, now {value!r}" for key, value in current.items()
             if (key.startswith(frozen) or key == "data.image_size") and saved[key] != value]
    if diffs:
        raise cfgmod.ConfigError(
            f"{run_dir} was started with another model/loss config ({'; '.join(diffs)}); use a new --out"
        )
    return saved


def _save_run_config(cfg: Config, run_dir: Path, saved: dict | None) -> None:
    """Writes RUN/config.yaml, logging the settings that differ from the ``saved`` one (flattened)."""
    if saved is not None:
        changed = [f"{key}: {saved[key]!r} -> {value!r}"
                   for key, value in _flatten(cfgmod.to_dict(cfg)).items() if saved[key] != value]
        if changed:
            log.info("settings changed since the last start (config.yaml updated): %s", "; ".join(changed))
    cfgmod.save_config(cfg, run_dir / "config.yaml")


def _fixed_sample_batch(cfg: Config) -> dict | None:
    """SAMPLE_FACES faces of the val split (train split if there is none), fixed masks."""
    faces = []
    for split in ("val", "train"):
        try:
            sets = [build_dataset(cfg.data, split, mask=kind, augment=False, seed=cfg.eval.seed)
                    for kind in SAMPLE_MASKS]
        except DatasetLayoutError:
            continue
        count = min(SAMPLE_FACES, len(sets[0]))
        faces = [sets[k % len(sets)][k] for k in range(count)]
        break
    if not faces:
        return None
    return torch.utils.data.default_collate(faces)


def _write_stats(run_dir: Path, record: dict) -> None:
    with open(run_dir / "stats.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _truncate_stats(run_dir: Path, step: int) -> None:
    """Drop stats lines past ``step`` (written after the checkpoint we resume from)."""
    path = run_dir / "stats.jsonl"
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    io.write_text_atomic(path, "".join(line + "\n" for line in keep))


def _state(model: GanModel, opt_g, opt_d, cfg: Config, pos: Position, settings: SpeedSettings,
           ema: WeightAverage | None) -> dict:
    return {
        "config": cfgmod.to_dict(cfg),
        "step": pos.step,
        "epoch": pos.epoch,
        "batch_in_epoch": pos.batch_in_epoch,
        "train_seconds": pos.train_seconds,
        "generator": model.generator.state_dict(),
        "discriminators": model.discriminators.state_dict(),
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        "speed": {"precision": settings.precision, "channels_last": settings.channels_last},
        **({"generator_ema": ema.state} if ema is not None else {}),
    }


def _restore(state: dict, model: GanModel, opt_g, opt_d) -> tuple[Position, SpeedSettings]:
    model.generator.load_state_dict(state["generator"])
    model.discriminators.load_state_dict(state["discriminators"])
    opt_g.load_state_dict(state["opt_g"])
    opt_d.load_state_dict(state["opt_d"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    speed = SpeedSettings(state["speed"]["precision"], state["speed"]["channels_last"])
    pos = Position(state["step"], state["epoch"], state["batch_in_epoch"], state.get("train_seconds", 0.0))
    return pos, speed


class _StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the next step boundary."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _leave_stop_signals_to_the_trainer(worker_id: int) -> None:
    """DataLoader workers ignore SIGINT/SIGTERM. A signal to the whole process group (Ctrl-C in a
    terminal, ``kill -- -PGID``, a scheduler's preemption) would otherwise kill them first, and
    the trainer would fail on the missing worker instead of saving a checkpoint at the next step
    boundary. Workers still end with the trainer (sentinel on shutdown, or their parent watchdog)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


# what fixes the generator's layers: a run may start from another run's generator only if these match
GENERATOR_KEYS = ("arch", "tasks", "ngf", "mask_channel", "upsample", "mirror_input")


def _load_initial_generator(cfg: Config, model: GanModel) -> None:
    """A new run with ``train.init_from``: the generator starts from that model's released weights
    (the discriminators from scratch), e.g. the adversarial phase fine-tuned from a
    reconstruction-only generator."""
    source = Path(cfg.train.init_from)
    init_cfg, generator = model_format.load_generator(source)
    diffs = [f"model.{key}: {getattr(init_cfg.model, key)!r} there, {getattr(cfg.model, key)!r} here"
             for key in GENERATOR_KEYS if getattr(init_cfg.model, key) != getattr(cfg.model, key)]
    if init_cfg.data.image_size != cfg.data.image_size:
        diffs.append(f"data.image_size: {init_cfg.data.image_size} there, {cfg.data.image_size} here")
    if diffs:
        raise TrainingError(f"train.init_from {source}: another generator ({'; '.join(diffs)})")
    model.generator.load_state_dict(generator.state_dict())
    log.info("generator initialised from %s", source)


def train(cfg: Config, run_dir: Path, *, progress: bool = True) -> Position:
    """Train (or continue training) ``cfg`` in ``run_dir``; returns the final position."""
    run_dir = Path(run_dir)
    device = resolve_device(cfg.train.device, int(os.environ.get("LOCAL_RANK", "0")))
    info = distributed.setup(device.type)
    finished = False
    try:
        position = _train(cfg, run_dir, device, info, progress)
        finished = True
        return position
    finally:
        distributed.teardown(info, finished=finished)


def _train(cfg: Config, run_dir: Path, device: torch.device, info: distributed.DistInfo, progress: bool) -> Position:
    saved_config = _check_run_config(cfg, run_dir)
    torch.manual_seed(cfg.train.seed + info.rank)
    model = build_model(cfg).to(device)
    distributed.broadcast_module(model, info)
    opt_g, opt_d = make_optimizers(model, cfg)

    dataset: FaceDataset = build_dataset(cfg.data, "train", seed=cfg.train.seed, require=cfgmod.needed_labels(cfg))
    batch_size = cfg.train.batch_size
    batches_per_epoch = len(dataset) // info.world_size // batch_size
    if batches_per_epoch == 0:
        raise TrainingError(
            f"{len(dataset)} training faces are fewer than one batch of {batch_size} per rank "
            f"({info.world_size} rank(s)): lower train.batch_size"
        )
    total_steps = cfg.train.epochs * batches_per_epoch
    if cfg.train.max_steps:
        total_steps = min(total_steps, cfg.train.max_steps)

    ckpt_dir = run_dir / "checkpoints"
    latest = model_format.load_latest(ckpt_dir, map_location=device)
    if latest is None and model_format.list_checkpoints(ckpt_dir):
        raise TrainingError(f"no checkpoint in {ckpt_dir} can be loaded (all truncated or foreign); "
                            "move them away to start afresh")
    if latest is None and cfg.train.init_from:
        _load_initial_generator(cfg, model)
    if latest is not None:
        path, state = latest
        pos, settings = _restore(state, model, opt_g, opt_d)
        log.info("resuming from %s (step %d, epoch %d)", path, pos.step, pos.epoch)
    else:
        pos = Position()
        settings = choose_speed_settings(cfg, device)
    ema = WeightAverage(model.generator, cfg.train.ema) if cfg.train.ema else None
    if ema is not None and latest is not None and "generator_ema" in latest[1]:
        ema.state = latest[1]["generator_ema"]
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _save_run_config(cfg, run_dir, saved_config)
        _truncate_stats(run_dir, pos.step)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.train.compile:
        compile_model(model)

    writer = None
    sample_batch = None
    if info.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=pos.step + 1)
        sample_batch = _fixed_sample_batch(cfg)
        log.info("device %s (%s), settings %s, %d faces, %d batches/epoch, %d steps",
                 device, cpu_description() if device.type == "cpu" else torch.cuda.get_device_name(device),
                 settings, len(dataset), batches_per_epoch, total_steps)

    def save() -> None:
        if info.is_main:
            model_format.save_checkpoint(_state(model, opt_g, opt_d, cfg, pos, settings, ema), ckpt_dir, pos.step,
                                       cfg.train.keep_checkpoints)

    def samples() -> None:
        if info.is_main and sample_batch is not None:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in sample_batch.items()}
            write_sample_grid(model, batch, run_dir / "samples" / f"step-{pos.step:08d}.png")

    bar = tqdm(total=total_steps, initial=pos.step, disable=not (progress and info.is_main), unit="step",
               dynamic_ncols=True)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}  # per metric: D metrics are missing on steps without a D phase
    nonfinite_in_row = 0
    window_start, window_steps = time.perf_counter(), 0
    images_per_step = batch_size * info.world_size
    budget_s = cfg.train.max_minutes * 60
    out_of_time = bool(budget_s) and pos.train_seconds >= budget_s
    with _StopRequest() as stop:
        while pos.step < total_steps and not out_of_time:
            dataset.set_epoch(pos.epoch)
            sampler = EpochSampler(len(dataset), batch_size, cfg.train.seed, pos.epoch, info, pos.batch_in_epoch)
            loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
                                num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda",
                                worker_init_fn=_leave_stop_signals_to_the_trainer)
            step_start = time.perf_counter()
            for raw in loader:
                batch = prepare_batch(raw, cfg, device, settings.channels_last)
                # every step: the decay moves, and a resumed run takes its current train.lr / d_lr_ratio
                set_learning_rates(opt_g, opt_d, cfg, lr_scale(cfg, pos.train_seconds))
                metrics, applied = train_step(model, batch, cfg, opt_g, opt_d, settings, info, pos.step)
                pos.step += 1
                pos.batch_in_epoch += 1
                pos.train_seconds += time.perf_counter() - step_start
                if budget_s or cfg.train.lr_decay_minutes:  # the ranks share the slowest rank's clock
                    pos.train_seconds = distributed.max_scalar(pos.train_seconds, info, device)
                window_steps += 1
                bar.update(1)
                if applied:
                    if ema is not None:
                        ema.update(model.generator)
                    nonfinite_in_row = 0
                    for name, value in metrics.items():
                        sums[name] = sums.get(name, 0.0) + float(value)
                        counts[name] = counts.get(name, 0) + 1
                else:
                    nonfinite_in_row += 1
                    log.warning("step %d: non-finite loss, update skipped (%s)", pos.step,
                                ", ".join(f"{k}={float(v):.4g}" for k, v in metrics.items()))
                    if nonfinite_in_row >= cfg.train.max_nonfinite:
                        raise TrainingError(
                            f"{nonfinite_in_row} non-finite losses in a row at step {pos.step}: stopping. "
                            f"The last good checkpoint in {ckpt_dir} is kept; lower train.lr or check the data."
                        )
                if pos.step % cfg.train.log_every == 0 or pos.step == total_steps:
                    elapsed = time.perf_counter() - window_start
                    record = {"step": pos.step, "epoch": pos.epoch, "time": time.time(),
                              "train_seconds": pos.train_seconds, "lr": opt_g.param_groups[0]["lr"],
                              "adversarial": pos.step > cfg.train.warmup_steps,
                              "img_per_s": window_steps * images_per_step / max(elapsed, 1e-9)}
                    record.update({k: v / counts[k] for k, v in sums.items()})
                    if info.is_main:
                        _write_stats(run_dir, record)
                        for key, value in record.items():
                            if key not in ("step", "epoch", "time"):
                                writer.add_scalar(key, value, pos.step)
                        bar.set_postfix({"img/s": f"{record['img_per_s']:.1f}",
                                         **{k: f"{record[k]:.3g}" for k in ("g/total", "d/total") if k in record}})
                    sums, counts = {}, {}
                    window_start, window_steps = time.perf_counter(), 0
                if pos.step % cfg.train.sample_every == 0:
                    samples()
                if pos.step % cfg.train.checkpoint_every == 0:
                    save()
                out_of_time = bool(budget_s) and pos.train_seconds >= budget_s
                if stop.signal is not None or pos.step >= total_steps or out_of_time:
                    break
                step_start = time.perf_counter()
            else:
                pos.epoch += 1
                pos.batch_in_epoch = 0
                continue
            if stop.signal is not None:
                save()
                bar.close()
                if writer:
                    writer.close()
                raise KeyboardInterrupt(f"stopped by signal {stop.signal} at step {pos.step}; checkpoint saved, "
                                        "rerun the same command to continue")
            if pos.batch_in_epoch == batches_per_epoch:
                pos.epoch += 1
                pos.batch_in_epoch = 0
    bar.close()
    save()
    samples()
    if writer:
        writer.close()
    return pos
