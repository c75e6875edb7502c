"""Training-loader throughput: samples/s at 128 px with augmentation, parsing, heatmaps and masks.

A benchmark, not a test. Usage (after ``collaface prepare``)::

    python scripts/bench_loader.py work/prepared/celeba_crops [--workers 2] [--batches 60]

Prints the machine, then samples/s over the timed batches (the first batches, which start
the worker processes, are excluded and reported separately).
"""

from __future__ import annotations

import argparse
import time

import torch

from collaface.config import load_config
from collaface.data.dataset import build_dataset, build_loader
from collaface.training.hardware import cpu_description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="prepared dataset folder")
    parser.add_argument("--preset", default="m_isd_star")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=60, help="timed batches")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first batches")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides")
    args = parser.parse_args()

    cfg = load_config(args.preset, [f"data.root={args.data}", *args.overrides])
    dataset = build_dataset(cfg.data, "train", require=tuple(cfg.model.tasks))
    loader = build_loader(dataset, args.batch_size, shuffle=True, num_workers=args.workers, seed=0, drop_last=True)
    print(f"machine: {cpu_description()}, {torch.get_num_threads()} torch threads; workers={args.workers}; "
          f"{len(dataset)} faces; image_size={cfg.data.image_size}; masks={cfg.data.masks.kinds}")
    start = time.perf_counter()
    seen = 0
    epoch = 0
    timed_start = None
    while seen < args.warmup + args.batches:
        dataset.set_epoch(epoch)
        for _batch in loader:
            seen += 1
            if seen == args.warmup:
                warm = time.perf_counter() - start
                timed_start = time.perf_counter()
            if seen >= args.warmup + args.batches:
                break
        epoch += 1
    elapsed = time.perf_counter() - timed_start
    rate = args.batches * args.batch_size / elapsed
    print(f"warm-up: {args.warmup} batches in {warm:.2f} s")
    print(f"loader: {rate:.1f} samples/s ({args.batches} batches of {args.batch_size}, {elapsed:.2f} s)")


if __name__ == "__main__":
    main()
