"""Hole PSNR of `collaface complete` on tilted faces, with and without straightening the crop.

Each held-out aligned CelebA test photo (upscaled 2x) is turned by every angle (reflected
border); its eyes and mouth regions, placed on the upright photo, are turned with it, and the
photo pipeline (detect, crop, generate, paste back) completes them once with upright crops for
faces tilted beyond STRAIGHTEN_BEYOND degrees and once with the paper's axis-aligned crop.
Compare the two crops at the same angle: the turn's resampling smooths the photo, so the levels
of different angles are not comparable.

    python scripts/roll_check.py --photos 40
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from collaface.data import io
from collaface.inference.engine import CompletionError, FaceCompleter, NoFaceError

REGIONS = ("eyes", "mouth")
MODES = ("straightened", "axis-aligned")


def turn(image: np.ndarray, degrees: float) -> np.ndarray:
    """``image`` turned counter-clockwise as displayed, canvas grown to fit; a photo's new border
    is reflected, a (H, W) mask's is 0."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width, new_height = int(height * sin + width * cos), int(height * cos + width * sin)
    matrix[:, 2] += [new_width / 2 - width / 2, new_height / 2 - height / 2]
    if image.ndim == 2:
        return cv2.warpAffine(image, matrix, (new_width, new_height), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.warpAffine(image, matrix, (new_width, new_height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def hole_psnr(result: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    mse = float(((result[hole].astype(np.float64) - truth[hole]) ** 2).mean())
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", default="../shared/faces/celeba_aligned", help="the shared aligned CelebA folder")
    parser.add_argument("--photos", type=int, default=40, help="first N test-partition photos")
    parser.add_argument("--angles", type=float, nargs="+", default=[0, 15, 30, 45, 90])
    parser.add_argument("--model", help="model folder/run/checkpoint (default: the shipped weights)")
    args = parser.parse_args()

    faces = Path(args.faces)
    with open(faces / "meta.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["partition"] == "test"][: args.photos]
    scores = {(mode, a, r): [] for mode in MODES for a in args.angles for r in REGIONS}
    missed = dict.fromkeys(args.angles, 0)
    for mode in MODES:
        with FaceCompleter(args.model, device="cpu", straighten=mode == MODES[0]) as completer:
            for row in rows:
                photo = io.load_rgb(faces / "images" / row["file"])
                photo = cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
                try:
                    holes = {r: completer.complete(photo, region=r, face=0).hole for r in REGIONS}
                except NoFaceError:
                    continue
                for angle in args.angles:
                    turned = turn(photo, angle)
                    for region, hole in holes.items():
                        turned_hole = turn(hole.astype(np.uint8) * 255, angle) > 127
                        try:
                            result = completer.complete(turned, hole=turned_hole, face=0)
                        except (NoFaceError, CompletionError):
                            missed[angle] += mode == MODES[0] and region == REGIONS[0]
                            continue
                        scores[(mode, angle, region)].append(hole_psnr(result.image, turned, turned_hole))
    print(f"{len(rows)} test photos; hole PSNR (dB), mean over the photos completed at that angle")
    print("| roll (deg) | photos | " + " | ".join(f"{r}: straightened | {r}: axis-aligned" for r in REGIONS) + " |")
    print("|---" * (2 + 2 * len(REGIONS)) + "|")
    for angle in args.angles:
        cells = [f"{np.mean(scores[(mode, angle, r)]):.2f}" for r in REGIONS for mode in MODES]
        print(f"| {angle:g} | {len(rows) - missed[angle]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
