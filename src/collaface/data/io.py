"""Robust image decoding: every photo becomes an upright 8-bit RGB array, or a clear error.

Handles JPEG/PNG/WebP/BMP (anything Pillow reads), applies EXIF orientation, converts
grayscale/palette/RGBA/CMYK/16-bit to RGB 8-bit, and keeps Pillow's decompression-bomb limit.
Results can be written back in a photo's own pixel format (gray, 16-bit, alpha kept).
"""

from __future__ import annotations

import contextlib
import csv
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class ImageDecodeError(ValueError):
    """An image file could not be decoded; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _open(path: str | os.PathLike) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise ImageDecodeError(path, "file not found")
    if path.stat().st_size == 0:
        raise ImageDecodeError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()  # decode now so truncated data fails here, not later
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageDecodeError(path, f"image too large (decompression-bomb limit): {err}") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(path, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageDecodeError(path, f"corrupt or truncated image ({err})") from None
    return image


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image).astype(np.float64)
        # 16-bit data is stored in mode I/I;16: rescale the full 16-bit range to 8 bits.
        gray = np.clip(np.round(array / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 if array.max(initial=0.0) <= 1.0 else 1.0
        gray = np.clip(np.round(array * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def open_upright(path: str | os.PathLike) -> tuple[Image.Image, str | None]:
    """Decode an image file and turn it upright by its EXIF orientation. -> (the image in its own
    pixel format, the file's format, e.g. "JPEG"). Raises ImageDecodeError."""
    image = _open(path)
    try:
        return ImageOps.exif_transpose(image), image.format
    except (OSError, ValueError) as err:
        raise ImageDecodeError(path, f"cannot apply the EXIF orientation ({err})") from None


def load_photo(path: str | os.PathLike) -> tuple[np.ndarray, Image.Image]:
    """Decode a photo. -> (upright (H, W, 3) uint8 RGB array, the upright photo in its own pixel
    format, for :func:`merge_into_photo`). Raises ImageDecodeError."""
    image, _ = open_upright(path)
    try:
        array = _to_rgb8(image)
    except (OSError, ValueError) as err:
        raise ImageDecodeError(path, f"cannot convert to RGB ({err})") from None
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageDecodeError(path, "image has zero size")
    return array, image


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode a photo to an upright (H, W, 3) uint8 RGB array. Raises ImageDecodeError."""
    return load_photo(path)[0]


# Pixel formats a result keeps, per file format; a format that cannot store one falls back.
WRITABLE_MODES = {"PNG": ("RGB", "RGBA", "L", "LA", "I;16"), "JPEG": ("RGB", "L"),
                  "WEBP": ("RGB", "RGBA"), "BMP": ("RGB", "RGBA", "L")}
_MODE_FALLBACK = {"I;16": "L", "LA": "RGBA", "RGBA": "RGB", "L": "RGB"}


def own_mode(photo: Image.Image) -> str:
    """The pixel format a result for ``photo`` is written in: RGB, RGBA, L, LA or I;16 (16-bit
    gray). Palette photos become RGB (RGBA with transparency), CMYK and other colour spaces RGB."""
    mode = photo.mode
    alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in photo.info)
    if mode.startswith("I"):
        return "I;16"
    if mode in ("L", "LA", "1"):
        return "LA" if alpha else "L"
    return "RGBA" if alpha else "RGB"


def merge_into_photo(photo: Image.Image, rgb: np.ndarray, where: np.ndarray, fmt: str | None) -> Image.Image:
    """``photo`` with new pixels written at ``where``, in the photo's own pixel format as far as
    the file format ``fmt`` (Pillow's name: PNG, JPEG...) stores it.

    photo: upright, as :func:`load_photo` returns it; rgb: (H, W, 3) uint8, the RGB version of the
    photo (``load_photo``'s array) with the new pixels; where: (H, W) bool. Gray and 16-bit gray
    photos get the new pixels' luma (x 257 for 16 bits) and alpha is kept, so every pixel outside
    ``where`` keeps its exact value. Where ``fmt`` cannot store the mode, 16-bit gray becomes 8-bit,
    gray + alpha becomes RGBA and alpha is dropped (the RGB version: composited on white).
    """
    mode = own_mode(photo)
    writable = WRITABLE_MODES.get(fmt or "", ("RGB",))
    while mode not in writable:
        mode = _MODE_FALLBACK[mode]
    if mode == "RGB":
        return Image.fromarray(rgb)
    if mode == "RGBA":
        pixels = np.asarray(photo.convert(mode)).copy()
        pixels[where, :3] = rgb[where]
        return Image.fromarray(pixels, mode)
    luma = np.asarray(Image.fromarray(rgb).convert("L"))  # exact on gray pixels (R = G = B)
    if mode == "L":
        return Image.fromarray(luma)
    if mode == "I;16":
        deep = np.clip(np.asarray(photo, dtype=np.int64), 0, 65535).astype(np.uint16)
        deep[where] = luma[where].astype(np.uint16) * 257
        return Image.fromarray(deep)
    pixels = np.asarray(photo.convert(mode)).copy()  # LA
    pixels[where, 0] = luma[where]
    return Image.fromarray(pixels, mode)


def load_label_map(path: str | os.PathLike) -> np.ndarray:
    """Read a label map (grayscale or palette PNG, one label per pixel) as (H, W) uint8."""
    image = _open(path)
    if image.mode in ("L", "P"):
        return np.asarray(image, dtype=np.uint8).copy()
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8).copy()
    if image.mode in ("I", "I;16"):
        array = np.asarray(image)
        if array.max(initial=0) > 255:
            raise ImageDecodeError(path, "label map has values above 255")
        return array.astype(np.uint8)
    raise ImageDecodeError(path, f"label map must be a one-channel PNG, got mode {image.mode}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path`` in one rename, on error
    it is removed, so readers never see a half-written file. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def write_csv_atomic(path: str | os.PathLike, columns: tuple[str, ...], rows: list[dict]) -> None:
    """A CSV with header ``columns`` and one line per row dict, written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def image_format(path: str | os.PathLike) -> str | None:
    """Pillow's format name for a file name's suffix (PNG, JPEG...), None if unknown."""
    return Image.registered_extensions().get(Path(path).suffix.lower())


def save_picture(path: str | os.PathLike, picture: Image.Image, **params) -> None:
    """Write a Pillow image atomically (temp file + rename); format from the suffix."""
    with atomic_path(path) as tmp:
        picture.save(tmp, format=image_format(path), **params)


def save_rgb(path: str | os.PathLike, image: np.ndarray, **params) -> None:
    """Write an (H, W, 3) uint8 array atomically (temp file + rename); format from the suffix."""
    save_picture(path, Image.fromarray(image), **params)


def save_label_map(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write an (H, W) integer label map as an 8-bit grayscale PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(labels.astype(np.uint8)).save(tmp, format="PNG")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files under folder (recursive), sorted, by extension (case-insensitive)."""
    folder = Path(folder)
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )
