"""collaface.engine: numpy inputs and outputs of the generator, the same as the training code's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collaface.data.targets import heatmaps_to_landmarks, landmarks_to_heatmaps, onehot_to_parsing
from collaface.data.transforms import to_tensor_image
from collaface.data.transforms import to_uint8_image as torch_to_uint8
from collaface.inference.runtime import (
    EngineError,
    generator_input,
    heatmap_peaks,
    load_engine,
    parsing_labels,
    resolve_runtime,
    to_uint8_image,
)
from collaface.model_format import ONNX_FILE


def test_heatmap_peaks_match_the_training_decoder():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 63, (5, 2)).astype(np.float32)
    points[0] = (0.2, 63.0)  # at the border
    noise = torch.from_numpy(rng.normal(0, 0.02, (5, 64, 64)).astype(np.float32))
    maps = landmarks_to_heatmaps(points, 64, 2.0) + noise
    maps[4] = -1  # a flat map
    expected = heatmaps_to_landmarks(maps).numpy()
    assert np.allclose(heatmap_peaks(maps.numpy()), expected, atol=1e-4)
    assert np.abs(heatmap_peaks(maps.numpy())[:4] - points[:4]).max() < 0.3


def test_parsing_and_image_decoding_match_the_training_code():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(11, 16, 16)).astype(np.float32)
    assert np.array_equal(parsing_labels(scores), onehot_to_parsing(torch.from_numpy(scores)).numpy())
    image = rng.uniform(-1.2, 1.2, (3, 16, 16)).astype(np.float32)
    image[0, 0, :4] = [-1 + 0.5 / 127.5, -1 + 1.5 / 127.5, 1.0, -1.0]  # halves round to even
    assert np.array_equal(to_uint8_image(image), torch_to_uint8(torch.from_numpy(image)))


def test_generator_input_fills_only_the_hole_with_noise():
    rng = np.random.default_rng(2)
    crop = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    hole = np.zeros((32, 32), bool)
    hole[8:20, 4:30] = True
    masked, mask = generator_input(crop, hole, np.random.default_rng(5))
    assert masked.shape == (1, 3, 32, 32) and mask.shape == (1, 1, 32, 32) and masked.dtype == np.float32
    known = to_tensor_image(crop).numpy()
    assert np.array_equal(masked[0][:, ~hole], known[:, ~hole])
    assert np.array_equal(mask[0, 0] > 0, hole)
    noise = masked[0][:, hole]
    assert noise.min() >= -1 and noise.max() < 1 and abs(noise.mean()) < 0.1
    again, _ = generator_input(crop, hole, np.random.default_rng(5))
    assert np.array_equal(masked, again)  # same seed, same noise


def test_an_unknown_runtime_is_refused(tmp_path):
    with pytest.raises(EngineError, match="runtime must be one of"):
        load_engine(tmp_path, runtime="tensorflow")


def test_auto_runs_an_exported_graph_on_onnx_and_the_rest_on_torch(tmp_path):
    from test_inference import make_tiny_model

    folder = make_tiny_model(tmp_path / "model")
    (folder / ONNX_FILE).unlink(missing_ok=True)
    assert resolve_runtime(folder) == "torch"
    (folder / ONNX_FILE).touch()  # its presence decides; loading it checks it
    assert resolve_runtime(folder) == "onnx"
    assert resolve_runtime(folder, device="cuda") == "torch"
    assert resolve_runtime(folder, runtime="torch") == "torch"


def test_the_torch_engine_keeps_the_process_thread_count(tmp_path):
    from test_inference import make_tiny_model

    engine = load_engine(make_tiny_model(tmp_path), runtime="torch", device="cpu", threads=1)
    before = torch.get_num_threads()
    inputs = generator_input(np.zeros((64, 64, 3), np.uint8), np.ones((64, 64), bool), np.random.default_rng(0))
    outputs = engine(*inputs)
    assert torch.get_num_threads() == before
    assert outputs["i"].shape == (1, 3, 64, 64) and outputs["i"].dtype == np.float32
