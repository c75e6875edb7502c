"""How much hole PSNR does a sharp generator's extra detail cost, and could any split of the work
between a sharp and a reconstruction-only (blurry) generator pass the sanity bar of the default
model (higher hole PSNR *and* sharper than the reconstruction-only one)?

For each mask condition, on the first LIMIT faces of a split (masks as ``collaface evaluate``):

- the hole's squared error of every model, split into a low band (the error blurred by a
  Gaussian of sigma ``--band-sigma`` px) and the rest (high band);
- an **oracle hybrid** per sigma: the reconstruction-only model's low band plus the sharp model's
  high band, ``G_s * recon + (sharp - G_s * sharp)``. Small sigma keeps most of the sharp model;
  large sigma most of the recon model. It has the recon model's coarse shapes and colours at no
  training cost, so no single generator trained in the same time is expected to do better: if no
  sigma gives both more hole PSNR and clearly more sharpness than the recon model, the sanity bar
  asks for more than moving detail between bands can give.

    python scripts/frequency_split.py SHARP_MODEL RECON_MODEL [--split val --limit 128]

Prints a markdown table (hole PSNR in dB and hole sharpness, geometric mean, as the evaluation).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from collaface import metrics
from collaface.config import EvalConfig
from collaface.contracts import composite
from collaface.evaluation.conditions import OCCLUSION_CONDITIONS, condition_dataset, evaluation_data_config
from collaface.evaluation.scoring import load_models

DATA = "work/prepared/celeba_aligned:work/prepared/celeba_crops"


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders. (B, C, H, W) -> same shape."""
    radius = max(1, int(3 * sigma))
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    taps = taps / taps.sum()
    channels = image.shape[1]
    padded = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(rows, taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sharp", help="the sharper model (exported dir, run dir or checkpoint)")
    parser.add_argument("recon", help="the reconstruction-only model")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=128)
    parser.add_argument("--conditions", nargs="+", default=list(OCCLUSION_CONDITIONS))
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.7, 1.0, 1.5, 2.5, 4.0])
    parser.add_argument("--band-sigma", type=float, default=1.5)
    args = parser.parse_args()

    sharp, recon = load_models([args.sharp, args.recon], ["sharp", "recon"])
    data_cfg = evaluation_data_config(sharp.cfg, args.data, None)
    columns = ["sharp", "recon"] + [f"hybrid s={s:g}" for s in args.sigmas]
    print(f"| condition | {' | '.join(columns)} |")
    print("|---" * (len(columns) + 1) + "|")
    for condition in args.conditions:
        dataset = condition_dataset(data_cfg, args.split, condition, EvalConfig().seed)
        loader = DataLoader(Subset(dataset, range(min(args.limit, len(dataset)))), batch_size=32)
        scores: dict[str, dict[str, list[np.ndarray]]] = {c: {"psnr": [], "sharp": [], "low": [], "high": []}
                                                         for c in columns}
        for batch in loader:
            image, mask = batch["image"], batch["mask"]
            target = metrics.to_255(image)
            with torch.no_grad():
                filled = {m.label: (composite(m.generator(batch["masked"], mask)["i"].float(), image, mask) + 1) * 127.5
                          for m in (sharp, recon)}
            for sigma in args.sigmas:
                hybrid = gaussian_blur(filled["recon"], sigma) + filled["sharp"] - gaussian_blur(filled["sharp"], sigma)
                filled[f"hybrid s={sigma:g}"] = hybrid * mask + target * (1 - mask)
            hole_values = mask.sum((1, 2, 3)) * 3
            for column in columns:
                completed = filled[column].round().clamp(0, 255)
                error = (completed - target) * mask
                low = gaussian_blur(error, args.band_sigma)
                scores[column]["psnr"].append(metrics.psnr(completed, target, mask).numpy())
                scores[column]["sharp"].append(metrics.sharpness_ratio(completed, target, mask).numpy())
                scores[column]["low"].append(((low ** 2 * mask).sum((1, 2, 3)) / hole_values).numpy())
                scores[column]["high"].append((((error - low) ** 2 * mask).sum((1, 2, 3)) / hole_values).numpy())
        cells = []
        for column in columns:
            s = {k: np.concatenate(v) for k, v in scores[column].items()}
            cells.append(f"{metrics.cap_psnr(s['psnr']).mean():.2f} / {np.exp(np.log(s['sharp']).mean()):.2f} "
                         f"(MSE {s['low'].mean():.0f}+{s['high'].mean():.0f})")
        print(f"| {condition} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
