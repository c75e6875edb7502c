"""CelebAMask-HQ in its release layout.

::

    ROOT/CelebA-HQ-img/<k>.jpg                               1024x1024 faces, k = 0..29999
    ROOT/CelebAMask-HQ-mask-anno/<k // 2000>/<k:05d>_<part>.png  512x512 binary masks per part
    ROOT/CelebA-HQ-to-CelebA-mapping.txt                     ``idx orig_idx orig_file`` (header line)
    ROOT/list_eval_partition.txt, ROOT/identity_CelebA.txt   optional, CelebA's files (for splits/identities)

Per-part masks are merged in the release's order (``labels.CELEBAMASK_HQ_PARTS``, later parts
overwrite earlier ones, as the release's own ``g_mask.py``) and mapped into our label space,
converting the person-side ``l_``/``r_`` names to our image sides. Splits follow CelebA's
official partition of the original image when ``list_eval_partition.txt`` is given.

The release has no landmarks. We derive 5 from the parsing map (documented approximation):
eye centres = centroids of the eye labels, nose tip = centroid of the lowest quarter of the
nose label, mouth corners = the leftmost/rightmost lip pixels. The face is then cropped with
the shared rule; when an eye is not visible the whole image (already a face crop) is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from collaface.data import crop, io, labels
from collaface.data.sources.base import PARTITION_CODES, DatasetLayoutError, RawSample, read_table
from collaface.data.sources.celeba import find_release_file

IMAGE_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"


def merge_part_masks(part_paths: dict[str, Path], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Merge per-part binary PNGs {part: path} into one CelebAMask-HQ label map (H, W) uint8 (0..18)."""
    merged: np.ndarray | None = None if shape is None else np.zeros(shape, np.uint8)
    for value, part in enumerate(labels.CELEBAMASK_HQ_PARTS, start=1):
        path = part_paths.get(part)
        if path is None:
            continue
        binary = io.load_label_map(path)
        if merged is None:
            merged = np.zeros(binary.shape, np.uint8)
        if binary.shape != merged.shape:
            raise io.ImageDecodeError(path, f"mask size {binary.shape} differs from {merged.shape}")
        merged[binary > 0] = value
    if merged is None:
        raise DatasetLayoutError("no part masks to merge")
    return merged


def landmarks_from_parsing(parsing: np.ndarray) -> np.ndarray | None:
    """Approximate 5 landmarks (5, 2) from our-label-space parsing (H, W), or None if a part is missing."""
    points = []
    for name in ("left_eye", "right_eye"):
        ys, xs = np.nonzero(parsing == labels.LABEL_INDEX[name])
        if len(xs) == 0:
            return None
        points.append((xs.mean(), ys.mean()))
    ys, xs = np.nonzero(parsing == labels.LABEL_INDEX["nose"])
    if len(xs) == 0:
        return None
    low = ys >= np.percentile(ys, 75)
    points.append((xs[low].mean(), ys[low].mean()))
    lip_values = [labels.LABEL_INDEX[n] for n in ("upper_lip", "lower_lip", "inner_mouth")]
    ys, xs = np.nonzero(np.isin(parsing, lip_values))
    if len(xs) == 0:
        return None
    for extreme in (xs.argmin(), xs.argmax()):
        near = np.abs(xs - xs[extreme]) <= 1
        points.append((xs[near].mean(), ys[near].mean()))
    return np.asarray(points, np.float32)


class CelebAMaskHQSource:
    """Faces of the CelebAMask-HQ layout as square crops of ``crop_size`` with parsing."""

    def __init__(self, root: Path, split: str | None = None, crop_size: int = 128):
        self.root = Path(root)
        self.image_dir = self.root / IMAGE_DIR
        self.mask_dir = self.root / MASK_DIR
        for folder in (self.image_dir, self.mask_dir):
            if not folder.is_dir():
                raise DatasetLayoutError(f"CelebAMask-HQ folder not found: {folder}")
        self.crop_size = crop_size

        mapping_path = self.root / MAPPING_FILE
        self.orig_file: dict[int, str] = {}
        if mapping_path.is_file():
            for idx, values in read_table(mapping_path, 2, header_lines=1).items():
                self.orig_file[int(idx)] = values[1]
        partition_path = find_release_file(self.root, "list_eval_partition.txt")
        partition = read_table(partition_path, 1, 0) if partition_path else {}
        identity_path = find_release_file(self.root, "identity_CelebA.txt")
        identity = read_table(identity_path, 1, 0) if identity_path else {}

        indices = sorted(int(p.stem) for p in self.image_dir.glob("*.jpg") if p.stem.isdigit())
        if split is not None:
            if not (self.orig_file and partition):
                raise DatasetLayoutError(
                    f"selecting split {split!r} needs {MAPPING_FILE} and CelebA's list_eval_partition.txt "
                    f"in {self.root}"
                )
            indices = [
                k for k in indices
                if PARTITION_CODES.get(partition.get(self.orig_file.get(k, ""), ["?"])[0]) == split
            ]
        if not indices:
            raise DatasetLayoutError(f"no CelebA-HQ images{' in split ' + split if split else ''} in {self.image_dir}")
        self.indices = indices
        self.files = [f"{IMAGE_DIR}/{k}.jpg" for k in indices]
        self.identity = {
            k: identity[self.orig_file[k]][0] for k in indices if self.orig_file.get(k) in identity
        }

    def __len__(self) -> int:
        return len(self.indices)

    def part_paths(self, k: int) -> dict[str, Path]:
        folder = self.mask_dir / str(k // 2000)
        return {
            part: folder / f"{k:05d}_{part}.png"
            for part in labels.CELEBAMASK_HQ_PARTS
            if (folder / f"{k:05d}_{part}.png").is_file()
        }

    def load(self, index: int) -> RawSample:
        k = self.indices[index]
        image = io.load_rgb(self.image_dir / f"{k}.jpg")
        parts = self.part_paths(k)
        if not parts:
            raise DatasetLayoutError(f"no part masks for image {k} under {self.mask_dir / str(k // 2000)}")
        parsing = labels.from_celebamask_hq(merge_part_masks(parts))
        # Masks are 512x512 for 1024x1024 images: work in mask pixels, scale the photo box.
        scale = image.shape[1] / parsing.shape[1]
        landmarks = landmarks_from_parsing(parsing)
        if landmarks is None:
            box = crop.CropBox(0.0, 0.0, float(parsing.shape[1]))
        else:
            box = crop.crop_box_from_landmarks(landmarks)
        image_box = crop.CropBox(box.x0 * scale + (scale - 1) / 2, box.y0 * scale + (scale - 1) / 2, box.side * scale)
        return RawSample(
            image=crop.crop_resize(image, image_box, self.crop_size),
            parsing=crop.crop_resize(parsing, box, self.crop_size, nearest=True),
            landmarks=None if landmarks is None else box.to_crop(landmarks, self.crop_size),
            identity=self.identity.get(k),
            file=self.files[index],
        )
