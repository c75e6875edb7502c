"""`collaface complete` on held-out faces with occlusion holes, at other framings (issue 20).

Faces: the ``split=test`` rows of a prepared dataset's manifest (``collaface prepare``; its
landmarks, mapped back to the source photos under ``--photos``), evenly spread. Holes: the
paper's occlusions O1-O6 placed from those landmarks, greyed out (128) in the photo.

``failures``: completes every face with each hole greyed, as a folder (``complete DIR --masks MDIR
--out ODIR``), with the source photo as it is and at tight reframings (face ``--tight`` x the crop
rule's size, ``FRAMED_SIDE`` px: faces that fill the frame); prints
the failure rate per condition and the reasons from failures.csv. It uses only the API that
main had before issue 20, so the same command measures the old code with PYTHONPATH at its source.

``framing``: reframes each face so that it is 0.6, 0.8, 1.0, 1.25, 1.5 x the crop rule's size
(``FRAMED_SIDE`` px; beyond the source photo the border is replicated), completes each hole with
face detection and with ``--no-detect``, and prints the mean hole PSNR against the original with
OpenCV's Telea inpainting as the baseline.

    PYTHONPATH=src python scripts/robustness.py failures --faces 150
    PYTHONPATH=src python scripts/robustness.py framing --faces 60 [--model DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from collaface.data import io
from collaface.data.crop import CROP_SCALE, CropBox, crop_box_from_landmarks, crop_resize
from collaface.data.masks import occlusion_mask
from collaface.data.sources.prepared import LANDMARK_COLUMNS, read_manifest
from collaface.inference.batch import complete_folder
from collaface.inference.engine import CompletionError, FaceCompleter

CONDITIONS = ("O1", "O2", "O3", "O4", "O5", "O6")
SCALES = (0.6, 0.8, 1.0, 1.25, 1.5)   # face size / the crop rule's
TIGHT_SCALES = (1.25, 1.5)
FRAMED_SIDE = 200                     # px of a reframed photo
GREY = 128
REASONS = (("no face found", "no face"), ("outside", "hole outside the crop"), ("covers", "hole too large"))


def test_faces(prepared: Path, photos: Path, count: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``count`` split=test faces of a prepared dataset, evenly spread over the manifest:
    (name, (H, W, 3) uint8 source photo, (5, 2) landmarks in its pixels)."""
    size = json.loads((prepared / "prepare.json").read_text())["size"]
    rows = [row for row in read_manifest(prepared / "manifest.csv") if row["split"] == "test"]
    if not rows:
        sys.exit(f"{prepared / 'manifest.csv'}: no split=test rows")
    picked = [rows[i] for i in np.linspace(0, len(rows) - 1, min(count, len(rows))).round().astype(int)]
    faces = []
    for row in picked:
        box = CropBox(float(row["x0"]), float(row["y0"]), float(row["side"]))
        crop_points = np.array([float(row[c]) for c in LANDMARK_COLUMNS]).reshape(5, 2)
        image, _ = io.load_photo(photos / row["source"])
        faces.append((Path(row["source"]).stem, image, box.to_source(crop_points, size)))
    return faces


def reframed(image: np.ndarray, landmarks: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The face at ``scale`` x the crop rule's size in a ``FRAMED_SIDE`` px square, and its (5, 2)
    landmarks there."""
    box = crop_box_from_landmarks(landmarks, CROP_SCALE / scale)
    return crop_resize(image, box, FRAMED_SIDE), box.to_crop(landmarks, FRAMED_SIDE)


def holed(image: np.ndarray, landmarks: np.ndarray, condition: str) -> tuple[np.ndarray, np.ndarray]:
    """(the photo with the hole greyed, (H, W) bool hole of ``condition``)."""
    hole = occlusion_mask(condition, landmarks, image.shape[:2]) > 0
    grey = image.copy()
    grey[hole] = GREY
    return grey, hole


def reason_kind(reason: str) -> str:
    return next((kind for key, kind in REASONS if key in reason), "other")


def run_failures(args: argparse.Namespace) -> dict:
    faces = test_faces(args.prepared, args.photos, args.faces)
    framings = {} if args.skip_as_is else {"as is": lambda image, points: (image, points)}
    for scale in args.tight:
        framings[f"tight ({scale}x)"] = lambda image, points, scale=scale: reframed(image, points, scale)
    report = {"faces": len(faces), "framings": {}}
    with FaceCompleter(args.model, device="cpu") as completer, tempfile.TemporaryDirectory() as tmp:
        for number, (framing, frame) in enumerate(framings.items()):
            root = Path(tmp) / str(number)
            for folder in ("photos", "masks"):
                (root / folder).mkdir(parents=True)
            for name, image, points in faces:
                image, points = frame(image, points)
                for condition in CONDITIONS:
                    grey, hole = holed(image, points, condition)
                    io.save_rgb(root / "photos" / f"{name}_{condition}.png", grey)
                    mask = Image.fromarray(hole.astype(np.uint8) * 255)
                    io.save_picture(root / "masks" / f"{name}_{condition}.png", mask)
            start = time.perf_counter()
            summary = complete_folder(completer, root / "photos", root / "out", masks=root / "masks",
                                      progress=False)
            with open(root / "out" / "failures.csv", newline="") as f:
                failures = list(csv.DictReader(f))
            per_condition = Counter(row["file"].rsplit("_", 1)[1].split(".")[0] for row in failures)
            report["framings"][framing] = {
                "photos": len(faces) * len(CONDITIONS), "failed": summary.failed,
                "per_condition": {c: per_condition[c] for c in CONDITIONS},
                "reasons": dict(Counter(reason_kind(row["reason"]) for row in failures)),
                "one_reason_per_file": len({row["file"] for row in failures}) == len(failures),
                "examples": [row["reason"] for row in failures[:3]],
                "seconds": round(time.perf_counter() - start, 1)}
    lines = ["| framing | " + " | ".join(CONDITIONS) + " | all | reasons |", "|---" * (len(CONDITIONS) + 3) + "|"]
    for framing, result in report["framings"].items():
        rates = [f"{result['per_condition'][c] / len(faces):.1%}" for c in CONDITIONS]
        reasons = ", ".join(f"{kind} {n}" for kind, n in result["reasons"].items()) or "-"
        overall = result["failed"] / result["photos"]
        lines.append(f"| {framing} | " + " | ".join(rates) + f" | {overall:.1%} | {reasons} |")
    report["table"] = "\n".join(lines)
    return report


def hole_psnr(result: np.ndarray, original: np.ndarray, hole: np.ndarray) -> float:
    """PSNR (dB) over the hole's pixels and channels of (H, W, 3) uint8 images."""
    squared = (result.astype(np.float64) - original.astype(np.float64))[hole] ** 2
    return float(10 * np.log10(255.0**2 / max(squared.mean(), 1e-10)))


def run_framing(args: argparse.Namespace) -> dict:
    import cv2

    from collaface.blending import inpaint_opencv

    faces = test_faces(args.prepared, args.photos, args.faces)
    modes = {mode: mode == "no-detect" for mode in args.modes}
    scores = {(scale, mode): [] for scale in SCALES for mode in (*modes, "telea")}
    failed = Counter()
    start = time.perf_counter()
    with FaceCompleter(args.model, device="cpu") as completer:
        for _, image, points in faces:
            for scale in SCALES:
                framed, framed_points = reframed(image, points, scale)
                for condition in CONDITIONS:
                    grey, hole = holed(framed, framed_points, condition)
                    results = {"telea": inpaint_opencv(framed, hole, cv2.INPAINT_TELEA)}
                    for mode, no_detect in modes.items():
                        try:
                            results[mode] = completer.complete(grey, hole=hole, no_detect=no_detect).image
                        except CompletionError:
                            failed[(scale, mode)] += 1
                    if len(results) == len(modes) + 1:  # means over the holes every method completed
                        for method, result in results.items():
                            scores[(scale, method)].append(hole_psnr(result, framed, hole))
    means = {key: float(np.mean(values)) for key, values in scores.items()}
    report = {"faces": len(faces), "conditions": list(CONDITIONS), "seconds": round(time.perf_counter() - start, 1),
              "model": str(completer.model_path), "psnr_hole": {f"{s} {m}": v for (s, m), v in means.items()},
              "failed": {f"{s} {m}": n for (s, m), n in failed.items()}}
    lines = ["| face size / rule | " + " | ".join(f"{s}x" for s in SCALES) + " | spread |",
             "|---" * (len(SCALES) + 2) + "|"]
    for method in (*modes, "telea"):
        row = [means[(s, method)] for s in SCALES]
        lines.append(f"| {method} | " + " | ".join(f"{v:.2f}" for v in row) + f" | {max(row) - min(row):.2f} |")
    for mode in modes:
        gains = [means[(s, mode)] - means[(s, "telea")] for s in SCALES]
        lines.append(f"| {mode} - telea | " + " | ".join(f"{g:+.2f}" for g in gains) + f" | min {min(gains):+.2f} |")
    report["table"] = "\n".join(lines)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("measure", choices=("failures", "framing"))
    parser.add_argument("--prepared", type=Path, default=Path("/work/prepared/celeba_crops"),
                        help="prepared dataset (manifest.csv, prepare.json) whose split=test faces are used")
    parser.add_argument("--photos", type=Path, default=Path("../shared/faces/celeba_crops"),
                        help="the folder the prepared dataset was made from (manifest sources are relative to it)")
    parser.add_argument("--faces", type=int, default=150, help="number of test faces")
    parser.add_argument("--tight", type=float, nargs="*", default=TIGHT_SCALES,
                        help="failures: the tight reframings, face size / the crop rule's")
    parser.add_argument("--skip-as-is", action="store_true", help="failures: only the tight reframings")
    parser.add_argument("--modes", nargs="+", choices=("detect", "no-detect"), default=["detect", "no-detect"],
                        help="framing: complete with face detection, with --no-detect, or both")
    parser.add_argument("--model", help="model folder (default: the shipped weights)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    report = run_failures(args) if args.measure == "failures" else run_framing(args)
    print(report["table"])
    print(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
