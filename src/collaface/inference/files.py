"""Completion from files: hole masks read by the conventions of LaMa and IOPaint, results
written in the source's format, one photo from file to file."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, JpegImagePlugin

from collaface.data import io
from collaface.inference.engine import Completion, CompletionError, FaceCompleter, check_hole

LOSSY_MASK_THRESHOLD = 127    # JPEG mask pixels brighter than this are hole (others: any non-zero)
LOSSY_FORMATS = ("JPEG", "MPO")
JPEG_QUALITY = 95             # for JPEG/WebP outputs whose source gives no quantisation tables


def read_mask(path: str | os.PathLike, shape: tuple[int, int], resize: bool = False,
              invert: bool = False) -> np.ndarray:
    """Read a hole mask for a photo of ``shape`` (H, W) -> (H, W) bool, True = hole.

    The conventions of LaMa, IOPaint and paint programs: white or any non-black grey = hole
    (JPEG masks: brighter than mid-grey, since compression leaves dark noise in the black); a
    mask with transparent pixels is a painted layer: every painted (non-transparent) pixel is
    hole, whatever its colour. invert=True swaps hole and known (masks with black = hole).
    EXIF orientation is applied as for photos. resize=True scales a mask of another size
    (nearest neighbour); otherwise a size mismatch is a CompletionError, like an empty or
    all-hole mask. Undecodable files raise io.ImageDecodeError.
    """
    try:
        image, file_format = io.open_upright(path)
    except io.ImageDecodeError as err:
        raise io.ImageDecodeError(path, f"mask is not an image that can be read: {err.reason} "
                                        "(masks: white = hole on black, PNG or JPEG)") from None
    lossy = file_format in LOSSY_FORMATS
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        gray = np.asarray(image, np.float64) / 257.0
    else:
        gray = np.asarray(image.convert("L"), np.float64)
    hole = gray > (LOSSY_MASK_THRESHOLD if lossy else 0)
    if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if (alpha < 255).any():
            hole = alpha > 0
    if hole.shape != tuple(shape):
        if not resize:
            raise CompletionError(
                f"{path}: mask is {hole.shape[1]}x{hole.shape[0]} but the photo is {shape[1]}x{shape[0]} "
                "(width x height, upright); make it the photo's size or pass --resize-mask")
        hole = cv2.resize(hole.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    if invert:
        hole = ~hole
    check_hole(hole, str(path), gray)
    return hole


def save_image(path: Path, image: np.ndarray | Image.Image, source: Path | None = None) -> None:
    """Write an (H, W, 3) uint8 image (or a Pillow image) atomically, format from the suffix. A
    JPEG written from a JPEG ``source`` reuses its quantisation tables and subsampling (the
    source's own quality); the source's colour profile is kept. EXIF is not copied: the image is
    already upright."""
    params: dict = {}
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg", ".webp"):
        params["quality"] = JPEG_QUALITY
    if source is not None:
        with Image.open(source) as src:
            if src.info.get("icc_profile"):
                params["icc_profile"] = src.info["icc_profile"]
            if suffix in (".jpg", ".jpeg") and src.format == "JPEG":
                params.pop("quality")
                params["qtables"] = src.quantization
                sampling = JpegImagePlugin.get_sampling(src)
                if sampling >= 0:
                    params["subsampling"] = sampling
    io.save_picture(path, image if isinstance(image, Image.Image) else Image.fromarray(image), **params)


def complete_file(completer: FaceCompleter, path: Path, out: Path, mask: Path | None = None,
                  region: str | None = None, face: int | None = None, no_detect: bool = False,
                  resize_mask: bool = False, invert_mask: bool = False) -> tuple[np.ndarray, Completion]:
    """Decode ``path``, complete it, write ``out`` (format from its suffix; gray, 16-bit gray and
    alpha photos stay so, see :func:`io.merge_into_photo`). -> (RGB photo, completion).
    A CompletionError names the photo (and the mask) it is about."""
    completer.on_step(f"reading {path}")
    image, photo = io.load_photo(path)
    try:
        hole = read_mask(mask, image.shape[:2], resize_mask, invert_mask) if mask is not None else None
        completion = completer.complete(image, hole=hole, region=region, face=face, no_detect=no_detect)
    except CompletionError as err:
        if str(err).startswith((str(path), str(mask))):
            raise
        about = f"{path}" + (f" with mask {mask}" if mask is not None else "")
        raise type(err)(f"{about}: {err}") from None
    completer.on_step(f"writing {out}")
    save_image(out, io.merge_into_photo(photo, completion.image, completion.hole, io.image_format(out)), source=path)
    return image, completion
