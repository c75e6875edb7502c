"""Decoding of odd and broken image files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from collaface.data import io


def _face_like(h: int = 40, w: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_jpeg_png_webp_bmp_roundtrip(tmp_path):
    array = _face_like()
    for ext in ("png", "bmp", "webp", "jpg"):
        path = tmp_path / f"a.{ext}"
        Image.fromarray(array).save(path, **({"lossless": True} if ext == "webp" else {}))
        out = io.load_rgb(path)
        assert out.shape == (40, 30, 3) and out.dtype == np.uint8
        if ext != "jpg":
            assert np.array_equal(out, array)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(io.ImageDecodeError, match="empty.jpg.*empty file"):
        io.load_rgb(path)


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n")
    with pytest.raises(io.ImageDecodeError, match="notes.jpg.*not a recognised image"):
        io.load_rgb(path)


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(_face_like(200, 200)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(io.ImageDecodeError, match="cut.jpg.*truncated"):
        io.load_rgb(path)


def test_missing_file(tmp_path):
    with pytest.raises(io.ImageDecodeError, match="nope.png: file not found"):
        io.load_rgb(tmp_path / "nope.png")


def test_16bit_png_is_rescaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    gradient = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(gradient).save(path)
    assert Image.open(path).mode.startswith("I")
    out = io.load_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (64, 64, 3)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert np.allclose(out[..., 0].astype(float), gradient / 257.0, atol=0.51)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    out = io.load_rgb(path)
    assert out.shape == (24, 32, 3)
    red = out.reshape(-1, 3).mean(axis=0)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_grayscale_palette_and_rgba(tmp_path):
    Image.new("L", (10, 8), 77).save(tmp_path / "g.png")
    assert (io.load_rgb(tmp_path / "g.png") == 77).all()
    Image.new("RGB", (10, 8), (10, 20, 30)).convert("P").save(tmp_path / "p.png")
    assert io.load_rgb(tmp_path / "p.png").shape == (8, 10, 3)
    rgba = np.zeros((8, 10, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :5, 3] = 255  # left half opaque red, right half transparent -> white
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = io.load_rgb(tmp_path / "a.png")
    assert (out[:, :5] == [255, 0, 0]).all() and (out[:, 5:] == 255).all()


def test_exif_rotation_is_applied(tmp_path):
    # Stored landscape (W=40, H=20) with a red left half; EXIF orientation 6 = rotate 90 CW to view.
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = (255, 0, 0)
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    out = io.load_rgb(path)
    assert out.shape == (40, 20, 3)  # upright: portrait
    top, bottom = out[:20].mean(axis=(0, 1)), out[20:].mean(axis=(0, 1))
    assert top[0] > 200 and bottom[0] < 60  # the red half is now on top


def test_decompression_bomb_limit_is_kept(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(io.ImageDecodeError, match="decompression-bomb"):
        io.load_rgb(path)


def test_label_map_roundtrip_and_rgb_rejected(tmp_path):
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    io.save_label_map(tmp_path / "l.png", labels)
    assert np.array_equal(io.load_label_map(tmp_path / "l.png"), labels)
    Image.new("RGB", (4, 3)).save(tmp_path / "rgb.png")
    with pytest.raises(io.ImageDecodeError, match="one-channel"):
        io.load_label_map(tmp_path / "rgb.png")


def test_list_images_filters_and_sorts(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.JPG", "a.png", "sub/c.webp", "notes.txt", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in io.list_images(tmp_path)] == ["a.png", "b.JPG", "sub/c.webp"]


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    io.write_csv_atomic(target, ("a", "b"), [{"a": 1, "b": 2}])
    assert target.read_text().splitlines() == ["a,b", "1,2"]
    with pytest.raises(RuntimeError, match="disk full"), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text().splitlines() == ["a,b", "1,2"]
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]  # no temp file left behind
