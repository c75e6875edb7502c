"""Loaders on the official CelebA and CelebAMask-HQ layouts, built in temp folders from shared files."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collaface.data import io, labels
from collaface.data.sources import open_source
from collaface.data.sources.base import DatasetLayoutError
from collaface.data.sources.celebamask_hq import landmarks_from_parsing, merge_part_masks

LANDMARK_COLUMNS = ("lex", "ley", "rex", "rey", "nx", "ny", "lmx", "lmy", "rmx", "rmy")


def make_celeba_layout(shared: Path, root: Path, n_images: int = 12, anno_subdir: bool = False) -> list[dict]:
    """A CelebA release layout: img_align_celeba/, the real partition/identity files, and
    list_landmarks_align_celeba.txt in the release's format (count line, header, CRLF)."""
    rows = list(csv.DictReader((shared / "celeba_aligned" / "landmarks.csv").read_text().splitlines()))
    anno = root / "Anno" if anno_subdir else root
    anno.mkdir(parents=True, exist_ok=True)
    (root / "img_align_celeba").mkdir(parents=True)
    with open(anno / "list_landmarks_align_celeba.txt", "w", newline="\r\n") as handle:
        handle.write(f"{len(rows)}\n")
        handle.write("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
                     "rightmouth_x rightmouth_y \n")
        for row in rows:
            handle.write(row["file"] + "".join(f"{int(row[c]):>5d}" for c in LANDMARK_COLUMNS) + "\n")
    picked = [r for r in rows if r["partition"] == "train"][: n_images // 2] + \
             [r for r in rows if r["partition"] == "test"][: n_images - n_images // 2]
    for row in picked:
        shutil.copy(shared / "celeba_aligned" / "images" / row["file"], root / "img_align_celeba" / row["file"])
    for name in ("identity_CelebA.txt", "list_eval_partition.txt"):
        os.symlink(shared / "celeba_annotations" / name, anno / name)
    return picked


@pytest.mark.parametrize("anno_subdir", [False, True])
def test_celeba_layout_loads_splits_landmarks_identity(shared_faces, tmp_path, anno_subdir):
    picked = make_celeba_layout(shared_faces, tmp_path, anno_subdir=anno_subdir)
    source = open_source("celeba", tmp_path, None, crop_size=128, annotate_missing=False)
    assert len(source) == len(picked)
    test = open_source("celeba", tmp_path, "test", crop_size=128, annotate_missing=False)
    assert sorted(test.files) == sorted(r["file"] for r in picked if r["partition"] == "test")
    identity_file = shared_faces / "celeba_annotations" / "identity_CelebA.txt"
    identities = dict(line.split()[:2] for line in identity_file.read_text().splitlines())

    for index in range(len(source)):
        sample = source.load(index)
        name = Path(sample.file).name
        assert sample.image.shape == (128, 128, 3) and sample.parsing is None
        assert sample.identity == identities[name]
        lm = sample.landmarks
        # Crop rule: all five points inside, eyes above the nose above the mouth, image-left first.
        assert ((lm > 10) & (lm < 118)).all()
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
        assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])


def test_celeba_landmarks_follow_the_crop(shared_faces, tmp_path):
    picked = make_celeba_layout(shared_faces, tmp_path, n_images=2)
    source = open_source("celeba", tmp_path, None, crop_size=64, annotate_missing=False)
    sample = source.load(0)
    row = next(r for r in picked if r["file"] == Path(sample.file).name)
    original = np.array([float(row[c]) for c in LANDMARK_COLUMNS]).reshape(5, 2)
    photo = io.load_rgb(tmp_path / "img_align_celeba" / row["file"]).astype(float)
    # The crop pixel at each landmark shows the photo's pixel at the original landmark.
    for (x, y), (ox, oy) in zip(sample.landmarks, original):
        assert np.abs(sample.image[round(y), round(x)] - photo[int(oy), int(ox)]).max() < 80


def test_celeba_missing_parts_are_clear_errors(shared_faces, tmp_path):
    with pytest.raises(DatasetLayoutError, match="img_align_celeba"):
        open_source("celeba", tmp_path)
    make_celeba_layout(shared_faces, tmp_path, n_images=2)
    (tmp_path / "list_eval_partition.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="list_eval_partition.txt"):
        open_source("celeba", tmp_path, "train")
    bad = tmp_path / "list_landmarks_align_celeba.txt"
    bad.write_text("1\nheader\n000001.jpg 1 2 3\n")
    with pytest.raises(DatasetLayoutError, match=r"list_landmarks_align_celeba.txt:3: expected a file name and 10"):
        open_source("celeba", tmp_path)


def make_celebamask_hq_layout(shared: Path, root: Path, ks: tuple[int, ...] = (0, 1)) -> dict[int, np.ndarray]:
    """Split the shared combined label maps into the release's per-part binary PNGs."""
    (root / "CelebA-HQ-img").mkdir(parents=True)
    merged = {}
    lines = ["idx         orig_idx    orig_file"]
    for k in ks:
        shutil.copy(shared / "celebamaskhq_samples" / "images" / f"{k}.jpg", root / "CelebA-HQ-img" / f"{k}.jpg")
        label_map = io.load_label_map(shared / "celebamaskhq_samples" / "masks" / f"{k}.png")
        merged[k] = label_map
        folder = root / "CelebAMask-HQ-mask-anno" / str(k // 2000)
        folder.mkdir(parents=True, exist_ok=True)
        for value, part in enumerate(labels.CELEBAMASK_HQ_PARTS, start=1):
            if (label_map == value).any():
                Image.fromarray(((label_map == value) * 255).astype(np.uint8)).save(folder / f"{k:05d}_{part}.png")
        lines.append(f"{k:<12d}{1000 + k:<12d}{1000 + k + 1:06d}.jpg")
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(lines) + "\n")
    return merged


def test_celebamask_hq_merge_matches_combined_map(shared_faces, tmp_path):
    merged = make_celebamask_hq_layout(shared_faces, tmp_path)
    source = open_source("celebamask_hq", tmp_path, None, crop_size=512)
    folder = tmp_path / "CelebAMask-HQ-mask-anno" / "0"
    for k, expected in merged.items():
        assert np.array_equal(merge_part_masks(source.part_paths(k)), expected)
    assert len(source) == 2 and source.files == ["CelebA-HQ-img/0.jpg", "CelebA-HQ-img/1.jpg"]
    assert len(list(folder.glob("00000_*.png"))) >= 8


def test_celebamask_hq_sides_converted_and_landmarks_derived(shared_faces, tmp_path):
    merged = make_celebamask_hq_layout(shared_faces, tmp_path, ks=(0,))
    # CelebAMask-HQ l_eye (value 4) is the person's left = image right: it becomes our right_eye.
    ys, xs = np.nonzero(merged[0] == 4)
    ours = labels.from_celebamask_hq(merged[0])
    assert (ours[ys, xs] == labels.LABEL_INDEX["right_eye"]).all()
    assert xs.mean() > merged[0].shape[1] / 2
    sample = open_source("celebamask_hq", tmp_path, None, crop_size=128).load(0)
    assert sample.image.shape == (128, 128, 3) and sample.parsing.shape == (128, 128)
    lm = sample.landmarks
    assert lm is not None and lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0] and lm[0, 1] < lm[2, 1] < lm[3, 1]
    for point, name in zip(lm[:2], ("left_eye", "right_eye")):  # eye landmarks sit on their eye label
        x, y = np.round(point).astype(int)
        window = sample.parsing[y - 2:y + 3, x - 2:x + 3]
        assert (window == labels.LABEL_INDEX[name]).any()


def test_landmarks_from_parsing_missing_eye():
    parsing = np.zeros((20, 20), np.uint8)
    assert landmarks_from_parsing(parsing) is None


def test_celebamask_hq_split_needs_partition(shared_faces, tmp_path):
    make_celebamask_hq_layout(shared_faces, tmp_path, ks=(0,))
    with pytest.raises(DatasetLayoutError, match="list_eval_partition"):
        open_source("celebamask_hq", tmp_path, "train")
    (tmp_path / "list_eval_partition.txt").write_text("001001.jpg 2\n")
    assert len(open_source("celebamask_hq", tmp_path, "test")) == 1
    with pytest.raises(DatasetLayoutError, match="no CelebA-HQ images in split train"):
        open_source("celebamask_hq", tmp_path, "train")


def test_unknown_kind_and_missing_root(tmp_path):
    with pytest.raises(DatasetLayoutError, match="dataset folder not found"):
        open_source("celeba", tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown dataset kind"):
        open_source("imagenet", tmp_path)
    with pytest.raises(DatasetLayoutError, match="manifest not found"):
        open_source("prepared", tmp_path)


def test_celeba_in_the_wild_layout(shared_faces, tmp_path):
    """img_celeba/ + list_landmarks_celeba.txt + list_bbox_celeba.txt (release formats): a photo
    padded into a larger canvas, with its landmarks and box shifted accordingly."""
    rows = list(csv.DictReader((shared_faces / "celeba_aligned" / "landmarks.csv").read_text().splitlines()))[:3]
    (tmp_path / "img_celeba").mkdir()
    offset = np.array([40, 25])
    lines_lm = [str(len(rows)), "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                                "leftmouth_x leftmouth_y rightmouth_x rightmouth_y"]
    lines_box = [str(len(rows)), "image_id x_1 y_1 width height"]
    for row in rows:
        photo = io.load_rgb(shared_faces / "celeba_aligned" / "images" / row["file"])
        canvas = np.zeros((photo.shape[0] + 60, photo.shape[1] + 90, 3), np.uint8)
        canvas[offset[1]:offset[1] + photo.shape[0], offset[0]:offset[0] + photo.shape[1]] = photo
        io.save_rgb(tmp_path / "img_celeba" / row["file"], canvas, quality=95)
        points = np.array([int(row[c]) for c in LANDMARK_COLUMNS]).reshape(5, 2) + offset
        lines_lm.append(row["file"] + "".join(f"{v:>5d}" for v in points.reshape(-1)))
        lines_box.append(f"{row['file']} {offset[0]:>4d} {offset[1]:>4d} {photo.shape[1]:>4d} {photo.shape[0]:>4d}")
    (tmp_path / "list_landmarks_celeba.txt").write_text("\r\n".join(lines_lm) + "\r\n")
    (tmp_path / "list_bbox_celeba.txt").write_text("\r\n".join(lines_box) + "\r\n")
    wild = open_source("celeba", tmp_path, None, images="wild", crop_size=64, annotate_missing=False)
    assert len(wild) == 3 and wild.bbox[rows[0]["file"]].tolist() == [40, 25, 178, 218]
    (tmp_path / "img_align_celeba").mkdir()
    for row in rows:
        shutil.copy(shared_faces / "celeba_aligned" / "images" / row["file"],
                    tmp_path / "img_align_celeba" / row["file"])
    aligned_lines = [lines_lm[0], lines_lm[1]] + [
        row["file"] + "".join(f"{int(row[c]):>5d}" for c in LANDMARK_COLUMNS) for row in rows
    ]
    (tmp_path / "list_landmarks_align_celeba.txt").write_text("\n".join(aligned_lines) + "\n")
    aligned = open_source("celeba", tmp_path, None, images="aligned", crop_size=64, annotate_missing=False)
    for k in range(3):  # same face, same crop rule: the crops agree up to JPEG noise
        a, b = wild.load(k), aligned.load(k)
        assert np.allclose(a.landmarks, b.landmarks, atol=1e-3)
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 6
