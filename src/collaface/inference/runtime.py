"""Generator runtimes for completion: one interface over torch and onnxruntime, numpy in and out.

An :class:`Engine` maps the generator's inputs — ``masked`` (B, C, S, S) float32 image in
[-1, 1] with the hole filled, ``mask`` (B, 1, S, S) float32, 1 = hole — to
``{task: (B, C_t, S, S) float32}`` in (-1, 1). The numpy helpers below build those inputs
from a photo crop and decode the outputs (image, parsing labels, landmarks), so that the photo
path (``collaface.inference.engine``) never touches a tensor library itself and torch is imported
only by the torch engine.

Runtimes: ``torch`` (any model: exported folder, run folder, checkpoint; CPU or CUDA) and
``onnx`` (onnxruntime on the CPU, an exported folder with ``generator.onnx``: its graph, whose
weights are read from ``generator.safetensors`` beside it, or a standalone file; see
``collaface.onnx_export``). ``auto`` is onnx where it can run the model (an exported folder with
its graph, onnxruntime installed, no CUDA device asked for): it starts in a fraction of torch's
import time and gives the same completions; otherwise torch where it is installed, else onnx
(whose error then says what is missing). The light install completes photos without torch.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from collaface.config import Config
from collaface.device import resolve_device
from collaface.model_format import (
    ONNX_FILE,
    ONNX_INPUTS,
    WEIGHT_PREFIX,
    WEIGHTS_FILE,
    CheckpointError,
    float32_weights,
    load_generator,
    read_exported_config,
)

RUNTIMES = ("auto", "torch", "onnx")


class Engine(ABC):
    """A loaded generator. runtime: "torch" or "onnx"; cfg: its config; source: the model path it came from."""

    runtime: str
    cfg: Config
    source: Path

    @property
    def tasks(self) -> list[str]:
        return list(self.cfg.model.tasks)

    @property
    def size(self) -> int:
        return self.cfg.data.image_size

    @abstractmethod
    def __call__(self, masked: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """(B, 3, S, S) and (B, 1, S, S) float32 -> {task: (B, C_t, S, S) float32}."""


class TorchEngine(Engine):
    """The generator on torch: exported model folder, run folder or ckpt-*.pt; device auto, cpu,
    cuda or cuda:N; threads: torch's CPU threads during each call (None: torch's setting; the
    process's setting is restored after the call)."""

    runtime = "torch"

    def __init__(self, model: Path, device: str = "auto", threads: int | None = None):
        import torch

        self._torch = torch
        self.threads = threads
        self.device = resolve_device(device)
        self.source = Path(model)
        self.cfg, self.generator = load_generator(self.source, map_location=self.device)

    def __call__(self, masked: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():  # not inference_mode: SII's z search needs autograd in its forward
                out = self.generator(torch.from_numpy(masked).to(self.device), torch.from_numpy(mask).to(self.device))
        finally:
            torch.set_num_threads(previous)
        return {task: value.float().cpu().numpy() for task, value in out.items()}


class OnnxEngine(Engine):
    """The generator on onnxruntime's CPU provider, from an exported model folder: config.json
    and generator.onnx, whose weights come from generator.safetensors beside it (float16 or
    float32, run as float32, as the torch runtime loads them) or are inside it (a standalone
    export). threads: onnxruntime's intra-op threads (None: its default). A missing, corrupt or
    mismatched file is a CheckpointError naming it."""

    runtime = "onnx"

    def __init__(self, model: Path, threads: int | None = None):
        ort = _import_onnxruntime()
        self.source = Path(model)
        graph = self.source / ONNX_FILE
        if not graph.is_file():
            raise CheckpointError(
                f"{graph}: not found; the onnx runtime needs an exported model folder with {ONNX_FILE} "
                "(collaface export MODEL_OR_RUN --out DIR), or use --runtime torch")
        self.cfg = read_exported_config(self.source)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        weights = self.source / WEIGHTS_FILE
        if weights.is_file():
            arrays = float32_weights(weights)
            self._weights = [ort.OrtValue.ortvalue_from_numpy(a) for a in arrays.values()]  # alive with the session
            options.add_external_initializers([WEIGHT_PREFIX + key for key in arrays], self._weights)
        try:
            self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...) for bad files
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(
                f"{graph}: not a usable collaface generator graph"
                + (f" for the weights in {weights}" if weights.is_file() else "") + f" ({detail}); re-export it with "
                "collaface export MODEL_OR_RUN --out DIR") from None
        self._outputs = [output.name for output in self.session.get_outputs()]
        self._inputs = [i.name for i in self.session.get_inputs()]  # the exporter drops an input forward ignores
        if not set(self._inputs) <= set(ONNX_INPUTS) or self._outputs != self.tasks:
            raise CheckpointError(
                f"{graph}: inputs {self._inputs} and outputs {self._outputs} do not match {list(ONNX_INPUTS)} and the "
                f"tasks {self.tasks} of {self.source / 'config.json'}")

    def __call__(self, masked: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        given = {"masked": masked, "mask": mask}
        values = self.session.run(None, {name: given[name] for name in self._inputs})
        return dict(zip(self._outputs, values))


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise EngineError(f"the onnx runtime needs onnxruntime ({err}): pip install 'collaface[complete]'") from None
    onnxruntime.set_default_logger_severity(3)  # errors only: no graph-optimisation chatter on stderr
    return onnxruntime


class EngineError(ValueError):
    """A runtime or device that cannot be used here; the message says why and what to do."""


def torch_installed() -> bool:
    """Whether torch can be imported (checked without importing it)."""
    return importlib.util.find_spec("torch") is not None


def resolve_runtime(model: Path, runtime: str = "auto", device: str = "auto") -> str:
    """``runtime`` with ``auto`` decided for ``model`` and ``device`` (module docstring)."""
    if runtime not in RUNTIMES:
        raise EngineError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime != "auto":
        return runtime
    onnx_runs_it = ((Path(model) / ONNX_FILE).is_file() and importlib.util.find_spec("onnxruntime") is not None
                    and not device.startswith("cuda"))
    return "onnx" if onnx_runs_it or not torch_installed() else "torch"


def load_engine(model: Path, runtime: str = "auto", device: str = "auto", threads: int | None = None) -> Engine:
    """The generator of ``model`` on ``runtime`` (auto: :func:`resolve_runtime`) with ``threads``
    CPU threads (None: the runtime's default; one image at a time runs best on 1 on a busy
    machine). device: auto, cpu, cuda or cuda:N (CUDA needs the torch runtime)."""
    runtime = resolve_runtime(model, runtime, device)
    if runtime == "onnx":
        if device.startswith("cuda"):
            raise EngineError(f"device {device!r}: the onnx runtime runs on the CPU here; use --runtime torch for CUDA")
        return OnnxEngine(model, threads)
    if not torch_installed():
        raise EngineError("the torch runtime needs torch: pip install torch==2.13.0 'collaface[train]'; "
                          "or use --runtime onnx")
    return TorchEngine(model, device, threads)


# --------------------------------------------------------------------------- inputs and outputs


def generator_input(crop: np.ndarray, hole: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 3) uint8 crop and (S, S) bool hole -> masked (1, 3, S, S) float32 in [-1, 1] with
    the hole filled by uniform noise in [-1, 1) from ``rng`` (the paper's z), and mask
    (1, 1, S, S) float32, 1 = hole."""
    image = crop.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1
    noise = rng.random(image.shape, dtype=np.float32) * 2 - 1
    masked = np.where(hole[None], noise, image)
    return masked[None], hole[None, None].astype(np.float32)


def to_uint8_image(image: np.ndarray) -> np.ndarray:
    """(3, S, S) float in [-1, 1] -> (S, S, 3) uint8, rounded to nearest (half to even) and clipped."""
    return np.clip(np.rint((image.astype(np.float32) + 1) * 127.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def parsing_labels(scores: np.ndarray) -> np.ndarray:
    """(C, S, S) class scores -> (S, S) uint8 labels by argmax (first of equal scores)."""
    return scores.argmax(axis=0).astype(np.uint8)


def _log_parabola_vertex(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Offset from ``mid`` of the maximum of the parabola through log values at -1, 0, +1 (0
    for a flat or convex window)."""
    log_l, log_m, log_r = (np.log(np.maximum(v, 1e-6)) for v in (left, mid, right))
    curvature = log_l - 2 * log_m + log_r
    slope = log_l - log_r
    return np.where(curvature < 0, slope / (2 * np.where(curvature < 0, curvature, -1)), 0)


def heatmap_peaks(heatmaps: np.ndarray) -> np.ndarray:
    """(5, H, W) heatmaps in [-1, 1] -> (5, 2) float32 sub-pixel x, y: the numpy twin of
    ``collaface.data.targets.heatmaps_to_landmarks`` (argmax, log-parabola fit on the 3x3
    window around it, kept within half a pixel of the argmax)."""
    count, height, width = heatmaps.shape
    peak = heatmaps.reshape(count, -1).argmax(axis=1)
    peak_y, peak_x = peak // width, peak % width
    centre_x = np.clip(peak_x, 1, max(width - 2, 1))
    centre_y = np.clip(peak_y, 1, max(height - 2, 1))
    rows = np.clip(centre_y[:, None] + np.arange(-1, 2), 0, height - 1)
    cols = np.clip(centre_x[:, None] + np.arange(-1, 2), 0, width - 1)
    window = (heatmaps[np.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :]].astype(np.float32) + 1) / 2
    col_sums, row_sums = window.sum(axis=1), window.sum(axis=2)
    x = centre_x + _log_parabola_vertex(col_sums[:, 0], col_sums[:, 1], col_sums[:, 2])
    y = centre_y + _log_parabola_vertex(row_sums[:, 0], row_sums[:, 1], row_sums[:, 2])
    x = np.clip(x, peak_x - 0.5, peak_x + 0.5)
    y = np.clip(y, peak_y - 0.5, peak_y + 0.5)
    return np.stack([x, y], axis=-1).astype(np.float32)
