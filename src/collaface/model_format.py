"""The files a trained model lives in, below training, inference and evaluation: resumable
checkpoints and exported model folders, their reading, writing and errors. Importable without
torch (the onnx runtime reads exported folders with numpy); torch is imported where tensors are.

A resumable checkpoint (``RUN/checkpoints/ckpt-<step:08d>.pt``) is ``torch.save`` of a dict of
plain types and tensors — model and optimiser state dicts, RNG states, step, epoch, data position
and the resolved config — written to a temp file and renamed, loaded with ``weights_only=True``.
Nothing is pickled as code. A truncated or foreign file raises :class:`CheckpointError` naming
it; :func:`load_latest` then falls back to the newest older checkpoint that loads.

A released model (``collaface export``) is a folder with ``generator.safetensors`` and
``config.json``: enough to rebuild the generator without the training code's optimiser state;
``generator.onnx`` beside them is the generator's graph, whose weights (named
``WEIGHT_PREFIX`` + state-dict key) the onnx runtime reads from the safetensors file
(``collaface.onnx_export`` writes it). The shipped default model is such a folder,
``collaface/weights/`` (:func:`default_model_dir`); :func:`load_generator` builds the generator
of any of these (the one place that imports ``models``, inside the function).

When a run keeps a moving average of the generator (``train.ema``), its checkpoints hold it as
``generator_ema`` beside the raw ``generator``, and everything that releases or evaluates a
generator takes the average (:func:`released_weights`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from collaface import config as cfgmod

if TYPE_CHECKING:  # torch is imported where it is used: the photo path reads CheckpointError without it
    import torch

log = logging.getLogger(__name__)

FORMAT = "collaface-checkpoint"
VERSION = 1
CKPT_PATTERN = re.compile(r"^ckpt-(\d{8})\.pt$")
WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "config.json"
ONNX_FILE = "generator.onnx"
WEIGHT_PREFIX = "generator."  # name of a weight in the ONNX graph: WEIGHT_PREFIX + its state-dict key
ONNX_INPUTS = ("masked", "mask")
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "weights"


class CheckpointError(RuntimeError):
    """A checkpoint or exported model cannot be used; the message names the file and why."""


class ModelNotFoundError(FileNotFoundError):
    """No model was given and the shipped weights are not installed."""


def default_model_dir() -> Path:
    """The shipped weights (``collaface/weights/``: generator.safetensors + config.json).

    Raises ModelNotFoundError naming the expected files when they are not installed.
    """
    missing = [name for name in (WEIGHTS_FILE, CONFIG_FILE) if not (DEFAULT_MODEL_DIR / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"no --model given and the default weights are not installed: expected "
            f"{', '.join(str(DEFAULT_MODEL_DIR / name) for name in missing)}; pass --model with an "
            "exported model folder (collaface export), a training run folder or a ckpt-*.pt file")
    return DEFAULT_MODEL_DIR


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"ckpt-{step:08d}.pt"


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first (by step)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(state: dict[str, Any], folder: Path, step: int, keep: int) -> Path:
    """Write ``state`` atomically as ckpt-<step>.pt and delete all but the newest ``keep``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(folder, step)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    import torch

    payload = {"format": FORMAT, "version": VERSION, **state}
    with open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink()
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a resumable checkpoint with ``weights_only=True``; CheckpointError if unusable."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError/EOFError/UnpicklingError/... for bad files
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {err}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a collaface checkpoint (no '{FORMAT}' marker)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')} is not supported (need {VERSION})")
    missing = [k for k in ("config", "step", "generator") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state


def load_latest(folder: Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict] | None:
    """The newest checkpoint in ``folder`` that loads; unusable newer ones are reported and skipped."""
    for path in reversed(list_checkpoints(folder)):
        try:
            return path, load_checkpoint(path, map_location)
        except CheckpointError as err:
            log.warning("%s — falling back to the previous checkpoint", err)
    return None


def resolve_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    """(file, state) for a ckpt-*.pt file, or the newest loadable one of a run folder."""
    path = Path(path)
    if not path.is_dir():
        return path, load_checkpoint(path, map_location)
    found = load_latest(path / "checkpoints" if (path / "checkpoints").is_dir() else path, map_location)
    if found is None:
        raise CheckpointError(f"{path}: no loadable checkpoint found")
    return found


def released_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The generator weights a checkpoint releases: the moving average when the run kept one."""
    return state.get("generator_ema") or state["generator"]


def average_generators(folder: Path, count: int) -> dict[str, Any]:
    """State of the newest checkpoint in ``folder`` with its generator replaced by the mean over
    the newest ``count`` loadable checkpoints (float tensors, BatchNorm running statistics
    included; integer buffers from the newest) and ``averaged_steps`` listing their steps.
    Checkpoint averaging: a cheap Polyak average that trades some sharpness for PSNR."""
    if count < 1:
        raise CheckpointError(f"averaging needs at least 1 checkpoint, got {count}")
    newest, totals, steps = None, {}, []  # running float64 sums: one checkpoint in memory at a time
    for path in reversed(list_checkpoints(folder)):
        try:
            state = load_checkpoint(path)
        except CheckpointError as err:
            log.warning("%s — left out of the average", err)
            continue
        if newest is None:
            newest = state
        elif state["config"]["model"] != newest["config"]["model"]:
            raise CheckpointError(f"{path}: describes another model than {folder}'s newest checkpoint; "
                                  "cannot average them")
        for name, tensor in released_weights(state).items():
            if tensor.is_floating_point():
                totals[name] = totals.get(name, 0) + tensor.double()
        steps.append(state["step"])
        if len(steps) == count:
            break
    if len(steps) < count:
        raise CheckpointError(f"{folder}: {len(steps)} loadable checkpoints, cannot average the newest {count} "
                              "(keep more with train.keep_checkpoints)")
    averaged = {name: (totals[name] / count).to(tensor.dtype) if name in totals else tensor
                for name, tensor in released_weights(newest).items()}
    rest = {key: value for key, value in newest.items() if key != "generator_ema"}
    return {**rest, "generator": averaged, "averaged_steps": sorted(steps)}


def interpolate_generators(state: dict[str, Any], start: dict[str, torch.Tensor], alpha: float,
                           start_name: str) -> dict[str, Any]:
    """Network interpolation (ESRGAN): ``state`` with its released generator replaced by
    (1 - alpha) * ``start`` + alpha * its own weights, float tensors only (BatchNorm statistics
    included; integer buffers from ``state``). ``start``: the weights the run was fine-tuned from
    (e.g. the reconstruction-only generator); alpha 0 gives them, 1 the run's own."""
    import torch

    if not 0 <= alpha <= 1:
        raise CheckpointError(f"--alpha must be in [0, 1], got {alpha}")
    own = released_weights(state)
    if own.keys() != start.keys() or any(own[k].shape != start[k].shape for k in own):
        raise CheckpointError(f"{start_name}: its generator does not have the same layers as the exported one; "
                              "interpolation needs the model the run was fine-tuned from")
    mixed = {k: torch.lerp(start[k].double(), v.double(), alpha).to(v.dtype) if v.is_floating_point() else v
             for k, v in own.items()}
    rest = {key: value for key, value in state.items() if key != "generator_ema"}
    return {**rest, "generator": mixed, "interpolation": {"from": start_name, "alpha": alpha}}


def export_generator(state: dict[str, Any], out_dir: Path, half: bool = False) -> Path:
    """Write generator weights (safetensors) + config.json from a loaded checkpoint ``state``."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous()
        for k, v in released_weights(state).items()
    }
    tmp = out_dir / f".{WEIGHTS_FILE}.tmp{os.getpid()}"
    save_file(tensors, str(tmp), metadata={"format": "collaface-generator", "step": str(state["step"])})
    os.chmod(tmp, 0o644)
    os.replace(tmp, out_dir / WEIGHTS_FILE)
    meta = {"config": state["config"], "step": state["step"], "dtype": "float16" if half else "float32"}
    for key in ("averaged_steps", "interpolation"):
        if key in state:
            meta[key] = state[key]
    if "generator_ema" in state:
        meta["weights"] = "moving average"
    (out_dir / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    return out_dir


def read_exported_config(model_dir: Path) -> cfgmod.Config:
    """The config of an exported model folder (its config.json); CheckpointError naming the file
    if it is missing or invalid. Needs no torch."""
    config_file = Path(model_dir) / CONFIG_FILE
    if not config_file.is_file():
        raise CheckpointError(f"{config_file}: missing from the exported model folder")
    try:
        return cfgmod.from_dict(json.loads(config_file.read_text())["config"])
    except (json.JSONDecodeError, KeyError, TypeError, cfgmod.ConfigError) as err:
        raise CheckpointError(f"{config_file}: invalid model config ({err})") from None


def load_exported(model_dir: Path) -> tuple[cfgmod.Config, dict[str, torch.Tensor]]:
    """(config, float32 generator state dict) of an exported model folder; clear errors if broken."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing from the exported model folder")
    cfg = read_exported_config(model_dir)
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights}: unreadable weights file ({err})") from None
    return cfg, {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def float32_weights(path: Path) -> dict[str, np.ndarray]:
    """The floating-point tensors of a safetensors file as float32 numpy arrays, by name (no torch)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: unreadable weights file ({err})") from None
    return {key: np.ascontiguousarray(value, np.float32) for key, value in tensors.items() if value.dtype.kind == "f"}


def load_exported_state(model_dir: Path) -> dict[str, Any]:
    """An exported model folder as the state dict :func:`export_generator` takes (config, step,
    float32 generator weights, averaged_steps where recorded): to re-export it."""
    cfg, weights = load_exported(model_dir)
    meta = json.loads((Path(model_dir) / CONFIG_FILE).read_text())
    state = {"config": cfgmod.to_dict(cfg), "step": meta.get("step", 0), "generator": weights}
    if "averaged_steps" in meta:
        state["averaged_steps"] = meta["averaged_steps"]
    return state


def load_generator(path: Path, map_location: str | torch.device = "cpu"):
    """(config, generator in eval mode) from an exported model folder, a run folder or a
    ckpt-*.pt file — the one way inference and evaluation get a trained generator."""
    from collaface.models.build import build_generator

    path = Path(path)
    if (path / WEIGHTS_FILE).is_file() or (path / CONFIG_FILE).is_file():
        cfg, weights = load_exported(path)
    else:
        state = resolve_checkpoint(path, map_location)[1]
        cfg, weights = cfgmod.from_dict(state["config"]), released_weights(state)
    generator = build_generator(cfg)
    try:
        generator.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match the model its config describes ({err})") from None
    return cfg, generator.to(map_location).eval()
