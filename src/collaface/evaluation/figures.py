"""The report's figures: bar charts per metric, the qualitative grid and the median-crop sheet."""

from __future__ import annotations

import io

import cv2
import numpy as np

from collaface.data.visualize import contact_sheet
from collaface.evaluation.baselines import BASELINES
from collaface.evaluation.scoring import CROP_SIDE, IMAGE_METRICS, Evaluation

TILE_MIN = 128      # grid tiles are upscaled (nearest) to at least this side


def _upscale(tile: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(tile, (side, side), interpolation=cv2.INTER_NEAREST) if tile.shape[0] != side else tile


def bars_png(evaluation: Evaluation, summary: dict, name: str) -> bytes:
    """Bar chart of metric ``name`` per condition and method, 95% CIs as error bars. -> PNG bytes."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    spec = IMAGE_METRICS[name]
    conditions = list(summary["table1"])
    methods = evaluation.methods
    fig = Figure(figsize=(max(6.0, 0.9 * len(conditions) * max(1, len(methods)) / 3), 3.6), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(methods)
    palette = colormaps["tab10" if len(methods) <= 10 else "tab20"]  # one distinct colour per method
    for k, method in enumerate(methods):
        stats = [summary["table1"][c][method][name] for c in conditions]
        values = np.array([s["value"] for s in stats], np.float64)
        lows = np.array([s["low"] for s in stats], np.float64)
        highs = np.array([s["high"] for s in stats], np.float64)
        errors = None if np.isnan(lows).any() else [list(values - lows), list(highs - values)]
        ax.bar(np.arange(len(conditions)) + (k - (len(methods) - 1) / 2) * width, values, width, yerr=errors,
               capsize=2, color=palette(k), label=BASELINES.get(method, method))
    if spec.geometric:
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(np.arange(len(conditions)), conditions, rotation=30 if len(conditions) > 6 else 0)
    ax.set_ylabel(f"{spec.title.split(' (')[0]} ({spec.unit})")
    if spec.higher_is_better is not None:
        ax.set_title(f"{spec.title}: {'higher' if spec.higher_is_better else 'lower'} is better", fontsize=10)
    else:
        ax.set_title(spec.title, fontsize=10)
    finite = np.array([summary["table1"][c][m][name]["value"] for c in conditions for m in methods], np.float64)
    if name in ("ssim", "psnr", "psnr_hole") and np.isfinite(finite).any():
        ax.set_ylim(max(0.0, np.nanmin(finite) * 0.9), np.nanmax(finite) * 1.02 if name != "ssim" else 100)
    ax.legend(fontsize=7, ncols=min(4, len(methods)))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _text_tile(text: str, height: int, width: int) -> np.ndarray:
    tile = np.full((height, width, 3), 255, np.uint8)
    scale = 0.4
    for k, line in enumerate(text.split("\n")):
        cv2.putText(tile, line, (3, 14 + 14 * k), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def qualitative_grid(evaluation: Evaluation) -> np.ndarray:
    """Header row, then per condition: label | input | each method | ground truth. -> uint8 (H, W, 3)."""
    side = max(TILE_MIN, evaluation.image_size)
    columns = ["input", *evaluation.methods, "ground truth"]
    titles = [BASELINES.get(c, c).replace(" (OpenCV)", "\n(OpenCV)") for c in columns]
    tiles = [_text_tile("", 32, side)] + [_text_tile(t, 32, side) for t in titles]
    header = contact_sheet(tiles, columns=len(tiles))
    body = []
    for condition, row in evaluation.grid:
        body += [_text_tile(condition, side, side)] + [_upscale(row[c], side) for c in columns]
    return np.concatenate([header, contact_sheet(body, columns=len(columns) + 1)], axis=0)


def median_crop_sheet(evaluation: Evaluation) -> np.ndarray:
    """Rows = methods, columns = conditions; each cell: completion crop | original crop, with the
    face's hole sharpness. -> uint8 (H, W, 3)."""
    conditions = list(evaluation.median_crops)
    methods = evaluation.methods
    label_width = 2 * CROP_SIDE
    header = contact_sheet([_text_tile(text, 20, label_width) for text in ("", *conditions)],
                           columns=len(conditions) + 1)
    tiles = []
    for method in methods:
        tiles.append(_text_tile(BASELINES.get(method, method).replace(" (OpenCV)", "\n(OpenCV)"), CROP_SIDE + 20,
                                label_width))
        for condition in conditions:
            completed, original, score = evaluation.median_crops[condition][method]
            pair = np.concatenate([completed, original], axis=1)
            tiles.append(np.concatenate([pair, _text_tile(f"sharpness {score:.2f}", 20, 2 * CROP_SIDE)], axis=0))
    return np.concatenate([header, contact_sheet(tiles, columns=len(conditions) + 1)], axis=0)
