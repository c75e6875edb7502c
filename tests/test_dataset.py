"""FaceDataset: sample contract, determinism, bad files skipped, evaluation masks fixed per index."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
import torch

from collaface.config import load_config
from collaface.data import io, labels
from collaface.data.dataset import build_dataset, build_loader
from collaface.data.sources.prepared import MANIFEST_COLUMNS


def make_prepared(root, n=6, size=64, broken=()):
    """A tiny prepared folder: synthetic faces with a parsing blob on each landmark."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "parsing").mkdir()
    rows = []
    points = np.array([[20, 24], [44, 24], [32, 36], [24, 48], [40, 48]], np.float32) * size / 64
    # Mouth corners get the brow labels: a flip must swap them like the left/right points.
    blob_labels = ["left_eye", "right_eye", "nose", "left_brow", "right_brow"]
    for i in range(n):
        image = rng.integers(60, 200, (size, size, 3), dtype=np.uint8)
        parsing = np.full((size, size), labels.LABEL_INDEX["skin"], np.uint8)
        for (x, y), name in zip(points.astype(int), blob_labels):
            parsing[y - 2:y + 3, x - 2:x + 3] = labels.LABEL_INDEX[name]
        io.save_rgb(root / "images" / f"f{i}.png", image)
        io.save_label_map(root / "parsing" / f"f{i}.png", parsing)
        row = {"file": f"images/f{i}.png", "source": f"f{i}.jpg", "identity": str(i % 3),
               "split": "train", "x0": 0, "y0": 0, "side": size}
        row.update(dict(zip(MANIFEST_COLUMNS[7:], points.reshape(-1))))
        rows.append(row)
    for i in broken:
        (root / "images" / f"f{i}.png").write_bytes(b"garbage")
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def data_cfg(root, *overrides):
    return load_config("small", [f"data.root={root}", "data.image_size=32", *overrides]).data


def test_sample_contract(tmp_path):
    make_prepared(tmp_path)
    ds = build_dataset(data_cfg(tmp_path), "train", require=("s", "d"))
    sample = ds[0]
    assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
    assert sample["image"].min() >= -1 and sample["image"].max() <= 1
    assert sample["mask"].shape == (1, 32, 32) and set(sample["mask"].unique().tolist()) <= {0.0, 1.0}
    known = sample["mask"][0] == 0
    assert torch.equal(sample["masked"][:, known], sample["image"][:, known])
    assert sample["parsing"].shape == (32, 32) and sample["parsing"].dtype == torch.int64
    assert sample["landmarks"].shape == (5, 2) and sample["heatmaps"].shape == (5, 32, 32)
    assert sample["has_parsing"] and sample["has_landmarks"] and sample["identity"] == "0"


def test_deterministic_per_seed_epoch_index(tmp_path):
    make_prepared(tmp_path)
    ds = build_dataset(data_cfg(tmp_path), "train")
    a, b = ds[2], ds[2]
    assert all(torch.equal(a[k], b[k]) for k in ("image", "mask", "masked", "landmarks"))
    ds.set_epoch(1)
    c = ds[2]
    assert not torch.equal(a["masked"], c["masked"])


def test_augmented_landmarks_stay_on_their_parts(tmp_path):
    make_prepared(tmp_path, size=64)
    cfg = data_cfg(tmp_path, "data.image_size=64", "data.augment.rotation=20", "data.augment.flip=0.5")
    ds = build_dataset(cfg, "train")
    expected = ["left_eye", "right_eye", "nose", "left_brow", "right_brow"]
    for epoch in range(6):
        ds.set_epoch(epoch)
        sample = ds[epoch % len(ds)]
        for (x, y), name in zip(sample["landmarks"].numpy(), expected):
            x, y = round(x), round(y)
            window = sample["parsing"][max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
            assert (window == labels.LABEL_INDEX[name]).any(), (epoch, name)


def test_bad_files_are_reported_and_skipped(tmp_path, caplog):
    make_prepared(tmp_path, broken=(1, 2))
    ds = build_dataset(data_cfg(tmp_path), "train")
    with caplog.at_level(logging.WARNING):
        sample = ds[1]
    assert sample["file"] == "images/f3.png"
    assert set(ds.bad_files) == {"images/f1.png", "images/f2.png"}
    assert "images/f1.png" in caplog.text and "not a recognised image" in caplog.text
    loader = build_loader(ds, batch_size=3, shuffle=True, num_workers=0, seed=0)
    assert sum(len(batch["file"]) for batch in loader) == len(ds)


def test_all_bad_is_a_clear_error(tmp_path):
    make_prepared(tmp_path, n=3, broken=(0, 1, 2))
    ds = build_dataset(data_cfg(tmp_path), "train")
    with pytest.raises(RuntimeError, match="consecutive unusable samples"):
        ds[0]


@pytest.mark.parametrize("kind", ["O1", "O6", "block", "pattern", "noise", "freeform"])
def test_eval_masks_fixed_per_index(tmp_path, kind):
    make_prepared(tmp_path)
    first = build_dataset(data_cfg(tmp_path), None, mask=kind, augment=False, seed=3)
    second = build_dataset(data_cfg(tmp_path), None, mask=kind, augment=False, seed=3)
    second.set_epoch(5)  # evaluation masks ignore the epoch
    for index in range(3):
        a, b = first[index], second[index]
        assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["masked"], b["masked"])
        assert a["mask"].sum() > 0


def test_loader_batches(tmp_path):
    make_prepared(tmp_path)
    ds = build_dataset(data_cfg(tmp_path), "train")
    batch = next(iter(build_loader(ds, batch_size=4, shuffle=True, num_workers=0, seed=0)))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["heatmaps"].shape == (4, 5, 32, 32)
    assert len(batch["file"]) == 4


def test_no_data_root_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="--data"):
        build_dataset(load_config("small").data, "train")


def test_several_roots_read_as_one(tmp_path):
    make_prepared(tmp_path / "a", n=3)
    make_prepared(tmp_path / "b", n=4)
    ds = build_dataset(data_cfg(f"{tmp_path / 'a'}:{tmp_path / 'b'}"), "train")
    assert len(ds) == 7 and len(set(ds.source.files)) == 7
    assert ds[5]["file"] == str(tmp_path / "b" / "images" / "f2.png")
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        build_dataset(data_cfg(f"{tmp_path / 'a'}:{tmp_path / 'missing'}"), "train")
