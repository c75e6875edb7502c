"""The ONNX generator: export (graph beside the safetensors, and standalone), the onnxruntime
engine, its errors, and parity with torch on the shipped model."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch
from conftest import requires_mediapipe
from test_complete_cli import run, write_mask, write_photo
from test_inference import make_tiny_model

from collaface import cli, config, model_format
from collaface.data import io
from collaface.inference.engine import FaceCompleter
from collaface.inference.runtime import OnnxEngine, TorchEngine, generator_input, load_engine
from collaface.model_format import DEFAULT_MODEL_DIR, ONNX_FILE, CheckpointError
from collaface.models.build import build_generator
from collaface.onnx_export import export_graph

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or
                                importlib.util.find_spec("onnx") is None,
                                reason="onnxruntime and onnx not installed (pip install 'collaface[all]')")


def model_with_graph(folder, overrides: tuple[str, ...] = (), half: bool = False):
    """An exported random small generator (safetensors + config.json + generator.onnx)."""
    cfg = config.load_config("small", ["data.image_size=64", *overrides])
    state = {"config": config.to_dict(cfg), "step": 0, "generator": build_generator(cfg).state_dict()}
    folder = model_format.export_generator(state, folder, half=half)
    export_graph(build_generator(cfg), cfg, folder)
    return folder


def random_inputs(batch: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masked = rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    return masked, (rng.random((batch, 1, size, size)) < 0.3).astype(np.float32)


@pytest.mark.parametrize("overrides", [(), ("model.mask_channel=false",), ("model.upsample=resize",),
                                       ("model.tasks=[i]", "loss.concentrated=true")],
                         ids=["4-channel", "3-channel", "resize-upsampling", "image-only"])
@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16-weights"])
def test_graph_beside_the_safetensors_matches_torch(tmp_path, overrides, half):
    folder = model_with_graph(tmp_path, overrides, half)
    assert (folder / ONNX_FILE).stat().st_size < 100_000  # the graph only: the weights stay in the safetensors
    onnx_engine = OnnxEngine(folder, threads=1)
    torch_engine = TorchEngine(folder, device="cpu")
    assert onnx_engine.tasks == torch_engine.tasks
    for batch in (1, 3):  # dynamic batch
        inputs = random_inputs(batch)
        got, want = onnx_engine(*inputs), torch_engine(*inputs)
        assert got.keys() == want.keys()
        for task in want:
            assert got[task].shape == want[task].shape
            assert np.abs(got[task] - want[task]).max() < 1e-4, task


def test_export_onnx_writes_a_standalone_file_from_a_model_folder_or_run(tmp_path):
    model = make_tiny_model(tmp_path / "model")
    assert cli.main(["export", str(model), "--onnx", str(tmp_path / "standalone")]) == 0
    files = sorted(p.name for p in (tmp_path / "standalone").iterdir())
    assert files == ["config.json", ONNX_FILE]
    weights = (tmp_path / "standalone" / ONNX_FILE).stat().st_size
    assert weights > 0.9 * 4 * sum(v.numel() for v in model_format.load_exported(model)[1].values() if v.dim() > 1)
    inputs = random_inputs(2)
    got, want = OnnxEngine(tmp_path / "standalone")(*inputs), TorchEngine(model, "cpu")(*inputs)
    for task in want:
        assert np.abs(got[task] - want[task]).max() < 1e-4


def test_export_out_writes_weights_config_and_graph(tmp_path):
    model = make_tiny_model(tmp_path / "model")
    assert cli.main(["export", str(model), "--out", str(tmp_path / "again"), "--half"]) == 0
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["config.json", ONNX_FILE, "generator.safetensors"]
    assert load_engine(tmp_path / "again", runtime="onnx").tasks == ["i", "s", "d"]
    assert cli.main(["export", str(model), "--out", str(tmp_path / "x"), "--onnx", str(tmp_path / "x")]) == 1


def test_missing_or_corrupt_onnx_files_are_named(tmp_path):
    folder = make_tiny_model(tmp_path / "no_graph")  # safetensors + config.json only
    with pytest.raises(CheckpointError, match=rf"{folder / ONNX_FILE}: not found.*collaface export"):
        OnnxEngine(folder)
    folder = model_with_graph(tmp_path / "corrupt")
    graph = (folder / ONNX_FILE).read_bytes()
    (folder / ONNX_FILE).write_bytes(graph[: len(graph) // 2])
    with pytest.raises(CheckpointError, match=rf"{folder / ONNX_FILE}: not a usable collaface generator graph"):
        OnnxEngine(folder)
    folder = model_with_graph(tmp_path / "bad_weights")
    (folder / "generator.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=rf"{folder / 'generator.safetensors'}: unreadable"):
        OnnxEngine(folder)
    other = model_with_graph(tmp_path / "other", ("model.ngf=16",))  # weights of another architecture
    os.replace(other / "generator.safetensors", tmp_path / "corrupt" / "generator.safetensors")
    (tmp_path / "corrupt" / ONNX_FILE).write_bytes(graph)
    with pytest.raises(CheckpointError, match="for the weights in"):
        OnnxEngine(tmp_path / "corrupt")


def test_a_run_folder_needs_an_export_for_the_onnx_runtime(tmp_path, capsys):
    write_photo(tmp_path / "face.png")
    write_mask(tmp_path / "mask.png")
    folder = make_tiny_model(tmp_path / "model")
    assert run(tmp_path / "face.png", "--mask", tmp_path / "mask.png", "--model", folder, "--no-detect",
               "--runtime", "onnx", "--out", tmp_path / "o.png") == 2
    assert f"{folder / ONNX_FILE}: not found" in capsys.readouterr().err
    with pytest.raises(Exception, match="runs on the CPU"):
        load_engine(folder, runtime="onnx", device="cuda")


def test_bad_input_keeps_its_exit_codes_on_the_onnx_runtime(tmp_path, capsys):
    folder = model_with_graph(tmp_path / "model", ("model.tasks=[i,s,d]",))
    image = write_photo(tmp_path / "face.png")
    hole = write_mask(tmp_path / "mask.png")
    (tmp_path / "empty.png").write_bytes(b"")
    assert run(tmp_path / "face.png", "--mask", tmp_path / "empty.png", "--model", folder, "--no-detect",
               "--runtime", "onnx") == 2
    assert "empty.png" in capsys.readouterr().err
    assert run(tmp_path / "face.png", "--mask", tmp_path / "mask.png", "--model", folder, "--no-detect",
               "--runtime", "onnx", "--out", tmp_path / "o.png") == 0
    result = io.load_rgb(tmp_path / "o.png")
    assert np.array_equal(result[~hole], image[~hole]) and (result[hole] != image[hole]).any()


# --------------------------------------------------------------------------- the shipped model


def shared_crops(shared_faces, count: int) -> list[np.ndarray]:
    names = sorted((shared_faces / "celeba_crops" / "images").iterdir())[:count]
    return [io.load_rgb(path) for path in names]


def test_shipped_model_outputs_agree_between_runtimes(shared_faces):
    onnx_engine = load_engine(DEFAULT_MODEL_DIR, runtime="onnx", threads=1)
    torch_engine = load_engine(DEFAULT_MODEL_DIR, runtime="torch", device="cpu")
    size = onnx_engine.size
    worst = 0.0
    for i, photo in enumerate(shared_crops(shared_faces, 8)):
        crop = np.ascontiguousarray(np.asarray(torch.nn.functional.interpolate(
            torch.from_numpy(photo).permute(2, 0, 1)[None].float(), size=(size, size), mode="area")[0]
            .permute(1, 2, 0).round().byte()))
        hole = np.zeros((size, size), bool)
        hole[size // 3: size // 2, size // 5: 4 * size // 5] = True
        inputs = generator_input(crop, hole, np.random.default_rng(i))
        got, want = onnx_engine(*inputs), torch_engine(*inputs)
        worst = max(worst, *(float(np.abs(got[t] - want[t]).max()) for t in want))
    assert worst <= 1e-3


@pytest.mark.parametrize("detect", [False, pytest.param(True, marks=requires_mediapipe)], ids=["crop", "detected"])
def test_shipped_model_completions_differ_by_at_most_one_grey_level_almost_everywhere(shared_faces, detect):
    with FaceCompleter(runtime="onnx", threads=1) as on_onnx, FaceCompleter(runtime="torch", device="cpu") as on_torch:
        for photo in shared_crops(shared_faces, 4):
            if detect:
                a = on_onnx.complete(photo, region="eyes")
                b = on_torch.complete(photo, region="eyes")
            else:
                hole = np.zeros(photo.shape[:2], bool)
                hole[photo.shape[0] // 3: photo.shape[0] // 2, 40:160] = True
                a = on_onnx.complete(photo, hole=hole, no_detect=True)
                b = on_torch.complete(photo, hole=hole, no_detect=True)
            assert np.array_equal(a.hole, b.hole)
            assert np.array_equal(a.image[~a.hole], photo[~a.hole]) and np.array_equal(b.image[~b.hole], photo[~b.hole])
            # Two model passes (the second in the crop placed from the first's landmarks) and the Poisson
            # solve may round a few pixels two levels apart.
            difference = np.abs(a.image.astype(int) - b.image.astype(int))
            assert difference.max() <= 2 and (difference > 1).mean() < 1e-4
