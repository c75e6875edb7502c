"""Time ``collaface complete``: whole processes (start to exit), and one photo's stages.

A benchmark, not a test. Usage::

    python scripts/bench_complete.py process [--runs 3] [--folder-size 20] [--runtime onnx] [--json OUT.json]
    python scripts/bench_complete.py runtimes [--repeats 50] [--json OUT.json]
    python scripts/bench_complete.py sizes [--json OUT.json]
    python scripts/bench_complete.py stages [--photo PHOTO] [--model DIR | --ngf 32 --size 128]
                                            [--region eyes] [--repeats 10] [--threads N] [--json OUT.json]

``process`` runs ``collaface --help``, ``collaface --version``, one photo
(``examples/astronaut.jpg --region eyes``, shipped weights) and a folder of ``--folder-size``
copies of it as fresh processes, as a person would, and reports the median wall time of
``--runs`` runs of each with the load average around them.

``runtimes`` loads the shipped generator on torch and on onnxruntime, each in a fresh process,
and reports its batch-1 latency (:func:`collaface.timing.median_latency`, 1 thread) and the
process's peak resident memory (imports, weights, one warm-up and the timed runs).

``sizes`` builds two venvs from pip's cache, the light install (``.[complete]``) and the full one
(``torch==2.13.0`` then ``.[all]``), and reports the size of each one's site-packages.

``stages`` times one 1024x1024 photo in-process, split into decode (file -> upright RGB),
detect (file -> upright RGB), detect (mediapipe, whole photo), model (generator on the
face crop), blend (crop, upsample, Poisson blend, paste back), encode (write the result in the
photo's own format). Without ``--model`` a randomly initialised m_isd_star generator of width
``--ngf`` at ``--size`` px is timed (the speed does not depend on the weights). The photo
defaults to the shared CelebA-HQ sample 0; any photo is resized to 1024x1024 first. Medians over
``--repeats`` runs after two warm-up runs, on ``--threads`` threads (default 1, as ``collaface
complete``). The model alone is also timed by :func:`collaface.timing.median_latency`, exactly as
``collaface bench`` times the generator, so the two tools' figures can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from collaface.timing import THREADS, cpu_name, load_average, median_latency

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "astronaut.jpg"
DEFAULT_PHOTO = REPO.parent / "shared/faces/celebamaskhq_samples/images/0.jpg"
SIDE = 1024
STAGES = ("decode", "detect", "model", "blend", "encode")


# --------------------------------------------------------------------------- whole processes


def time_process(argv: list[str]) -> tuple[float, int, str]:
    """Run ``python -m collaface ARGV``. -> (wall seconds, exit code, last stderr line)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "collaface", *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return seconds, done.returncode, (done.stderr.strip().splitlines() or [""])[-1]


def process_bench(args: argparse.Namespace) -> dict:
    """Median wall time of each command over ``args.runs`` fresh processes."""
    extra = [*(["--model", str(args.model)] if args.model else []),
             *(["--runtime", args.runtime] if args.runtime else [])]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = scratch / "photos"
        folder.mkdir()
        for i in range(args.folder_size):
            shutil.copy(EXAMPLE, folder / f"photo_{i:02d}.jpg")
        commands = {
            "collaface --help": lambda run: ["--help"],
            "collaface --version": lambda run: ["--version"],
            "complete 1 photo": lambda run: ["complete", str(EXAMPLE), "--region", "eyes",
                                             "--out", str(scratch / f"one_{run}.png"), *extra],
            f"complete a folder of {args.folder_size}": lambda run: [
                "complete", str(folder), "--region", "eyes", "--out", str(scratch / f"out_{run}"),
                "--no-progress", *extra],
        }
        for name, argv in commands.items():
            load_before = load_average()
            runs = [time_process(argv(run)) for run in range(args.runs)]
            row = {"command": name, "median_s": statistics.median(r[0] for r in runs),
                   "runs_s": [round(r[0], 3) for r in runs], "exit_codes": sorted({r[1] for r in runs}),
                   "load_before": load_before, "load_after": load_average()}
            if any(r[1] for r in runs):
                row["error"] = next(r[2] for r in runs if r[1])
            rows.append(row)
            print(f"{name}: median {row['median_s']:.2f} s of {args.runs} runs {row['runs_s']}, "
                  f"exit {row['exit_codes']}, load {load_before:.2f} -> {row['load_after']:.2f}"
                  + (f" ({row['error']})" if "error" in row else ""), flush=True)
    return {"machine": cpu_name(), "runtime": args.runtime or "default", "runs": args.runs, "rows": rows}



# --------------------------------------------------------------------------- runtimes and install sizes


def runtime_worker(args: argparse.Namespace) -> dict:
    """(In a fresh process.) Batch-1 latency and peak RSS of the shipped generator on one runtime."""
    import numpy as np

    from collaface.inference.runtime import generator_input, load_engine
    from collaface.model_format import default_model_dir

    engine = load_engine(default_model_dir(), runtime=args.runtime, device="cpu", threads=THREADS)
    size = engine.size
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    hole = np.zeros((size, size), bool)
    hole[size // 3: size // 2, size // 5: 4 * size // 5] = True
    inputs = generator_input(crop, hole, rng)
    timed = median_latency(lambda: engine(*inputs), args.repeats)
    return {"runtime": engine.runtime, **timed, "threads": THREADS,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def runtimes_bench(args: argparse.Namespace) -> dict:
    rows = []
    for runtime in ("torch", "onnx"):
        done = subprocess.run([sys.executable, __file__, "runtime-worker", "--runtime", runtime,
                               "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{runtime}: batch-1 latency median {row['median_ms']:.1f} ms (min {row['min_ms']:.1f}) of "
              f"{row['repeats']} on {row['threads']} thread; peak RSS {row['peak_rss_mb']:.0f} MB; load "
              f"{row['load_before']:.2f} -> {row['load_after']:.2f}", flush=True)
    return {"machine": cpu_name(), "rows": rows}


def site_packages_mb(python: Path) -> float:
    """Size of a venv's site-packages in MB."""
    folder = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def sizes_bench(args: argparse.Namespace) -> dict:
    installs = {"light (.[complete])": [[f"{REPO}[complete]"]],
                "full (torch==2.13.0, then .[all])": [["torch==2.13.0"], [f"{REPO}[all]"]]}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for i, (name, steps) in enumerate(installs.items()):
            home = Path(scratch) / f"venv{i}"
            subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
            for packages in steps:
                subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "-q", *packages], check=True,
                               env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
            rows.append({"install": name, "site_packages_mb": site_packages_mb(home / "bin" / "python")})
            print(f"{name}: {rows[-1]['site_packages_mb']:.0f} MB", flush=True)
    return {"machine": cpu_name(), "rows": rows}


# --------------------------------------------------------------------------- one photo's stages


def random_model(folder: Path, ngf: int, size: int) -> Path:
    """Export a randomly initialised m_isd_star generator (width ngf, side size) to folder."""
    from collaface import config, model_format
    from collaface.models.build import build_generator

    cfg = config.load_config("m_isd_star", [f"model.ngf={ngf}", f"data.image_size={size}"])
    state = {"config": config.to_dict(cfg), "step": 0, "generator": build_generator(cfg).state_dict()}
    return model_format.export_generator(state, folder)


def photo_at_1024(source: Path, folder: Path) -> Path:
    """The photo itself when it is 1024x1024, else a 1024x1024 JPEG resized from it."""
    import cv2

    from collaface.data import io
    from collaface.inference.files import save_image

    image = io.load_rgb(source)
    if image.shape[:2] == (SIDE, SIDE):
        return source
    resized = cv2.resize(image, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
    path = folder / f"{source.stem}_{SIDE}.jpg"
    save_image(path, resized)
    return path


def time_once(completer, photo: Path, out: Path, region: str) -> dict[str, float]:
    from collaface.data import io
    from collaface.inference.files import save_image

    start = time.perf_counter()
    image = io.load_rgb(photo)
    decode = time.perf_counter() - start
    completion = completer.complete(image, region=region)
    start = time.perf_counter()
    save_image(out, completion.image, source=photo)
    encode = time.perf_counter() - start
    return {"decode": decode, **completion.timings, "encode": encode}


def stage_bench(args: argparse.Namespace) -> dict:
    """Median seconds per stage over ``args.repeats`` runs after two warm-up runs, and the
    model's own median latency (:func:`median_latency`, as ``collaface bench``)."""
    import numpy as np

    from collaface.inference.engine import FaceCompleter
    from collaface.inference.runtime import generator_input

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = args.model or random_model(scratch / "model", args.ngf, args.size)
        photo = photo_at_1024(args.photo, scratch)
        with FaceCompleter(model, device="cpu", runtime=args.runtime, threads=args.threads) as completer:
            out = scratch / f"completed{photo.suffix}"
            for _ in range(2):
                time_once(completer, photo, out, args.region)
            runs = [time_once(completer, photo, out, args.region) for _ in range(args.repeats)]
            cfg, size = completer.cfg, completer.size
            inputs = generator_input(np.zeros((size, size, 3), np.uint8), np.zeros((size, size), bool),
                                     np.random.default_rng(0))
            model_alone = median_latency(lambda: completer.engine(*inputs), args.repeats)
            runtime = completer.engine.runtime
    medians = {stage: statistics.median(run[stage] for run in runs) for stage in STAGES}
    medians["total"] = statistics.median(sum(run[s] for s in STAGES) for run in runs)
    print(f"photo: {args.photo} at {SIDE}x{SIDE} ({photo.suffix[1:]}); region {args.region}; model "
          f"{args.model or 'random'} (ngf {cfg.model.ngf}, {cfg.data.image_size} px, "
          f"tasks {''.join(cfg.model.tasks)}); {runtime} runtime, {args.threads} thread(s)")
    print(f"median of {args.repeats} runs, milliseconds:")
    print("| " + " | ".join((*STAGES, "total")) + " |")
    print("|" + "---:|" * (len(STAGES) + 1))
    print("| " + " | ".join(f"{medians[s] * 1000:.1f}" for s in (*STAGES, "total")) + " |")
    print(f"model alone (batch 1, as collaface bench): median {model_alone['median_ms']:.1f} ms of "
          f"{model_alone['repeats']} after {model_alone['warmup']} warm-up runs; load "
          f"{model_alone['load_before']:.2f} -> {model_alone['load_after']:.2f}")
    return {"machine": cpu_name(), "seconds": medians, "repeats": args.repeats, "photo": str(args.photo),
            "ngf": cfg.model.ngf, "image_size": cfg.data.image_size, "runtime": runtime, "threads": args.threads,
            "model_alone": model_alone}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("process", help="whole collaface processes, start to exit")
    p.add_argument("--runs", type=int, default=3, help="processes per command (default 3)")
    p.add_argument("--folder-size", type=int, default=20, help="photos in the folder run (default 20)")
    p.add_argument("--model", type=Path, help="model folder (default: the shipped weights)")
    p.add_argument("--runtime", help="passed to collaface complete --runtime")
    p.set_defaults(func=process_bench)
    p = sub.add_parser("runtimes", help="batch-1 latency and peak RSS on torch and on onnxruntime")
    p.add_argument("--repeats", type=int, default=50, help="timed runs per runtime (default 50)")
    p.set_defaults(func=runtimes_bench)
    p = sub.add_parser("runtime-worker", help="(internal) one runtime's figures, in a fresh process")
    p.add_argument("--runtime", required=True)
    p.add_argument("--repeats", type=int, default=50)
    p.set_defaults(func=lambda args: print(json.dumps(runtime_worker(args))))
    p = sub.add_parser("sizes", help="site-packages of the light and the full install (builds two venvs)")
    p.set_defaults(func=sizes_bench)
    p = sub.add_parser("stages", help="one 1024x1024 photo's stages, in this process")
    p.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="photo to complete (resized to 1024x1024)")
    p.add_argument("--model", type=Path, help="exported model folder (default: a random generator)")
    p.add_argument("--ngf", type=int, default=32, help="width of the random generator (default 32)")
    p.add_argument("--size", type=int, default=128, help="side of the random generator (default 128)")
    p.add_argument("--region", default="eyes", help="the hole (default eyes)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs (default 10)")
    p.add_argument("--threads", type=int, default=THREADS, help=f"generator threads (default {THREADS})")
    p.add_argument("--runtime", default="auto", help="generator runtime (default auto)")
    p.set_defaults(func=stage_bench)
    for p in sub.choices.values():
        p.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(f"machine: {cpu_name()}; load average {load_average():.2f}", flush=True)
    report = args.func(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
