"""The generator as ONNX, for the torch-free runtime (``collaface.inference.runtime.OnnxEngine``).

Two forms, both traced from the generator's own ``forward`` (whatever its inputs' channels: the
dummy batch comes from the model's config), opset ``OPSET``, dynamic batch, float32 compute,
inputs ``masked`` (B, 3, S, S) and ``mask`` (B, 1, S, S), one output per task (``i``, ``s``,
``d``, in that order):

- **graph** (:func:`export_graph`, written by ``collaface export --out DIR`` beside
  ``generator.safetensors``): the network without its weights (tens of KB). Every initializer is
  marked external and named ``generator.<state-dict key>``; the runtime supplies the values from
  the safetensors file, float16 or float32, as float32. One copy of the weights ships, and new
  weights with the same architecture need no new graph.
- **standalone** (:func:`export_standalone`, ``collaface export --onnx DIR``): one self-contained
  ``generator.onnx`` with float32 weights (BatchNorm folded into the convolutions), for other
  ONNX tools, plus the model's ``config.json``.

Needs torch and the ``onnx`` package (the ``train`` extra); the legacy TorchScript exporter
(``dynamo=False``) is used: it runs offline and keeps the parameters' names.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from collaface import config as cfgmod
from collaface.data.io import atomic_path, write_text_atomic
from collaface.model_format import CONFIG_FILE, ONNX_FILE, ONNX_INPUTS, WEIGHT_PREFIX, WEIGHTS_FILE, CheckpointError
from collaface.models.build import build_generator, example_batch

OPSET = 17


class _TaskOutputs(nn.Module):
    """The generator with its ``{task: output}`` dict returned as a tuple in task order."""

    def __init__(self, generator: nn.Module, tasks: list[str]):
        super().__init__()
        self.generator = generator
        self.tasks = tasks

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.generator(masked, mask)
        return tuple(outputs[task] for task in self.tasks)


def _onnx_bytes(generator: nn.Module, cfg: cfgmod.Config, standalone: bool) -> bytes:
    """Trace ``generator`` (eval mode) to ONNX; standalone folds BatchNorm and keeps the weights."""
    tasks = list(cfg.model.tasks)
    batch = example_batch(cfg, 1, torch.Generator().manual_seed(0))
    wrapper = _TaskOutputs(generator.eval(), tasks)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the tracer warns about the forward's shape asserts
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (batch["masked"], batch["mask"]), buffer, dynamo=False, opset_version=OPSET,
            input_names=list(ONNX_INPUTS), output_names=tasks,
            dynamic_axes={name: {0: "batch"} for name in (*ONNX_INPUTS, *tasks)},
            # the graph keeps BatchNorm and the parameters' own names, so the weights can stay outside
            training=torch.onnx.TrainingMode.EVAL if standalone else torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=standalone)
    return buffer.getvalue()


def _import_onnx():
    try:
        import onnx
    except ImportError as err:
        raise CheckpointError(f"ONNX export needs the onnx package ({err}): pip install 'collaface[train]'") from None
    return onnx


def _write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)


def export_graph(generator: nn.Module, cfg: cfgmod.Config, model_dir: Path) -> Path:
    """Write ``model_dir/generator.onnx``: the graph of ``generator`` whose weights are read at
    run time from ``model_dir/generator.safetensors`` (every floating-point tensor of the state
    dict, by name). -> the file. CheckpointError if the graph does not use exactly those tensors."""
    onnx = _import_onnx()
    model = onnx.load_from_string(_onnx_bytes(generator, cfg, standalone=False))
    floats = {WEIGHT_PREFIX + key for key, value in generator.state_dict().items() if value.is_floating_point()}
    used = {tensor.name for tensor in model.graph.initializer}
    if used != floats:
        raise CheckpointError(
            f"the generator's graph does not use exactly its floating-point weights (unused: "
            f"{sorted(floats - used)[:5]}, not weights: {sorted(used - floats)[:5]}); export it with --onnx instead")
    for tensor in model.graph.initializer:
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        del tensor.external_data[:]
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", WEIGHTS_FILE
    model.doc_string = (f"collaface generator graph; weights: the float tensors of {WEIGHTS_FILE} as float32, "
                        f"named {WEIGHT_PREFIX}<key>")
    path = Path(model_dir) / ONNX_FILE
    _write(path, model.SerializeToString())
    return path


def export_standalone(state: dict, out_dir: Path) -> Path:
    """Write ``out_dir/generator.onnx`` (float32 weights inside) and ``out_dir/config.json`` for
    the generator of a loaded checkpoint ``state``. -> out_dir."""
    _import_onnx()
    cfg = cfgmod.from_dict(state["config"])
    generator = build_generator(cfg)
    generator.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["generator"].items()})
    out_dir = Path(out_dir)
    _write(out_dir / ONNX_FILE, _onnx_bytes(generator, cfg, standalone=True))
    meta = {"config": state["config"], "step": state["step"], "dtype": "float32", "format": "onnx"}
    write_text_atomic(out_dir / CONFIG_FILE, json.dumps(meta, indent=2))
    return out_dir
