"""End-to-end time of ``collaface complete`` on one 1024x1024 photo, split into its stages.

A benchmark, not a test. Usage::

    python scripts/bench_complete.py [--photo PHOTO] [--model DIR | --ngf 32 --size 128]
                                     [--region eyes] [--repeats 10] [--threads N] [--json OUT.json]

Stages: decode (file -> upright RGB), detect (mediapipe, whole photo), model (generator on the
face crop), blend (crop, upsample, Poisson blend, paste back), encode (write the result in the
photo's own format). Without ``--model`` a randomly initialised m_isd_star generator of width
``--ngf`` at ``--size`` px is timed (the speed does not depend on the weights). The photo
defaults to the shared CelebA-HQ sample 0; any photo is resized to 1024x1024 first. Medians over
``--repeats`` runs after two warm-up runs. On a busy machine, ``--threads 1`` avoids torch's
threads waiting for each other.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import torch

from collaface import config
from collaface.data import io
from collaface.data.masks import REGIONS
from collaface.inference import FaceCompleter, save_image
from collaface.models.build import build_generator
from collaface.training import checkpoint
from collaface.training.hardware import cpu_description

DEFAULT_PHOTO = Path(__file__).resolve().parents[2] / "shared/faces/celebamaskhq_samples/images/0.jpg"
SIDE = 1024
STAGES = ("decode", "detect", "model", "blend", "encode")


def random_model(folder: Path, ngf: int, size: int) -> Path:
    """Export a randomly initialised m_isd_star generator (width ngf, side size) to folder."""
    cfg = config.load_config("m_isd_star", [f"model.ngf={ngf}", f"data.image_size={size}"])
    state = {"config": config.to_dict(cfg), "step": 0, "generator": build_generator(cfg).state_dict()}
    return checkpoint.export_generator(state, folder)


def photo_at_1024(source: Path, folder: Path) -> Path:
    """The photo itself when it is 1024x1024, else a 1024x1024 JPEG resized from it."""
    image = io.load_rgb(source)
    if image.shape[:2] == (SIDE, SIDE):
        return source
    resized = cv2.resize(image, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
    path = folder / f"{source.stem}_{SIDE}.jpg"
    save_image(path, resized)
    return path


def time_once(completer: FaceCompleter, photo: Path, out: Path, region: str) -> dict[str, float]:
    start = time.perf_counter()
    image = io.load_rgb(photo)
    decode = time.perf_counter() - start
    completion = completer.complete(image, region=region)
    start = time.perf_counter()
    save_image(out, completion.image, source=photo)
    encode = time.perf_counter() - start
    return {"decode": decode, **completion.timings, "encode": encode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="photo to complete (resized to 1024x1024)")
    parser.add_argument("--model", type=Path, help="exported model folder (default: a random generator)")
    parser.add_argument("--ngf", type=int, default=32, help="width of the random generator (default 32)")
    parser.add_argument("--size", type=int, default=128, help="side of the random generator (default 128)")
    parser.add_argument("--region", choices=REGIONS, default="eyes", help="the hole (default eyes)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs (default 10)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = args.model or random_model(scratch / "model", args.ngf, args.size)
        photo = photo_at_1024(args.photo, scratch)
        with FaceCompleter(model, device="cpu") as completer:
            out = scratch / f"completed{photo.suffix}"
            for _ in range(2):
                time_once(completer, photo, out, args.region)
            runs = [time_once(completer, photo, out, args.region) for _ in range(args.repeats)]
            cfg = completer.cfg
    medians = {stage: statistics.median(run[stage] for run in runs) for stage in STAGES}
    medians["total"] = statistics.median(sum(run[s] for s in STAGES) for run in runs)
    print(f"machine: {cpu_description()}, {torch.get_num_threads()} torch threads")
    print(f"photo: {args.photo} at {SIDE}x{SIDE} ({photo.suffix[1:]}); region {args.region}; model "
          f"{args.model or 'random'} (ngf {cfg.model.ngf}, {cfg.data.image_size} px, tasks {''.join(cfg.model.tasks)})")
    print(f"median of {args.repeats} runs, milliseconds:")
    print("| " + " | ".join((*STAGES, "total")) + " |")
    print("|" + "---:|" * (len(STAGES) + 1))
    print("| " + " | ".join(f"{medians[s] * 1000:.1f}" for s in (*STAGES, "total")) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seconds": medians, "repeats": args.repeats, "photo": str(args.photo),
                                         "ngf": cfg.model.ngf, "image_size": cfg.data.image_size}, indent=2) + "\n")


if __name__ == "__main__":
    main()
