"""Sample grids on fixed validation faces: what a person looks at to judge a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from collaface.contracts import composite
from collaface.data import io
from collaface.data.targets import heatmaps_to_landmarks, heatmaps_visible, onehot_to_parsing
from collaface.data.transforms import to_uint8_image
from collaface.data.visualize import contact_sheet, draw_landmarks, legend, overlay_parsing
from collaface.models.build import GanModel

COLUMNS = ("masked input", "generator output", "pasted result", "parsing", "landmarks", "original")


@torch.no_grad()
def sample_grid(model: GanModel, batch: dict[str, torch.Tensor]) -> np.ndarray:
    """One row per face: masked input | G output | pasted result | parsing overlay on the result
    | predicted landmarks on the result (only points whose heatmap peaks) | original. Columns of
    tasks that are off show the original instead. The generator runs in eval mode (as at
    inference). -> (H, W, 3) uint8."""
    was_training = model.generator.training
    model.generator.eval()
    try:
        outputs = model.generator(batch["masked"], batch["mask"])
    finally:
        model.generator.train(was_training)
    original = to_uint8_image(batch["image"].float().cpu())
    masked = to_uint8_image(batch["masked"].float().cpu())
    if "i" in outputs:
        raw = to_uint8_image(outputs["i"].float().cpu())
        pasted = to_uint8_image(composite(outputs["i"], batch["image"], batch["mask"]).float().cpu())
    else:
        raw, pasted = original, original
    parsing = onehot_to_parsing(outputs["s"].float()).cpu().numpy() if "s" in outputs else None
    points = None
    if "d" in outputs:  # points whose heatmap has no peak are not drawn
        heatmaps = outputs["d"].float()
        decoded = heatmaps_to_landmarks(heatmaps)
        points = torch.where(heatmaps_visible(heatmaps)[..., None], decoded, torch.nan).cpu().numpy()
    tiles = []
    for k in range(len(original)):
        tiles += [
            masked[k],
            raw[k],
            pasted[k],
            overlay_parsing(pasted[k], parsing[k].astype(np.int64)) if parsing is not None else original[k],
            draw_landmarks(pasted[k], points[k]) if points is not None else original[k],
            original[k],
        ]
    sheet = contact_sheet(tiles, columns=len(COLUMNS))
    return np.concatenate([sheet, legend(sheet.shape[1])], axis=0)


def write_sample_grid(model: GanModel, batch: dict[str, torch.Tensor], path: Path) -> Path:
    io.save_rgb(path, sample_grid(model, batch))
    return path
