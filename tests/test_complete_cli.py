"""``collaface complete``: exit codes, extra outputs, EXIF, formats, batch resume, failures, path safety."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_mediapipe
from PIL import Image
from test_inference import make_tiny_model, random_photo

from collaface.data import io
from collaface.data.annotate import AnnotatorUnavailable
from collaface.inference import cli as complete_cli
from collaface.inference import engine as completion_engine
from collaface.inference import pictures
from collaface.inference.cli import add_complete_parser


def run(*argv) -> int:
    """``collaface complete ARGV`` through the subcommand's own parser; -> exit code."""
    parser = argparse.ArgumentParser(prog="collaface")
    add_complete_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["complete", *map(str, argv)])
    return args.func(args)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model"))


def write_photo(path: Path, height: int = 96, width: int = 80, seed: int = 0, **params) -> np.ndarray:
    image = random_photo(height, width, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **params)
    return io.load_rgb(path)


def write_mask(path: Path, height: int = 96, width: int = 80) -> np.ndarray:
    """A white block (hole) on black; -> the (H, W) bool hole."""
    hole = np.zeros((height, width), bool)
    hole[height // 3: height // 2, width // 4: width // 2] = True
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(hole.astype(np.uint8) * 255).save(path)
    return hole


# --------------------------------------------------------------------------- one photo


def test_one_photo_with_every_extra_output(tmp_path, model, capsys):
    image = write_photo(tmp_path / "face.png")
    hole = write_mask(tmp_path / "mask.png")
    out = tmp_path / "out" / "done.png"
    code = run(tmp_path / "face.png", "--mask", tmp_path / "mask.png", "--model", model, "--no-detect",
               "--out", out, "--parsing", tmp_path / "parsing.png", "--landmarks", tmp_path / "points.json",
               "--side-by-side", tmp_path / "sbs.png")
    assert code == 0
    assert f"result: {out}" in capsys.readouterr().out
    result = io.load_rgb(out)
    assert result.shape == image.shape
    assert np.array_equal(result[~hole], image[~hole]) and (result[hole] != image[hole]).any()
    record = json.loads((tmp_path / "points.json").read_text())
    points = np.array(record["faces"][0]["landmarks"])
    assert record["order"][0] == "left_eye" and points.shape == (5, 2)
    assert record["width"] == 80 and record["height"] == 96
    assert io.load_rgb(tmp_path / "parsing.png").shape[1] == 2 * 256 + 3 * 2
    assert io.load_rgb(tmp_path / "sbs.png").shape[0] == pictures.CAPTION_HEIGHT + 96 + 8


def test_default_output_goes_to_the_current_folder(tmp_path, model, monkeypatch):
    write_photo(tmp_path / "in" / "face.png")
    write_mask(tmp_path / "in" / "mask.png")
    monkeypatch.chdir(tmp_path)
    assert run("in/face.png", "--mask", "in/mask.png", "--model", model, "--no-detect") == 0
    assert (tmp_path / "face_completed.png").is_file()
    write_photo(tmp_path / "in" / "scan.tif")  # a format the results are not written in: PNG
    assert run("in/scan.tif", "--mask", "in/mask.png", "--model", model, "--no-detect") == 0
    assert (tmp_path / "scan_completed.png").is_file()


def test_exif_rotated_photo_comes_out_upright(tmp_path, model):
    stored = random_photo(60, 100)  # stored landscape, displayed portrait (orientation 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    upright = io.load_rgb(tmp_path / "rotated.jpg")
    assert upright.shape == (100, 60, 3)
    hole = write_mask(tmp_path / "mask.png", 100, 60)
    assert run(tmp_path / "rotated.jpg", "--mask", tmp_path / "mask.png", "--model", model, "--no-detect",
               "--out", tmp_path / "out.png") == 0
    with Image.open(tmp_path / "out.png") as written:
        assert written.getexif().get(0x0112) is None
    result = io.load_rgb(tmp_path / "out.png")
    assert np.array_equal(result[~hole], upright[~hole])


def test_jpeg_keeps_format_size_and_quantisation(tmp_path, model):
    write_photo(tmp_path / "face.jpg", quality=80)
    write_mask(tmp_path / "mask.png")
    assert run(tmp_path / "face.jpg", "--mask", tmp_path / "mask.png", "--model", model, "--no-detect",
               "--out", tmp_path / "out.jpg") == 0
    with Image.open(tmp_path / "face.jpg") as source, Image.open(tmp_path / "out.jpg") as result:
        assert result.format == "JPEG" and result.size == source.size
        assert result.quantization == source.quantization


@pytest.mark.parametrize(("mode", "suffix", "written_mode"), [
    ("L", ".png", "L"), ("LA", ".png", "LA"), ("RGBA", ".png", "RGBA"), ("I;16", ".png", "I;16"),
    ("P", ".png", "RGB"), ("RGBA", ".webp", "RGBA"), ("L", ".jpg", "L"),
    ("RGBA", ".jpg", "RGB"), ("I;16", ".jpg", "L"), ("LA", ".jpg", "RGB"),
])
def test_result_keeps_the_photos_own_pixel_format(tmp_path, model, mode, suffix, written_mode):
    rgb = random_photo(96, 80)
    if mode == "I;16":
        photo = Image.fromarray(rgb[..., 1].astype(np.uint16) * 257 + 3)
    else:
        photo = Image.fromarray(rgb).convert(mode)
    if "A" in mode:
        alpha = np.tile(np.linspace(40, 255, 80).astype(np.uint8), (96, 1))
        photo.putalpha(Image.fromarray(alpha))
    photo.save(tmp_path / "in.png")
    hole = write_mask(tmp_path / "mask.png")
    out = tmp_path / f"out{suffix}"
    assert run(tmp_path / "in.png", "--mask", tmp_path / "mask.png", "--model", model, "--no-detect",
               "--out", out) == 0
    with Image.open(out) as result:
        assert result.mode == written_mode and result.size == photo.size
        if suffix != ".png":
            return  # lossy: only the pixel format is kept
        before, after = np.asarray(photo.convert(written_mode)), np.asarray(result)
    assert np.array_equal(after[~hole], before[~hole])  # every known pixel, alpha and 16 bits included
    assert (after[hole] != before[hole]).any()
    if "A" in mode:
        assert np.array_equal(after[..., -1], before[..., -1])  # the hole keeps its transparency too


# --------------------------------------------------------------------------- exit codes


@pytest.fixture
def photo_and_mask(tmp_path):
    write_photo(tmp_path / "face.png")
    write_mask(tmp_path / "mask.png")
    os.mkdir(tmp_path / "folder")
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    (["face.png", "--no-detect"], "give the hole"),
    (["face.png", "--mask", "nothere.png"], "nothere.png: no such mask file or folder"),
    (["folder", "--out", "o"], "no masks beside the photos"),
    (["folder", "--region", "nose"], "needs --out"),
    (["folder", "--region", "nose", "--out", "o", "--parsing", "p.png"], "work on one photo"),
    (["missing.png", "--mask", "mask.png"], "no such photo"),
    (["face.png", "--mask", "mask.png", "--face", "0", "--no-detect"], "cannot go with --no-detect"),
    (["face.png", "--mask", "mask.png", "--out", "face.png", "--no-detect"], "names the input face.png"),
    (["face.png", "--mask", "mask.png", "--side-by-side", "./face.png"], "names the input face.png"),
    (["face.png", "--mask", "mask.png", "--out", "mask.png"], "names the input mask.png"),
    (["face.png", "--mask", "mask.png", "--landmarks", "mask.png"], "names the input mask.png"),
    (["face.png", "--mask", "mask.png", "--out", "o.png", "--parsing", "o.png"], "the same file"),
    (["face.png", "--mask", "mask.png", "--out", "result"], "--out result: the file name must end in"),
    (["face.png", "--mask", "mask.png", "--parsing", "p.gif"], "--parsing p.gif: the file name must end in"),
    (["folder", "--masks", "folder", "--out", "folder"], "is the photo folder"),
])
def test_bad_usage_exits_2(photo_and_mask, model, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(photo_and_mask)
    assert run(*argv, "--model", model) == 2
    assert message in capsys.readouterr().err


def test_missing_default_weights_exit_2_naming_the_path(photo_and_mask, capsys, monkeypatch):
    import collaface.model_format as model_format

    monkeypatch.setattr(model_format, "DEFAULT_MODEL_DIR", photo_and_mask / "no-such-package" / "collaface" / "weights")
    assert run(photo_and_mask / "face.png", "--mask", photo_and_mask / "mask.png", "--no-detect") == 2
    err = capsys.readouterr().err
    assert str(Path("collaface") / "weights" / "generator.safetensors") in err and "--model" in err


def test_unusable_model_exits_2(photo_and_mask, capsys):
    assert run(photo_and_mask / "face.png", "--mask", photo_and_mask / "mask.png", "--no-detect",
               "--model", photo_and_mask / "folder") == 2
    assert "no loadable checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("mask, message", [
    (np.zeros((10, 10), np.uint8), "mask is 10x10 but the photo is 80x96"),
    (np.zeros((96, 80), np.uint8), "mask is empty"),
    (np.full((96, 80), 255, np.uint8), "every pixel is a hole"),
    (None, "mask is not an image"),
])
def test_bad_masks_exit_2_saying_what_they_got(photo_and_mask, model, capsys, mask, message):
    path = photo_and_mask / "bad.png"
    if mask is None:
        path.write_bytes(b"GIF? no, just text")
    else:
        Image.fromarray(mask).save(path)
    assert run(photo_and_mask / "face.png", "--mask", path, "--model", model, "--no-detect") == 2
    assert message in capsys.readouterr().err


def test_resize_mask_accepts_another_size(photo_and_mask, model):
    Image.fromarray(np.pad(np.full((5, 5), 255, np.uint8), 10)).save(photo_and_mask / "small.png")
    assert run(photo_and_mask / "face.png", "--mask", photo_and_mask / "small.png", "--resize-mask",
               "--model", model, "--no-detect", "--out", photo_and_mask / "o.png") == 0


def test_undecodable_photo_exits_2(photo_and_mask, model, capsys):
    (photo_and_mask / "fake.jpg").write_text("not a photo")
    assert run(photo_and_mask / "fake.jpg", "--mask", photo_and_mask / "mask.png", "--model", model,
               "--no-detect") == 2
    assert "not a recognised image format" in capsys.readouterr().err


def test_unknown_region_is_a_usage_error(photo_and_mask, model):
    with pytest.raises(SystemExit) as info:
        run(photo_and_mask / "face.png", "--region", "ears", "--model", model)
    assert info.value.code == 2


def test_missing_face_detector_exits_1_with_the_install_command(photo_and_mask, model, monkeypatch, capsys):
    def unavailable(*args, **kwargs):
        raise AnnotatorUnavailable("face annotation needs mediapipe; install with `pip install 'collaface[annotate]'`")

    monkeypatch.setattr(completion_engine, "FaceAnnotator", unavailable)
    assert run(photo_and_mask / "face.png", "--mask", photo_and_mask / "mask.png", "--model", model) == 1
    err = capsys.readouterr().err
    assert "collaface[annotate]" in err and "--no-detect" in err


@requires_mediapipe
def test_no_face_exits_3_with_the_no_detect_advice(photo_and_mask, model, capsys):
    assert run(photo_and_mask / "face.png", "--mask", photo_and_mask / "mask.png", "--model", model) == 3
    assert "--no-detect" in capsys.readouterr().err


@requires_mediapipe
def test_region_on_a_shared_face(tmp_path, model, shared_faces):
    photo = shared_faces / "celeba_crops" / "images" / "182649.jpg"
    assert run(photo, "--region", "eyes", "--model", model, "--out", tmp_path / "o.png",
               "--landmarks", tmp_path / "p.json") == 0
    record = json.loads((tmp_path / "p.json").read_text())
    detected = np.array(record["faces"][0]["detected_landmarks"])
    assert detected[0, 0] < detected[1, 0]  # left eye on the image's left


# --------------------------------------------------------------------------- batch


def tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Relative path -> sha256 of every file (links as their target text) under root."""
    found = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        if path.is_symlink():
            found[str(path.relative_to(root))] = "link:" + os.readlink(path)
        elif path.is_file():
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def batch(tmp_path):
    """photos/ and masks/ with odd names, a photo without mask, a broken photo and a symlink."""
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    write_photo(photos / "a.png", seed=1)
    write_photo(photos / "b b.jpg", seed=2, quality=90)
    write_photo(photos / "ünï cødé.png", seed=3)
    write_photo(photos / "sub" / "c.png", seed=4)
    write_photo(photos / "nomask.png", seed=5)
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_photo(tmp_path / "outside.png", seed=6)
    (photos / "link.png").symlink_to("../outside.png")
    for name in ("a_mask.png", "b b.png", "ünï cødé_mask.png", "sub/c_mask.png", "broken.png", "link_mask.png"):
        write_mask(masks / name)
    return tmp_path


def read_failures(out: Path) -> dict[str, str]:
    with open(out / "failures.csv", newline="", encoding="utf-8") as handle:
        return {row["file"]: row["reason"] for row in csv.DictReader(handle)}


def test_batch_completes_logs_failures_and_resumes(batch, model, capsys):
    photos, masks, out = batch / "photos", batch / "masks", batch / "out"
    before = tree(batch)
    code = run(photos, "--masks", masks, "--out", out, "--model", model, "--no-detect")
    assert code == 2  # two photos failed; the rest are done
    assert "completed 5 photos" in capsys.readouterr().out
    assert tree(batch, skip=out) == before  # inputs untouched, nothing written outside out/
    failures = read_failures(out)
    assert set(failures) == {"nomask.png", "broken.png"}
    assert "no mask named nomask_mask*.png or nomask.png" in failures["nomask.png"]
    assert "broken.png" in failures["broken.png"]
    for name in ("a.png", "b b.jpg", "ünï cødé.png", "sub/c.png", "link.png"):
        with Image.open(photos / name) as source, Image.open(out / name) as result:
            assert (result.format, result.size) == (source.format, source.size)
    assert not (out / "link.png").is_symlink()

    assert run(photos, "--masks", masks, "--out", out, "--model", model, "--no-detect", "--no-progress") == 2
    second = capsys.readouterr().out
    assert "completed 0 photos" in second and "5 already done" in second and "2 failed" in second

    write_mask(masks / "nomask_mask.png")
    write_photo(photos / "broken.png", seed=7)
    stamp = os.stat(out / "a.png").st_mtime_ns
    os.utime(photos / "a.png", ns=(stamp + 10**9, stamp + 10**9))  # a.png changed since
    assert run(photos, "--masks", masks, "--out", out, "--model", model, "--no-detect", "--no-progress") == 0
    summary = capsys.readouterr().out
    assert "completed 3 photos" in summary and "4 already done" in summary and "none failed" in summary
    assert "failures.csv" not in summary
    assert read_failures(out) == {}


def test_batch_refuses_to_write_through_a_symlinked_output_folder(batch, model):
    photos, masks, out = batch / "photos", batch / "masks", batch / "out"
    elsewhere = batch / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    assert run(photos, "--masks", masks, "--out", out, "--model", model, "--no-detect", "--no-progress") == 2
    assert "outside" in read_failures(out)["sub/c.png"]
    assert list(elsewhere.iterdir()) == []


def test_batch_with_masks_beside_the_photos(tmp_path, model):
    folder = tmp_path / "photos"
    write_photo(folder / "x.png")
    write_mask(folder / "x_mask.png")
    assert run(folder, "--masks", folder, "--out", tmp_path / "out", "--model", model, "--no-detect") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["failures.csv", "x.png"]


@requires_mediapipe
def test_batch_with_a_region_logs_photos_without_a_face(tmp_path, model, shared_faces):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(shared_faces / "celeba_crops" / "images" / "182649.jpg", photos / "face.jpg")
    write_photo(photos / "blank.png")
    assert run(photos, "--region", "mouth", "--out", tmp_path / "out", "--model", model, "--no-progress") == 2
    assert "no face found" in read_failures(tmp_path / "out")["blank.png"]
    assert io.load_rgb(tmp_path / "out" / "face.jpg").shape == io.load_rgb(photos / "face.jpg").shape


# --------------------------------------------------------------------------- masks as other tools make them


def test_lama_layout_one_result_per_mask_and_masks_are_not_photos(tmp_path, model, capsys):
    folder = tmp_path / "photos"
    x = write_photo(folder / "x.png", seed=1)
    write_photo(folder / "y.jpg", seed=2, quality=95)
    holes = {name: write_mask(folder / f"{name}.png") for name in ("x_mask001", "x_mask002", "y_mask")}
    holes["x_mask002"] = np.roll(holes["x_mask002"], 30, axis=0)  # another hole
    Image.fromarray(holes["x_mask002"].astype(np.uint8) * 255).save(folder / "x_mask002.png")
    out = tmp_path / "out"
    assert run(folder, "--out", out, "--model", model, "--no-detect", "--no-progress") == 0
    assert sorted(p.name for p in out.iterdir()) == ["failures.csv", "x_mask001.png", "x_mask002.png", "y.jpg"]
    summary = capsys.readouterr().out
    assert "completed 3 photos" in summary and "none failed" in summary and "failures.csv" not in summary
    for name in ("x_mask001", "x_mask002"):
        result = io.load_rgb(out / f"{name}.png")
        assert np.array_equal(result[~holes[name]], x[~holes[name]]) and (result[holes[name]] != x[holes[name]]).any()


def test_a_folder_of_masks_can_be_named_like_the_photos_too(tmp_path, model):
    photos, masks = tmp_path / "photos", tmp_path / "masks"  # IOPaint: the same names
    write_photo(photos / "a.jpg", quality=95)
    write_mask(masks / "a.png")
    assert run(photos, "--mask", masks, "--out", tmp_path / "out", "--model", model, "--no-detect") == 0
    assert (tmp_path / "out" / "a.jpg").is_file()


@pytest.mark.parametrize("flag", ["--mask", "--masks"])
def test_one_mask_file_for_a_whole_folder(tmp_path, model, flag):
    photos = tmp_path / "photos"
    images = {name: write_photo(photos / name, seed=i) for i, name in enumerate(("a.png", "b.png", "sub/c.png"))}
    hole = write_mask(tmp_path / "mask.png")
    assert run(photos, flag, tmp_path / "mask.png", "--out", tmp_path / "out", "--model", model,
               "--no-detect", "--no-progress") == 0
    for name, image in images.items():
        result = io.load_rgb(tmp_path / "out" / name)
        assert np.array_equal(result[~hole], image[~hole])


def test_one_photo_with_a_masks_folder_finds_its_mask_by_name(tmp_path, model):
    write_photo(tmp_path / "face.png")
    write_mask(tmp_path / "masks" / "face_mask.png")
    assert run(tmp_path / "face.png", "--mask", tmp_path / "masks", "--out", tmp_path / "o.png", "--model", model,
               "--no-detect") == 0


def test_an_inverted_mask_is_named_as_such_and_invert_mask_fixes_it(tmp_path, model, capsys):
    image = write_photo(tmp_path / "face.png")
    hole = write_mask(tmp_path / "hole.png")
    Image.fromarray((~hole).astype(np.uint8) * 255).save(tmp_path / "inverted.png")  # black = hole
    assert run(tmp_path / "face.png", "--mask", tmp_path / "inverted.png", "--model", model, "--no-detect",
               "--out", tmp_path / "o.png") == 2
    err = capsys.readouterr().err
    assert "may be inverted" in err and "--invert-mask" in err and "face.png" in err
    assert run(tmp_path / "face.png", "--mask", tmp_path / "inverted.png", "--invert-mask", "--model", model,
               "--no-detect", "--out", tmp_path / "o.png") == 0
    result = io.load_rgb(tmp_path / "o.png")
    assert np.array_equal(result[~hole], image[~hole]) and (result[hole] != image[hole]).any()


def test_strokes_on_a_transparent_layer_are_the_hole(tmp_path, model):
    image = write_photo(tmp_path / "face.png")
    layer = np.zeros((96, 80, 4), np.uint8)
    layer[40:50, 20:50] = (255, 0, 0, 255)  # red strokes, as a paint program exports them
    Image.fromarray(layer, "RGBA").save(tmp_path / "strokes.png")
    assert run(tmp_path / "face.png", "--mask", tmp_path / "strokes.png", "--model", model, "--no-detect",
               "--out", tmp_path / "o.png") == 0
    changed = (io.load_rgb(tmp_path / "o.png") != image).any(axis=2)
    assert changed[40:50, 20:50].any() and not changed[:40].any() and not changed[50:].any()


# --------------------------------------------------------------------------- messages


@requires_mediapipe
def test_no_face_names_the_file(photo_and_mask, model, capsys):
    assert run(photo_and_mask / "face.png", "--region", "eyes", "--model", model) == 3
    assert f"{photo_and_mask / 'face.png'}: no face found" in capsys.readouterr().err


def test_errors_about_a_hole_name_the_photo_and_the_mask(photo_and_mask, model, capsys):
    full = np.full((96, 80), 255, np.uint8)
    full[:10] = 0
    Image.fromarray(full).save(photo_and_mask / "big.png")
    assert run(photo_and_mask / "face.png", "--mask", photo_and_mask / "big.png", "--model", model,
               "--no-detect", "--out", photo_and_mask / "o.png") == 2
    err = capsys.readouterr().err
    assert f"{photo_and_mask / 'face.png'} with mask {photo_and_mask / 'big.png'}: the hole covers" in err


def test_a_slow_run_says_what_it_is_doing(photo_and_mask, model, capsys, monkeypatch):
    monkeypatch.setattr(complete_cli, "PROGRESS_AFTER_S", 0.0)
    assert run(photo_and_mask / "face.png", "--mask", photo_and_mask / "mask.png", "--model", model,
               "--no-detect", "--out", photo_and_mask / "o.png") == 0
    err = capsys.readouterr().err
    for step in ("loading the model", "reading", "finding faces", "completing face 1 of 1", "writing"):
        assert f"collaface: {step}" in err


def test_a_quick_run_prints_no_progress(photo_and_mask, model, capsys, monkeypatch):
    monkeypatch.setattr(complete_cli, "PROGRESS_AFTER_S", 3600.0)
    assert run(photo_and_mask / "face.png", "--mask", photo_and_mask / "mask.png", "--model", model,
               "--no-detect", "--out", photo_and_mask / "o.png") == 0
    assert capsys.readouterr().err == ""


def test_a_folder_reports_its_steps_by_the_progress_bar_only(tmp_path, model, capsys, monkeypatch):
    monkeypatch.setattr(complete_cli, "PROGRESS_AFTER_S", 0.0)
    for name in ("a.png", "b.png"):
        write_photo(tmp_path / "photos" / name)
    write_mask(tmp_path / "mask.png")
    assert run(tmp_path / "photos", "--mask", tmp_path / "mask.png", "--out", tmp_path / "out", "--model", model,
               "--no-detect", "--no-progress") == 0
    err = capsys.readouterr().err
    assert "collaface: loading the model" in err and "reading" not in err and "writing" not in err
