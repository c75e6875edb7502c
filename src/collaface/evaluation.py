"""``collaface evaluate``: the paper's Tables 1-3 for any models, with baselines, CIs and a report.

One face from disk to a number: the dataset gives the face with the hole of one mask condition
(a pure function of (seed, index)); each model completes it, known pixels are pasted back
(``masks.composite``) and the uint8 result is scored against the original (``metrics``). The
same faces and masks go through three classical baselines: OpenCV's Telea and Navier-Stokes
inpainting and a mirror fill. With ``with_realism`` (the CLI's default), the hole patches of
originals and completions also go through the realism measures of ``collaface.realism`` (C2ST
and SWD), per condition and method.

Mask conditions
---------------
* ``O1``..``O6``: the paper's occlusions (Table 1), rectangles placed from the 5 landmarks.
* ``block``, ``pattern``, ``noise``: the paper's training masks (64x64 block at 128 px, 25%
  random pattern, 80% noise), with the paper's parameters whatever the model was trained with.
* ``freeform-0-10`` .. ``freeform-40-50``: free-form brush masks by hole area (LaMa's bins);
  every bin draws from the same per-face random stream, with its own area range.

Outputs of :func:`write_report` in the report folder: ``report.json`` (every number, config,
model and data hashes, seed), ``report.csv`` (one row per number), ``report.md`` (the tables
beside the paper's published rows) and figures ``bars_<metric>.png``, ``qualitative.png`` and
``median_crops.png``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io as _io
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from collaface import metrics, realism
from collaface.config import AugmentConfig, Config, DataConfig, EvalConfig, MaskConfig, to_dict
from collaface.data import io
from collaface.data.dataset import FaceDataset, build_dataset
from collaface.data.labels import LABEL_INDEX, LANDMARK_NAMES, TABLE2_PARTS
from collaface.data.masks import composite
from collaface.data.targets import heatmaps_to_landmarks, landmark_error, landmarks_visible, onehot_to_parsing
from collaface.data.transforms import to_uint8_image
from collaface.data.visualize import contact_sheet

# --------------------------------------------------------------------------- conditions

OCCLUSION_CONDITIONS = ("O1", "O2", "O3", "O4", "O5", "O6")
PAPER_MASK_CONDITIONS = ("block", "pattern", "noise")
FREEFORM_BINS: dict[str, tuple[float, float]] = {
    f"freeform-{lo}-{hi}": (lo / 100, hi / 100) for lo, hi in ((0, 10), (10, 20), (20, 30), (30, 40), (40, 50))
}
CONDITION_GROUPS: dict[str, tuple[str, ...]] = {
    "occlusions": OCCLUSION_CONDITIONS,
    "paper-masks": PAPER_MASK_CONDITIONS,
    "freeform": tuple(FREEFORM_BINS),
}
ALL_CONDITIONS = tuple(c for group in CONDITION_GROUPS.values() for c in group)
GROUP_TITLES = {
    "occlusions": "Occlusions O1-O6 (paper Table 1)",
    "paper-masks": "The paper's training masks (64x64 block, 25% pattern, 80% noise)",
    "freeform": "Free-form masks by hole area (LaMa's bins)",
}
# Table 2/3 in the paper's layout are shown for this condition (the mask the paper's models are
# trained with); every condition's numbers are in the JSON and CSV.
LABEL_TASK_CONDITION = "block"

# --------------------------------------------------------------------------- methods and metrics

BASELINES: dict[str, str] = {
    "telea": "Telea (OpenCV)",
    "navier_stokes": "Navier-Stokes (OpenCV)",
    "mirror": "mirror fill",
}
INPAINT_RADIUS = 3  # pixels, OpenCV's example value


@dataclass(frozen=True)
class MetricSpec:
    title: str
    unit: str
    higher_is_better: bool | None  # None: neither (a ratio whose ideal is 1)
    geometric: bool = False       # aggregate by geometric mean (ratios) instead of mean
    decimals: int = 2


IMAGE_METRICS: dict[str, MetricSpec] = {
    "ssim": MetricSpec("SSIM", "%", True, decimals=1),
    "psnr": MetricSpec("PSNR", "dB", True),
    "psnr_hole": MetricSpec("PSNR in the hole", "dB", True),
    "l1_hole": MetricSpec("L1 in the hole", "gray levels", False),
    "sharpness": MetricSpec("hole sharpness (gradient energy / original's; 1 = as sharp)", "ratio", None,
                            geometric=True),
}
VERDICT_METRICS = ("ssim", "psnr", "l1_hole")
# Model-against-model comparisons also pair the hole PSNR and the sharpness (as log ratio: + = sharper).
COMPARISON_METRICS = ("ssim", "psnr", "psnr_hole", "l1_hole", "sharpness")
TABLE2_TITLES = {
    "skin": "Face", "left_brow": "Left eyebrow", "right_brow": "Right eyebrow", "left_eye": "Left eye",
    "right_eye": "Right eye", "nose": "Nose", "upper_lip": "Upper lip", "inner_mouth": "Teeth (inner mouth)",
    "lower_lip": "Lower lip",
}
TABLE3_TITLES = dict(zip(LANDMARK_NAMES, ("Left eye", "Right eye", "Nose", "Left mouth", "Right mouth")))
REFERENCE_SIZE = 128  # landmark errors are reported in pixels at this size, as in the paper

# --------------------------------------------------------------------------- the paper's numbers

# Table 1: SSIM (%) / PSNR (dB) at O1..O6; all models trained with random block masks.
PAPER_TABLE1: dict[str, tuple[tuple[float, float], ...]] = {
    "CE": ((90.5, 26.74), (90.6, 27.01), (93.8, 27.90), (95.8, 30.37), (96.0, 30.65), (90.0, 27.11)),
    "SII": ((87.5, 23.93), (87.7, 24.12), (93.0, 26.61), (95.6, 28.94), (95.9, 29.38), (87.8, 24.84)),
    "GFC": ((90.6, 27.10), (90.9, 27.34), (94.0, 28.68), (96.3, 31.18), (96.3, 31.11), (90.0, 27.13)),
    "M_i": ((90.8, 27.23), (91.1, 27.42), (94.0, 28.53), (96.0, 30.94), (96.1, 31.06), (90.1, 27.15)),
    "M_id": ((91.7, 27.57), (91.6, 27.81), (94.5, 28.76), (96.4, 31.33), (96.5, 31.36), (90.7, 27.37)),
    "M_is": ((91.4, 27.59), (91.5, 27.65), (94.3, 28.66), (96.4, 31.22), (96.4, 31.28), (90.7, 27.55)),
    "M_isd": ((91.7, 27.66), (91.8, 27.87), (94.5, 28.77), (96.5, 31.31), (96.6, 31.39), (90.8, 27.57)),
    "M*_isd": ((92.4, 27.76), (92.6, 27.96), (95.2, 28.79), (97.2, 31.44), (97.2, 31.50), (91.7, 27.81)),
}
# Table 2: Dice (%) per part (TABLE2_PARTS order, then the average) for M_s, M_is, M_isd, M*_isd.
PAPER_TABLE2: dict[str, tuple[float, ...]] = {
    "M_s": (93.7, 74.2, 72.3, 70.7, 70.0, 90.5, 68.1, 64.2, 81.4, 76.1),
    "M_is": (94.1, 74.6, 72.8, 71.9, 70.3, 90.9, 67.2, 66.5, 82.1, 76.7),
    "M_isd": (94.2, 75.0, 73.8, 72.2, 71.2, 90.9, 68.3, 66.8, 82.8, 77.2),
    "M*_isd": (94.1, 75.2, 73.5, 72.7, 71.2, 91.0, 67.9, 66.7, 82.4, 77.2),
}
# Table 3: localisation error (px at 128) per point (LANDMARK_NAMES order, then the average).
PAPER_TABLE3: dict[str, tuple[float, ...]] = {
    "M_d": (2.12, 2.29, 2.53, 2.39, 2.57, 2.38),
    "M_id": (1.73, 1.71, 2.15, 1.80, 1.86, 1.85),
    "M_isd": (1.61, 1.59, 1.92, 1.74, 1.77, 1.73),
    "M*_isd": (1.60, 1.62, 1.93, 1.73, 1.72, 1.72),
}
PAPER_VARIANTS = {"m_i": "M_i", "m_s": "M_s", "m_d": "M_d", "m_is": "M_is", "m_id": "M_id", "m_isd": "M_isd",
                  "m_isd_star": "M*_isd", "ce": "CE", "gfc": "GFC", "sii": "SII"}

# --------------------------------------------------------------------------- report figures

GRID_FACES = 6      # the qualitative grid cycles through the first faces of each condition
TILE_MIN = 128      # grid tiles are upscaled (nearest) to at least this side
CROP_SIDE = 64      # side of the median-score crops
CROP_PAD = 4        # pixels around the hole's bounding box


def resolve_conditions(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Condition names and group names ("all", "occlusions", "paper-masks", "freeform") ->
    distinct conditions in ALL_CONDITIONS order; ValueError naming an unknown one."""
    chosen: set[str] = set()
    for name in names:
        if name == "all":
            chosen.update(ALL_CONDITIONS)
        elif name in CONDITION_GROUPS:
            chosen.update(CONDITION_GROUPS[name])
        elif name in ALL_CONDITIONS:
            chosen.add(name)
        else:
            raise ValueError(f"unknown mask condition {name!r}; choose from all, {', '.join(CONDITION_GROUPS)}, "
                             f"{', '.join(ALL_CONDITIONS)}")
    if not chosen:
        raise ValueError("no mask condition chosen")
    return tuple(c for c in ALL_CONDITIONS if c in chosen)


def condition_dataset(data_cfg: DataConfig, split: str, condition: str, seed: int) -> FaceDataset:
    """The faces of ``split`` with the hole of ``condition``, no augmentation, masks keyed by
    (seed, index). Occlusions skip faces without landmarks."""
    if condition in FREEFORM_BINS:
        masks_cfg = dataclasses.replace(data_cfg.masks, freeform_area=FREEFORM_BINS[condition])
        return build_dataset(dataclasses.replace(data_cfg, masks=masks_cfg), split, mask="freeform",
                             augment=False, seed=seed)
    if condition not in ALL_CONDITIONS:
        raise ValueError(f"unknown mask condition {condition!r}")
    return build_dataset(data_cfg, split, mask=condition, augment=False, seed=seed)


def evaluation_data_config(model_cfg: Config | None, root: str, source: str | None) -> DataConfig:
    """The model's data settings (size, CelebA options) on dataset ``root``; no augmentation and
    the paper's mask parameters (MaskConfig defaults), whatever the model was trained with."""
    base = model_cfg.data if model_cfg is not None else DataConfig()
    return dataclasses.replace(base, root=str(root), source=source or base.source,
                               augment=AugmentConfig(enabled=False), masks=MaskConfig())


# --------------------------------------------------------------------------- baselines


def face_axis(landmarks: np.ndarray, width: int) -> float:
    """x of the face's vertical symmetry axis: midway between the eyes' and the mouth corners'
    midpoints; the image centre when landmarks are missing. landmarks: (5, 2)."""
    if not np.isfinite(landmarks).all():
        return (width - 1) / 2
    return float((landmarks[0, 0] + landmarks[1, 0] + landmarks[3, 0] + landmarks[4, 0]) / 4)


def inpaint_opencv(image: np.ndarray, hole: np.ndarray, method: int) -> np.ndarray:
    """cv2.inpaint (cv2.INPAINT_TELEA or cv2.INPAINT_NS) of the hole. image: uint8 (H, W, 3);
    hole: bool (H, W). Hole pixels of ``image`` are never read. -> uint8 (H, W, 3)."""
    known = np.where(hole[..., None], 0, image).astype(np.uint8)
    return cv2.inpaint(known, hole.astype(np.uint8) * 255, INPAINT_RADIUS, method)


def mirror_fill(image: np.ndarray, hole: np.ndarray, axis_x: float) -> np.ndarray:
    """Fill the hole from the face mirrored about the vertical line x = axis_x (bilinear);
    hole pixels whose mirror image is unknown or outside get Telea inpainting.
    image: uint8 (H, W, 3); hole: bool (H, W). -> uint8 (H, W, 3)."""
    height, width = hole.shape
    map_x = np.broadcast_to((2 * axis_x - np.arange(width, dtype=np.float32))[None], (height, width))
    map_y = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width))
    map_x, map_y = np.ascontiguousarray(map_x, np.float32), np.ascontiguousarray(map_y, np.float32)
    mirrored = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mirror_known = cv2.remap((~hole).astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0.999
    filled = np.where((hole & mirror_known)[..., None], mirrored, image)
    remaining = hole & ~mirror_known
    return inpaint_opencv(filled, remaining, cv2.INPAINT_TELEA) if remaining.any() else filled


def run_baselines(image: np.ndarray, hole: np.ndarray, landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Every baseline on a batch. image: uint8 (B, H, W, 3) (hole pixels are not read); hole: bool
    (B, H, W); landmarks: (B, 5, 2), NaN when unknown. -> {baseline: uint8 (B, H, W, 3)}."""
    width = image.shape[2]
    out = {
        "telea": [inpaint_opencv(i, h, cv2.INPAINT_TELEA) for i, h in zip(image, hole)],
        "navier_stokes": [inpaint_opencv(i, h, cv2.INPAINT_NS) for i, h in zip(image, hole)],
        "mirror": [mirror_fill(i, h, face_axis(p, width)) for i, h, p in zip(image, hole, landmarks)],
    }
    return {name: np.stack(images) for name, images in out.items()}


# --------------------------------------------------------------------------- models


@dataclass
class EvalModel:
    """A trained generator under evaluation."""

    label: str
    path: str
    cfg: Config
    generator: torch.nn.Module
    sha256: str  # of the generator weights (state dict: names, dtypes, shapes, bytes)
    seconds: float = 0.0  # spent in the generator over ``faces`` faces (all conditions)
    faces: int = 0

    @property
    def ms_per_face(self) -> float | None:
        return 1000 * self.seconds / self.faces if self.faces else None

    @property
    def tasks(self) -> list[str]:
        return self.cfg.model.tasks


def weights_sha256(module: torch.nn.Module) -> str:
    """sha256 over the state dict (sorted names, dtype, shape and raw bytes of every tensor)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_models(
    paths: list[str], labels: list[str] | None = None, device: str | torch.device = "cpu"
) -> list[EvalModel]:
    """Generators of exported model dirs, run dirs or ckpt files (``checkpoint.load_generator``).

    Labels default to each config's name, made unique with the folder name when repeated.
    """
    from collaface.training.checkpoint import load_generator

    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} models")
    loaded = [(str(p), *load_generator(Path(p), map_location=device)) for p in paths]
    names = list(labels) if labels else [cfg.name for _, cfg, _ in loaded]
    if not labels:
        names = [f"{n} ({Path(p).name})" if names.count(n) > 1 else n for n, (p, _, _) in zip(names, loaded)]
    if len(set(names)) != len(names) or set(names) & set(BASELINES):
        raise ValueError(f"model labels must be distinct and not a baseline name: {names}")
    return [EvalModel(n, p, cfg, gen, weights_sha256(gen)) for n, (p, cfg, gen) in zip(names, loaded)]


# --------------------------------------------------------------------------- per-face results


@dataclass
class ConditionRecord:
    """Per-face results of one mask condition; rows are faces in dataset order.

    image: method -> metric -> (N,) values (IMAGE_METRICS; PSNR capped, SSIM in %).
    dice: model -> "whole"/"hole" -> (N_p, len(TABLE2_PARTS), 2) counts (faces with parsing).
    landmarks: model -> "error" (N_l, 5) px at REFERENCE_SIZE, "nme" (N_l,) in % (faces whose
    5 true points are all inside the image).
    """

    name: str
    indices: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    hole_fraction: list[float] = field(default_factory=list)
    empty_holes: int = 0      # faces left out: their hole is empty (e.g. an occlusion box outside the image)
    unusable_files: int = 0   # files the dataset skipped (undecodable, or no landmarks for an occlusion)
    image: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    dice: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    landmarks: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    realism: dict[str, dict] = field(default_factory=dict)  # method -> {"c2st", "swd"} (realism_scores)
    realism_seconds: float = 0.0


@dataclass
class Evaluation:
    """Everything :func:`evaluate` measured, before aggregation (see :func:`summarize`)."""

    models: list[EvalModel]
    data: dict
    image_size: int
    seed: int
    conditions: dict[str, ConditionRecord]
    with_baselines: bool
    grid: list[tuple[str, dict[str, np.ndarray]]]            # (condition, {column: uint8 tile}); [] without examples
    median_crops: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]]  # cond -> method -> crops
    seconds: float
    with_realism: bool = False

    @property
    def methods(self) -> list[str]:
        """Methods with a completed image: the models with task i, then the baselines (if run)."""
        return [m.label for m in self.models if "i" in m.tasks] + (list(BASELINES) if self.with_baselines else [])


def image_metrics(completed: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-face IMAGE_METRICS of completions. (B, 3, H, W) x2 in [0, 255], (B, 1, H, W) -> {metric: (B,)}."""
    return {
        "ssim": (metrics.ssim(completed, target) * 100).numpy(),
        "psnr": metrics.cap_psnr(metrics.psnr(completed, target).numpy()),
        "psnr_hole": metrics.cap_psnr(metrics.psnr(completed, target, mask).numpy()),
        "l1_hole": metrics.hole_l1(completed, target, mask).numpy(),
        "sharpness": metrics.sharpness_ratio(completed, target, mask).numpy(),
    }


@torch.no_grad()  # not inference_mode: SII's z search needs autograd inside its forward
def complete_batch(
    batch: dict, models: list[EvalModel], device: torch.device, baselines: bool = True
) -> tuple[dict, dict]:
    """Run every model (and baseline) on a batch (dataset keys image/mask/masked/landmarks).

    -> (completions {method: float32 (B, 3, S, S) in [0, 255], known pixels pasted back},
        task outputs {model label: {"s": int64 (B, S, S) labels, "d": (B, 5, 2) points}}).
    """
    image, mask = batch["image"], batch["mask"]
    completions: dict[str, torch.Tensor] = {}
    task_outputs: dict[str, dict[str, torch.Tensor]] = {}
    for model in models:
        start = time.perf_counter()
        out = {k: v.float().cpu() for k, v in model.generator(batch["masked"].to(device), mask.to(device)).items()}
        model.seconds += time.perf_counter() - start
        model.faces += image.shape[0]
        if "i" in out:
            completions[model.label] = metrics.to_255(composite(out["i"], image, mask))
        task_outputs[model.label] = {}
        if "s" in out:
            task_outputs[model.label]["s"] = onehot_to_parsing(out["s"])
        if "d" in out:
            task_outputs[model.label]["d"] = heatmaps_to_landmarks(out["d"])
    if baselines:
        filled = run_baselines(to_uint8_image(image), mask[:, 0].numpy() > 0.5, batch["landmarks"].numpy())
        for name, images in filled.items():
            completions[name] = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    return completions, task_outputs


def _append(store: dict[str, list], values: dict[str, np.ndarray]) -> None:
    for key, value in values.items():
        store.setdefault(key, []).append(np.asarray(value))


def _hole_box(hole: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the hole's bounding box plus CROP_PAD, clipped. hole: bool (H, W)."""
    ys, xs = np.nonzero(hole)
    height, width = hole.shape
    return (max(int(ys.min()) - CROP_PAD, 0), min(int(ys.max()) + CROP_PAD + 1, height),
            max(int(xs.min()) - CROP_PAD, 0), min(int(xs.max()) + CROP_PAD + 1, width))


def _upscale(tile: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(tile, (side, side), interpolation=cv2.INTER_NEAREST) if tile.shape[0] != side else tile


def _crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    y0, y1, x0, x1 = box
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    return cv2.resize(crop, (CROP_SIDE, CROP_SIDE), interpolation=cv2.INTER_NEAREST)


def realism_scores(original: np.ndarray, completed: dict[str, np.ndarray], seed: int) -> dict[str, dict]:
    """C2ST and SWD of each method's hole patches against the originals' (see ``realism``).

    original: uint8 (N, S, S, 3) patches; completed: method -> uint8 (N, S, S, 3), same faces.
    Every method gets the same C2ST splits (seeds seed, seed + 1, ...) and SWD positions.
    -> {method: {"c2st": realism.c2st(...), "swd": realism.swd(...)}}.
    """
    seeds = tuple(seed + k for k in range(len(realism.C2ST_SEEDS)))
    return {method: {"c2st": realism.c2st(original, patches, seeds), "swd": realism.swd(original, patches, seed)}
            for method, patches in completed.items()}


def _evaluate_condition(
    dataset: FaceDataset, condition: str, grid_position: int | None, models: list[EvalModel], device: torch.device,
    limit: int, batch_size: int, workers: int, baselines: bool, bar: tqdm, with_realism: bool = False,
    seed: int = 0,
) -> tuple[ConditionRecord, dict[str, np.ndarray] | None]:
    """Per-face metrics of one condition (and its realism scores if ``with_realism``: hole patches
    are kept until the condition ends), and the qualitative-grid tiles of its face at
    ``grid_position`` (None if not asked for or the condition has fewer faces)."""
    subset = Subset(dataset, range(min(limit, len(dataset)) if limit else len(dataset)))
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=workers)
    record = ConditionRecord(condition)
    image_store: dict[str, dict[str, list]] = {}
    dice_store: dict[str, dict[str, list]] = {}
    landmark_store: dict[str, dict[str, list]] = {}
    original_patches: list[np.ndarray] = []      # hole patches, uint8 (B, S, S, 3) per batch
    patch_store: dict[str, list[np.ndarray]] = {}  # the same per method
    scale = REFERENCE_SIZE / dataset.cfg.image_size
    grid_tiles = None
    seen: set[int] = set()
    parts = tuple(LABEL_INDEX[p] for p in TABLE2_PARTS)
    for raw in loader:
        bar.update(1)
        # A bad file is replaced by the next index: keep each face once, and only faces with a hole.
        hole_pixels = raw["mask"].flatten(1).sum(1)
        keep = []
        for row, index in enumerate(raw["index"].tolist()):
            if index in seen:  # the dataset replaced an unusable file by this (already counted) face
                record.unusable_files += 1
                continue
            seen.add(index)
            if hole_pixels[row] == 0:
                record.empty_holes += 1
                continue
            keep.append(row)
        if not keep:
            continue
        batch = {k: raw[k][keep] for k in ("image", "mask", "masked", "landmarks", "parsing", "has_parsing")}
        record.indices += [int(raw["index"][r]) for r in keep]
        record.files += [raw["file"][r] for r in keep]
        record.hole_fraction += batch["mask"].flatten(1).mean(1).tolist()

        completions, task_outputs = complete_batch(batch, models, device, baselines)
        target = metrics.to_255(batch["image"])
        for method, completed in completions.items():
            _append(image_store.setdefault(method, {}), image_metrics(completed, target, batch["mask"]))
        if with_realism:
            holes = batch["mask"][:, 0].numpy() > 0.5
            original_patches.append(realism.hole_patches(to_uint8_image(batch["image"]), holes))
            for method, completed in completions.items():
                uint8 = completed.permute(0, 2, 3, 1).to(torch.uint8).numpy()
                patch_store.setdefault(method, []).append(realism.hole_patches(uint8, holes))

        with_parsing = batch["has_parsing"]
        true_points = batch["landmarks"]
        with_points = landmarks_visible(true_points, dataset.cfg.image_size).all(dim=1)
        for label, outputs in task_outputs.items():
            if "s" in outputs and with_parsing.any():
                pred, truth = outputs["s"][with_parsing], batch["parsing"][with_parsing]
                _append(dice_store.setdefault(label, {}), {
                    "whole": metrics.dice_counts(pred, truth, parts).numpy(),
                    "hole": metrics.dice_counts(pred, truth, parts, batch["mask"][with_parsing]).numpy(),
                })
            if "d" in outputs and with_points.any():
                pred, truth = outputs["d"][with_points], true_points[with_points]
                _append(landmark_store.setdefault(label, {}), {
                    "error": (landmark_error(pred, truth) * scale).double().numpy(),
                    "nme": (metrics.normalized_mean_error(pred, truth) * 100).numpy(),
                })

        first = len(record.indices) - len(keep)
        if grid_tiles is None and grid_position is not None and first <= grid_position < len(record.indices):
            row = grid_position - first
            grid_tiles = {"input": to_uint8_image(batch["masked"][row])}
            grid_tiles.update({m: c[row].permute(1, 2, 0).to(torch.uint8).numpy() for m, c in completions.items()})
            grid_tiles["ground truth"] = to_uint8_image(batch["image"][row])

    record.image = {m: {k: np.concatenate(v) for k, v in s.items()} for m, s in image_store.items()}
    record.dice = {m: {k: np.concatenate(v) for k, v in s.items()} for m, s in dice_store.items()}
    record.landmarks = {m: {k: np.concatenate(v) for k, v in s.items()} for m, s in landmark_store.items()}
    if patch_store and len(record.indices) >= realism.C2ST_MIN_FACES:
        bar.set_postfix_str(f"{condition} realism")
        start = time.perf_counter()
        record.realism = realism_scores(np.concatenate(original_patches),
                                        {m: np.concatenate(v) for m, v in patch_store.items()}, seed)
        record.realism_seconds = time.perf_counter() - start
    return record, grid_tiles


def _median_crops(
    dataset: FaceDataset, record: ConditionRecord, models: list[EvalModel], device: torch.device, baselines: bool
) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Per method: (completion crop, original crop, score) of the face at the median hole sharpness."""
    chosen: dict[str, int] = {}
    for method, values in record.image.items():
        order = np.argsort(values["sharpness"], kind="stable")
        chosen[method] = int(order[len(order) // 2])
    rows = sorted(set(chosen.values()))
    batch = torch.utils.data.default_collate([dataset[record.indices[r]] for r in rows])
    completions, _ = complete_batch(batch, models, device, baselines)
    crops = {}
    for method, row in chosen.items():
        position = rows.index(row)
        box = _hole_box(batch["mask"][position, 0].numpy() > 0.5)
        completed = completions[method][position].permute(1, 2, 0).to(torch.uint8).numpy()
        original = to_uint8_image(batch["image"][position])
        crops[method] = (_crop(completed, box), _crop(original, box), float(record.image[method]["sharpness"][row]))
    return crops


def _data_files_sha256(roots: str) -> dict[str, str]:
    """sha256 of the dataset's annotation files: *.csv and *.txt in ROOT, ROOT/Anno and ROOT/Eval,
    for each root of ``data.root`` (several are joined by ":"; then keys start with the root)."""
    folders = [Path(r) for r in roots.split(os.pathsep) if r]
    found = {}
    for root in folders:
        for folder in (root, root / "Anno", root / "Eval"):
            for path in sorted(folder.glob("*")) if folder.is_dir() else ():
                if path.suffix.lower() in (".csv", ".txt") and path.is_file():
                    key = path.relative_to(root) if len(folders) == 1 else path
                    found[str(key)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def evaluate(
    models: list[EvalModel],
    data_cfg: DataConfig,
    *,
    split: str = "test",
    conditions: tuple[str, ...] = ALL_CONDITIONS,
    eval_cfg: EvalConfig | None = None,
    limit: int = 0,
    workers: int = 2,
    device: str | torch.device = "cpu",
    progress: bool = True,
    baselines: bool = True,
    examples: bool = True,
    with_realism: bool = False,
) -> Evaluation:
    """Score ``models`` (and the baselines) on the faces of ``split`` under every condition.

    data_cfg: dataset and image size (see :func:`evaluation_data_config`); every model must use
    its image size. limit: only the first N faces of the split (0 = all). examples: collect the
    qualitative grid and median crops (needed by :func:`write_report`). with_realism: C2ST and
    SWD of every method per condition (:func:`realism_scores`). Results are a pure function of
    (models, data, split, conditions, eval_cfg.seed, limit).
    """
    eval_cfg = eval_cfg or EvalConfig()
    size = data_cfg.image_size
    for model in models:
        if model.cfg.data.image_size != size:
            raise ValueError(f"model {model.label} works at {model.cfg.data.image_size} px, "
                             f"the evaluation at {size} px")
    device = torch.device(device)
    started = time.perf_counter()
    datasets = {c: condition_dataset(data_cfg, split, c, eval_cfg.seed) for c in conditions}
    batches = sum(math.ceil((min(limit, len(d)) if limit else len(d)) / eval_cfg.batch_size) for d in datasets.values())
    records: dict[str, ConditionRecord] = {}
    grid: list[tuple[str, dict[str, np.ndarray]]] = []
    crops: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]] = {}
    with tqdm(total=batches, disable=not progress, unit="batch", desc="evaluate", dynamic_ncols=True) as bar:
        for position, (condition, dataset) in enumerate(datasets.items()):
            bar.set_postfix_str(condition)
            record, tiles = _evaluate_condition(dataset, condition, position % GRID_FACES if examples else None,
                                                models, device, limit, eval_cfg.batch_size, workers, baselines, bar,
                                                with_realism, eval_cfg.seed)
            if not record.indices:
                raise ValueError(f"no usable face with a hole for condition {condition} in split {split!r} of "
                                 f"{data_cfg.root} ({record.empty_holes} with an empty hole)")
            records[condition] = record
            if tiles is not None:
                grid.append((condition, tiles))
            if examples:
                crops[condition] = _median_crops(dataset, record, models, device, baselines)
    files = sorted({f for r in records.values() for f in r.files})
    files_digest = hashlib.sha256("\n".join(files).encode()).hexdigest()
    annotation_digests = _data_files_sha256(data_cfg.root)
    data = {
        "root": str(data_cfg.root),
        "source": data_cfg.source,
        "split": split,
        "limit": limit,
        "faces": len(files),
        "files_sha256": files_digest,
        "annotation_files_sha256": annotation_digests,
        "sha256": hashlib.sha256(json.dumps([files_digest, annotation_digests], sort_keys=True).encode()).hexdigest(),
    }
    return Evaluation(models, data, size, eval_cfg.seed, records, baselines, grid, crops, time.perf_counter() - started,
                      with_realism)


# --------------------------------------------------------------------------- aggregation


def _statistic(spec: MetricSpec):
    return metrics.geometric_mean if spec.geometric else metrics.mean


def _dice_part(k: int):
    def statistic(samples: np.ndarray) -> np.ndarray:
        return metrics.pooled_dice(samples)[..., k] * 100
    return statistic


def _point(k: int):
    def statistic(samples: np.ndarray) -> np.ndarray:
        return samples[..., k].mean(axis=-1)
    return statistic


def paired_verdict(stats: dict, higher_is_better: bool) -> dict:
    """Add "verdict" to a paired difference ``stats`` (a - b): "better"/"worse" for ``a`` when the
    CI excludes 0, else "no significant difference"; without a CI (no bootstrap) the sign decides,
    marked "(no CI)"."""
    sign = 1.0 if higher_is_better else -1.0
    low, high = sorted((sign * stats["low"], sign * stats["high"]))
    if math.isnan(stats["low"]):
        verdict = ("better" if sign * stats["value"] > 0 else "worse") + " (no CI)"
    else:
        verdict = "better" if low > 0 else "worse" if high < 0 else "no significant difference"
    return {**stats, "verdict": verdict}


def _paired(a: np.ndarray, b: np.ndarray, spec: MetricSpec, resamples: int, seed: int) -> dict:
    """Mean per-face difference a - b with its CI, signed so that > 0 means ``a`` is better; for
    ratios (sharpness) the difference of logs, > 0 meaning ``a`` is higher (sharper)."""
    if spec.geometric:
        a, b = np.log(a), np.log(b)
    sign = -1.0 if spec.higher_is_better is False else 1.0
    return paired_verdict(metrics.paired_summary(sign * a, sign * b, metrics.mean, resamples, seed), True)


def summarize(evaluation: Evaluation, resamples: int, seed: int) -> dict:
    """Aggregate per-face results: means (geometric for ratios, pooled for Dice) with 95%
    bootstrap CIs over faces, verdicts against the best baseline and comparisons with the first
    model. -> {"table1", "table2", "table3", "verdicts", "comparisons"} (see report.json)."""
    table1: dict = {}
    table2: dict = {}
    table3: dict = {}
    verdicts: dict = {}
    comparisons: dict = {}
    image_models = [m.label for m in evaluation.models if "i" in m.tasks]
    for condition, record in evaluation.conditions.items():
        table1[condition] = {
            method: {name: metrics.summarize(values[name], _statistic(IMAGE_METRICS[name]), resamples, seed)
                     for name in IMAGE_METRICS}
            for method, values in record.image.items()
        }
        table2[condition] = {
            label: {region: {**{part: metrics.summarize(counts, _dice_part(k), resamples, seed)
                                for k, part in enumerate(TABLE2_PARTS)},
                             "average": metrics.summarize(counts, metrics.mean_pooled_dice, resamples, seed)}
                    for region, counts in store.items()}
            for label, store in record.dice.items()
        }
        table3[condition] = {
            label: {**{point: metrics.summarize(store["error"], _point(k), resamples, seed)
                       for k, point in enumerate(LANDMARK_NAMES)},
                    "average": metrics.summarize(store["error"], metrics.mean_point_error, resamples, seed),
                    "nme": metrics.summarize(store["nme"], metrics.mean, resamples, seed)}
            for label, store in record.landmarks.items()
        }
        verdicts[condition] = {}
        for label in image_models if evaluation.with_baselines else ():
            verdicts[condition][label] = {}
            for name in VERDICT_METRICS:
                spec = IMAGE_METRICS[name]
                pick = max if spec.higher_is_better else min
                best = pick(BASELINES, key=lambda b: table1[condition][b][name]["value"])
                verdicts[condition][label][name] = {
                    "baseline": best,
                    **_paired(record.image[label][name], record.image[best][name], spec, resamples, seed),
                }
        if len(image_models) > 1:
            reference = image_models[0]
            comparisons[condition] = {
                label: {name: _paired(record.image[label][name], record.image[reference][name],
                                      IMAGE_METRICS[name], resamples, seed)
                        for name in COMPARISON_METRICS}
                for label in image_models[1:]
            }
    return {"table1": table1, "table2": table2, "table3": table3, "verdicts": verdicts,
            "comparisons": {"reference": image_models[0] if len(image_models) > 1 else None,
                            "by_condition": comparisons},
            "realism": summarize_realism(evaluation)}


def summarize_realism(evaluation: Evaluation) -> dict:
    """{"by_condition": {condition: {method: {"c2st", "swd"}}}, "occlusions": {method: the mean
    over the occlusions evaluated}}. The mean's C2ST CI is the Wilson interval over all their
    test patches (one seed's each); its SWD "faces" counts faces over those conditions."""
    by_condition = {c: r.realism for c, r in evaluation.conditions.items() if r.realism}
    occlusions = [c for c in OCCLUSION_CONDITIONS if c in by_condition]
    means = {}
    for method in by_condition[occlusions[0]] if occlusions else ():
        tests = [by_condition[c][method]["c2st"] for c in occlusions]
        accuracy = float(np.mean([t["accuracy"] for t in tests]))
        n_test = sum(t["n_test"] for t in tests)
        low, high = realism.wilson_interval(accuracy, n_test)
        swds = [by_condition[c][method]["swd"] for c in occlusions]
        levels = np.mean([s["levels"] for s in swds], axis=0)
        means[method] = {"conditions": occlusions,
                         "c2st": {"accuracy": accuracy, "low": low, "high": high, "n_test": n_test},
                         "swd": {"levels": levels.tolist(), "average": float(levels.mean()),
                                 "faces": sum(s["faces"] for s in swds)}}
    return {"by_condition": by_condition, "occlusions": means}


# --------------------------------------------------------------------------- report files


def atomic_write(path: Path, data: bytes) -> None:
    with io.atomic_path(path) as tmp:
        tmp.write_bytes(data)


def json_safe(value):
    """NaN/inf -> None (JSON has neither); tuples -> lists; numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _versions() -> dict[str, str]:
    import skimage

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "opencv": cv2.__version__, "scikit-image": skimage.__version__}


def report_dict(evaluation: Evaluation, summary: dict, bootstrap: int) -> dict:
    """Everything report.json holds (``results`` depends only on models, data, seed and options)."""
    return json_safe({
        "format": "collaface-evaluation",
        "version": 1,
        "seed": evaluation.seed,
        "bootstrap_resamples": bootstrap,
        "image_size": evaluation.image_size,
        "conditions": {c: {"faces": len(r.indices), "empty_holes_skipped": r.empty_holes,
                           "unusable_files_skipped": r.unusable_files,
                           "mean_hole_fraction": float(np.mean(r.hole_fraction)),
                           "realism_seconds": round(r.realism_seconds, 1)}
                       for c, r in evaluation.conditions.items()},
        "models": [{"label": m.label, "path": m.path, "sha256": m.sha256, "tasks": m.tasks,
                    "arch": m.cfg.model.arch, "ms_per_face": m.ms_per_face,
                    "paper_variant": PAPER_VARIANTS.get(m.cfg.name), "config": to_dict(m.cfg)}
                   for m in evaluation.models],
        "baselines": BASELINES if evaluation.with_baselines else {},
        "data": evaluation.data,
        "metrics": {
            **{name: dataclasses.asdict(spec) for name, spec in IMAGE_METRICS.items()},
            "ssim_implementation": "skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, "
                                   "use_sample_covariance=False, K1=0.01, K2=0.03, data_range=255, channel_axis=-1) "
                                   "per image",
            "psnr_cap_db": metrics.PSNR_CAP,
            "dice": "pooled over faces: 2 sum|P & G| / sum(|P| + |G|), in %",
            "landmark_error": f"Euclidean distance in px at {REFERENCE_SIZE}x{REFERENCE_SIZE}; nme: mean error / "
                              "inter-ocular distance, in %",
            "confidence_intervals": "95% percentile bootstrap over faces",
            "c2st": (f"classifier two-sample test on {realism.PATCH_SIDE}-px hole patches (the hole's box made "
                     f"square, side x{1 + realism.PATCH_MARGIN:g}) of originals vs completions: a small CNN trained "
                     f"on {100 - 100 * realism.C2ST_TEST_FRACTION:.0f}% of the faces, accuracy on both patches "
                     f"of the other {100 * realism.C2ST_TEST_FRACTION:.0f}%, mean of {len(realism.C2ST_SEEDS)} "
                     "seeds (seed, seed+1, ...); 0.5 = indistinguishable from real, 1 = always recognised; "
                     "CI: 95% Wilson interval over one seed's test patches (n_test)"),
            "swd": ("sliced Wasserstein distance x1e3 between 7x7 neighbourhoods of the Laplacian pyramid "
                    f"levels ({_swd_sides()} px, "
                    "finest first) of the same hole patches, standardised by the originals' statistics "
                    "(ProGAN's measure); 0 = same local detail"),
            "lpips_fid": "not computed: their network weights are not installable offline from a package",
        },
        "results": summary,
        "paper": {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2, "table3": PAPER_TABLE3},
        "run": {"seconds": round(evaluation.seconds, 1), "versions": _versions()},
    })


def _swd_sides() -> str:
    return ", ".join(str(realism.PATCH_SIDE >> k) for k in range(realism.SWD_LEVELS))


OCCLUSIONS_MEAN = "O1-O6 mean"  # the condition name of the realism means over the occlusions
CSV_COLUMNS = ["table", "condition", "method", "metric", "value", "ci_low", "ci_high", "n"]


def csv_rows(summary: dict) -> list[dict]:
    """One row per number: table, condition, method, metric, value, ci_low, ci_high, n."""
    rows = []

    def add(table: str, condition: str, method: str, metric: str, stats: dict) -> None:
        rows.append({"table": table, "condition": condition, "method": method, "metric": metric,
                     "value": stats["value"], "ci_low": stats["low"], "ci_high": stats["high"], "n": stats["n"]})

    for condition, methods in summary["table1"].items():
        for method, values in methods.items():
            for name, stats in values.items():
                add("table1", condition, method, name, stats)
    for condition, models in summary["table2"].items():
        for label, regions in models.items():
            for region, parts in regions.items():
                for part, stats in parts.items():
                    add("table2", condition, label, f"dice_{region}_{part}", stats)
    for condition, models in summary["table3"].items():
        for label, points in models.items():
            for point, stats in points.items():
                add("table3", condition, label, "nme" if point == "nme" else f"error_{point}", stats)
    realism_rows = {**summary["realism"]["by_condition"], OCCLUSIONS_MEAN: summary["realism"]["occlusions"]}
    for condition, methods in realism_rows.items():
        for method, scores in methods.items():
            test = scores["c2st"]
            add("realism", condition, method, "c2st_accuracy",
                {"value": test["accuracy"], "low": test["low"], "high": test["high"], "n": test["n_test"]})
            swd = scores["swd"]
            named = {"swd": swd["average"], **{f"swd_level{k}": v for k, v in enumerate(swd["levels"])}}
            for name, value in named.items():
                add("realism", condition, method, name, {"value": value, "low": None, "high": None, "n": swd["faces"]})
    return rows


def format_cell(stats: dict, decimals: int) -> str:
    if stats is None or stats["value"] is None or (isinstance(stats["value"], float) and math.isnan(stats["value"])):
        return "-"
    text = f"{stats['value']:.{decimals}f}"
    if stats["low"] is not None and not math.isnan(stats["low"]):
        text += f" [{stats['low']:.{decimals}f}, {stats['high']:.{decimals}f}]"
    return text


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _method_title(method: str) -> str:
    return BASELINES.get(method, f"**{method}**")


def markdown_report(evaluation: Evaluation, summary: dict, bootstrap: int) -> str:
    """The report: setup, Table 1 per condition group and metric (paper rows beside ours),
    verdicts against the baselines, comparisons, Tables 2-3, figures and caveats."""
    size = evaluation.image_size
    lines = ["# collaface evaluation", ""]
    data = evaluation.data
    lines += [
        f"- data: `{data['root']}` ({data['source']}), split `{data['split']}`, {data['faces']} faces"
        + (f" (first {data['limit']})" if data["limit"] else "") + f"; data sha256 `{data['sha256'][:16]}`",
        f"- image size {size} px (paper: 128); seed {evaluation.seed}; 95% CIs from {bootstrap} bootstrap "
        "resamples over faces; values are `mean [CI]`",
    ]
    if evaluation.with_baselines:
        lines.append(f"- baselines on the same faces and masks: {', '.join(BASELINES.values())} (mirror about the "
                     "face's landmark axis, Telea where the mirror is unknown)")
    for m in evaluation.models:
        paper = PAPER_VARIANTS.get(m.cfg.name)
        lines.append(f"- model **{m.label}**{f' (paper {paper})' if paper else ''}: `{m.path}`, tasks "
                     f"{''.join(m.tasks)}, ngf {m.cfg.model.ngf}, weights sha256 `{m.sha256[:16]}`"
                     + (f", {m.ms_per_face:.1f} ms per face" if m.ms_per_face is not None else ""))
    lines.append("")
    table1 = summary["table1"]
    methods = evaluation.methods
    for group, members in CONDITION_GROUPS.items():
        present = [c for c in members if c in table1]
        if not present:
            continue
        lines += [f"## {GROUP_TITLES[group]}", ""]
        faces = ", ".join(f"{c}: {len(evaluation.conditions[c].indices)}" for c in present)
        holes = ", ".join(f"{c}: {100 * np.mean(evaluation.conditions[c].hole_fraction):.1f}%" for c in present)
        skipped = ", ".join(f"{c}: {evaluation.conditions[c].unusable_files} unusable files, "
                            f"{evaluation.conditions[c].empty_holes} empty holes" for c in present
                            if evaluation.conditions[c].unusable_files or evaluation.conditions[c].empty_holes)
        lines += [f"Faces per condition: {faces}. Mean hole area: {holes}."
                  + (f" Left out: {skipped}." if skipped else ""), ""]
        for name, spec in IMAGE_METRICS.items():
            lines += [f"### {spec.title} ({spec.unit})", ""]
            rows = [[_method_title(m)] + [format_cell(table1[c][m][name], spec.decimals) for c in present]
                    for m in methods]
            if group == "occlusions" and name in ("ssim", "psnr"):
                pick = 0 if name == "ssim" else 1
                rows += [[f"paper: {paper}"] + [f"{values[OCCLUSION_CONDITIONS.index(c)][pick]:.{spec.decimals}f}"
                                                for c in present] for paper, values in PAPER_TABLE1.items()]
            lines += markdown_table(["method", *present], rows) + [""]
        lines += _realism_tables(summary["realism"], present, methods, group == "occlusions")
    lines += _verdict_section(evaluation, summary)
    lines += _comparison_section(summary)
    lines += _table2_section(summary)
    lines += _table3_section(summary)
    lines += [
        "## Figures", "",
        *[f"- `bars_{name}.png`: {spec.title} per condition, 95% CI as error bars"
          for name, spec in IMAGE_METRICS.items()],
        f"- `qualitative.png`: one row per condition (its face from a fixed set of the first {GRID_FACES}): "
        "input | each model | baselines | ground truth",
        "- `median_crops.png`: per method and condition, the hole of the face at the median hole sharpness "
        "(left: completion, right: original)",
        "",
        "![SSIM](bars_ssim.png)", "", "![qualitative](qualitative.png)", "", "![median crops](median_crops.png)", "",
        "## Notes", "",
        "- SSIM: scikit-image's `structural_similarity` (Gaussian window sigma 1.5, 11 taps, K1 0.01, K2 0.03, "
        "data range 255, population covariance, mean over the valid region and channels). All image metrics "
        "score the uint8 completed image with known pixels pasted back against the original.",
        f"- PSNR of identical images is infinite; per-face PSNR is capped at {metrics.PSNR_CAP:g} dB for averaging. "
        "PSNR/L1 in the hole use hole pixels only; whole-image numbers depend on the hole size. Per face, "
        "hole PSNR = PSNR - 10 log10(1 / hole fraction): it ranks methods like PSNR but compares across holes.",
        "- Hole sharpness: mean squared luma gradient between adjacent hole pixels of the completion over "
        "that of the original (geometric mean over faces). 1 = as much fine detail as the original, < 1 "
        "blurrier, > 1 noisier. PSNR and SSIM reward blur; this does not (but it does not check the detail "
        "is right). LPIPS and FID are not reported: their network weights cannot be installed offline from "
        "a package here.",
        *([f"- Realism (no pretrained network): a square patch around each hole (its bounding box made square, "
        f"side x{1 + realism.PATCH_MARGIN:g}, resized to {realism.PATCH_SIDE} px) is cut from the original and "
        "from the completion. C2ST: a 4-layer CNN (with a fixed high-pass input) is trained to tell them apart on "
        f"{100 - 100 * realism.C2ST_TEST_FRACTION:.0f}% of the faces and tested on both patches of the other "
        f"{100 * realism.C2ST_TEST_FRACTION:.0f}%; the CI is the Wilson interval over one seed's test patches "
        "(for the mean column, over all of them). 50% = indistinguishable; it detects any systematic "
        "difference (blur, seams, colour, noise), not only implausibility. SWD: ProGAN's sliced Wasserstein "
        f"distance between local detail of the two sets of patches at {_swd_sides()} px; per-level values are "
        "in report.json."] if evaluation.with_realism else []),
        "- Dice is pooled over faces per part; 'hole' counts only hole pixels. Landmark errors are scaled to "
        f"{REFERENCE_SIZE} px; NME divides by the inter-ocular distance. Sides are image sides (CelebA's).",
        "- The paper's rows are its published numbers on its own CelebA test crops and models: they are "
        "context, not a paired comparison. Its Table 1 models were all trained with random block masks.",
        "",
    ]
    return "\n".join(lines)


def _realism_tables(scores: dict, conditions: list[str], methods: list[str], with_mean: bool) -> list[str]:
    """C2ST and SWD tables (methods x conditions) of a condition group; with the occlusions' mean
    column if ``with_mean``. [] without realism scores."""
    present = [c for c in conditions if c in scores["by_condition"]]
    if not present:
        return []
    columns = {c: scores["by_condition"][c] for c in present}
    means = scores["occlusions"] if with_mean else {}
    header = ["method", *present] + ([f"mean {', '.join(next(iter(means.values()))['conditions'])}"] if means else [])

    def c2st_cell(test: dict) -> str:
        return f"{100 * test['accuracy']:.1f} [{100 * test['low']:.1f}, {100 * test['high']:.1f}]"

    c2st_rows = [[_method_title(m)] + [c2st_cell(columns[c][m]["c2st"]) for c in present]
                 + ([c2st_cell(means[m]["c2st"])] if means else []) for m in methods]
    swd_rows = [[_method_title(m)] + [f"{columns[c][m]['swd']['average']:.1f}" for c in present]
                + ([f"{means[m]['swd']['average']:.1f}"] if means else []) for m in methods]
    return ["### Realism: C2ST accuracy, 50% = indistinguishable; SWD", "",
            "C2ST: accuracy (%) of a small CNN telling the original hole patch from the completed one on "
            f"held-out faces, mean of {len(realism.C2ST_SEEDS)} seeds [95% CI]; 50 = cannot be told from real, "
            "100 = always recognised.",
            ""] + markdown_table(header, c2st_rows) + [
            "", "SWD (x1e3) between the Laplacian-pyramid 7x7 neighbourhoods of original and completed hole "
            f"patches, mean of {realism.SWD_LEVELS} levels; 0 = the same local detail, lower is better.", ""] \
        + markdown_table(header, swd_rows) + [""]


def _verdict_section(evaluation: Evaluation, summary: dict) -> list[str]:
    verdicts = summary["verdicts"]
    labels = [m.label for m in evaluation.models if "i" in m.tasks]
    if not evaluation.with_baselines:
        return []
    if not labels:
        return ["## Models against the baselines", "", "No model with the inpainting task (i): no Table 1 rows.", ""]
    lines = ["## Models against the baselines", "",
             "Per condition, each model against the best baseline on that metric: the mean paired per-face "
             "difference (positive = the model is better) with its 95% CI, and the verdict.", ""]
    header = ["condition", *(IMAGE_METRICS[n].title + f" ({IMAGE_METRICS[n].unit})" for n in VERDICT_METRICS)]
    for label in labels:
        rows = [[condition] + [f"{v[n]['verdict']}: {format_cell(v[n], IMAGE_METRICS[n].decimals)} "
                               f"vs {BASELINES[v[n]['baseline']]}" for n in VERDICT_METRICS]
                for condition, v in ((c, verdicts[c][label]) for c in verdicts)]
        lines += [f"### {label}", ""] + markdown_table(header, rows) + [""]
        not_beaten = [c for c in verdicts if any(verdicts[c][label][n]["verdict"] != "better" for n in VERDICT_METRICS)]
        if not_beaten:
            lines.append(f"**{label} does not beat the best baseline** on every one of {', '.join(VERDICT_METRICS)} "
                         f"in: {', '.join(not_beaten)}.")
        else:
            lines.append(f"{label} beats the best baseline on {', '.join(VERDICT_METRICS)} in every condition.")
        lines.append("")
    return lines


def _comparison_section(summary: dict) -> list[str]:
    reference = summary["comparisons"]["reference"]
    by_condition = summary["comparisons"]["by_condition"]
    if reference is None:
        return []
    names = {n: IMAGE_METRICS[n].title + f" ({IMAGE_METRICS[n].unit})" for n in COMPARISON_METRICS}
    names["sharpness"] = "hole sharpness (log ratio)"
    header = ["condition", *names.values()]
    lines = [f"## Models against {reference}", "",
             f"Mean paired per-face difference against **{reference}** (positive = better than it: higher "
             "SSIM/PSNR, lower L1; for sharpness, positive = sharper, 'better' meaning sharper), 95% CI.", ""]
    for label in next(iter(by_condition.values())):
        rows = [[condition] + [f"{format_cell(d[n], IMAGE_METRICS[n].decimals)} ({d[n]['verdict']})"
                               for n in COMPARISON_METRICS]
                for condition, d in ((c, by_condition[c][label]) for c in by_condition)]
        lines += [f"### {label} - {reference}", ""] + markdown_table(header, rows) + [""]
    return lines


def label_task_condition(tables: dict) -> str | None:
    with_rows = [c for c, models in tables.items() if models]
    return LABEL_TASK_CONDITION if LABEL_TASK_CONDITION in with_rows else (with_rows[0] if with_rows else None)


def _table2_section(summary: dict) -> list[str]:
    condition = label_task_condition(summary["table2"])
    if condition is None:
        return ["## Table 2: face parsing", "",
                "No model with the parsing task (s), or no ground-truth parsing in the data: no Table 2.", ""]
    models = summary["table2"][condition]
    header = ["part"] + [f"{label} ({region})" for label in models for region in ("whole", "hole")] \
        + [f"paper {p}" for p in PAPER_TABLE2]
    rows = []
    for k, part in enumerate((*TABLE2_PARTS, "average")):
        rows.append([TABLE2_TITLES.get(part, "**Average**")]
                    + [format_cell(models[label][region][part], 1) for label in models for region in ("whole", "hole")]
                    + [f"{values[k]:.1f}" for values in PAPER_TABLE2.values()])
    lines = [f"## Table 2: face parsing, Dice (%) under the {condition} mask", "",
             "'whole' = all pixels, 'hole' = hole pixels only."] + [""] + markdown_table(header, rows) + [""]
    averages = [[c] + [f"{format_cell(summary['table2'][c][label]['whole']['average'], 1)} / "
                       f"{format_cell(summary['table2'][c][label]['hole']['average'], 1)}" for label in models]
                for c in summary["table2"]]
    lines += ["Average Dice (whole / hole) per condition:", ""] + markdown_table(["condition", *models], averages)
    return lines + [""]


def _table3_section(summary: dict) -> list[str]:
    condition = label_task_condition(summary["table3"])
    if condition is None:
        return ["## Table 3: landmarks", "", "No model with the landmark task (d): no Table 3.", ""]
    models = summary["table3"][condition]
    rows = []
    for k, point in enumerate((*LANDMARK_NAMES, "average")):
        rows.append([TABLE3_TITLES.get(point, "**Average**")]
                    + [format_cell(models[label][point], 2) for label in models]
                    + [f"{values[k]:.2f}" for values in PAPER_TABLE3.values()])
    rows.append(["NME (% inter-ocular)"] + [format_cell(models[label]["nme"], 2) for label in models]
                + ["-"] * len(PAPER_TABLE3))
    lines = [f"## Table 3: landmark error (px at {REFERENCE_SIZE}) under the {condition} mask", ""]
    lines += markdown_table(["point", *models, *[f"paper {p}" for p in PAPER_TABLE3]], rows) + [""]
    averages = [[c] + [f"{format_cell(summary['table3'][c][label]['average'], 2)} / "
                       f"{format_cell(summary['table3'][c][label]['nme'], 2)}" for label in models]
                for c in summary["table3"]]
    lines += ["Average error (px) / NME (%) per condition:", ""] + markdown_table(["condition", *models], averages)
    return lines + [""]


def _figure_bars(evaluation: Evaluation, summary: dict, name: str, path: Path) -> None:
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
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write(path, buffer.getvalue())


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


def write_report(evaluation: Evaluation, summary: dict, out_dir: Path, bootstrap: int) -> dict[str, Path]:
    """Write report.json, report.csv, report.md and the figures into ``out_dir``. -> {kind: path}.

    Needs an evaluation run with ``examples=True`` (the figures' images)."""
    if not evaluation.median_crops:
        raise ValueError("this evaluation has no example images (evaluate(..., examples=False)): "
                         "cannot write the figures")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "csv": out_dir / "report.csv", "markdown": out_dir / "report.md"}
    atomic_write(paths["json"], json.dumps(report_dict(evaluation, summary, bootstrap), indent=1).encode())
    text = _io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(json_safe(csv_rows(summary)))
    atomic_write(paths["csv"], text.getvalue().encode())
    atomic_write(paths["markdown"], markdown_report(evaluation, summary, bootstrap).encode())
    for name in IMAGE_METRICS:
        paths[f"bars_{name}"] = out_dir / f"bars_{name}.png"
        _figure_bars(evaluation, summary, name, paths[f"bars_{name}"])
    paths["qualitative"] = out_dir / "qualitative.png"
    io.save_rgb(paths["qualitative"], qualitative_grid(evaluation))
    paths["median_crops"] = out_dir / "median_crops.png"
    io.save_rgb(paths["median_crops"], median_crop_sheet(evaluation))
    return paths


# --------------------------------------------------------------------------- one call, and the CLI


def run_evaluation(
    model_paths: list[str],
    data: str,
    out_dir: Path,
    *,
    labels: list[str] | None = None,
    source: str | None = None,
    split: str = "test",
    conditions: tuple[str, ...] = ALL_CONDITIONS,
    eval_cfg: EvalConfig | None = None,
    limit: int = 0,
    workers: int = 2,
    device: str = "auto",
    progress: bool = True,
    with_realism: bool = True,
) -> dict:
    """Load the models, evaluate, summarize and write the report. -> the report dict (report.json)."""
    from collaface.training.hardware import resolve_device

    if not model_paths:
        raise ValueError("evaluate needs at least one model")
    eval_cfg = eval_cfg or EvalConfig()
    torch_device = resolve_device(device)
    models = load_models(model_paths, labels, torch_device)
    data_cfg = evaluation_data_config(models[0].cfg, data, source)
    evaluation = evaluate(models, data_cfg, split=split, conditions=conditions, eval_cfg=eval_cfg, limit=limit,
                          workers=workers, device=torch_device, progress=progress, with_realism=with_realism)
    summary = summarize(evaluation, eval_cfg.bootstrap, eval_cfg.seed)
    write_report(evaluation, summary, out_dir, eval_cfg.bootstrap)
    return report_dict(evaluation, summary, eval_cfg.bootstrap)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from collaface.config import ConfigError

    if args.batch_size < 1 or args.bootstrap < 0 or args.limit < 0 or args.workers < 0 or args.threads < 0:
        raise ConfigError("--batch-size must be >= 1; --bootstrap, --limit, --workers and --threads >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.models:
        from collaface.inference import default_model_dir

        args.models = [str(default_model_dir())]
    report = run_evaluation(
        args.models, args.data, Path(args.out), labels=args.labels, source=args.source, split=args.split,
        conditions=resolve_conditions(args.masks),
        eval_cfg=EvalConfig(seed=args.seed, batch_size=args.batch_size, bootstrap=args.bootstrap),
        limit=args.limit, workers=args.workers, device=args.device, progress=not args.no_progress,
        with_realism=not args.no_realism,
    )
    table1 = report["results"]["table1"]
    for condition in table1:
        cells = ", ".join(f"{m} {v['ssim']['value']:.1f}/{v['psnr']['value']:.2f}"
                          for m, v in table1[condition].items())
        print(f"{condition}: SSIM %/PSNR dB: {cells}")
    print(f"report: {Path(args.out) / 'report.md'} ({report['data']['faces']} faces, {report['run']['seconds']:.0f} s)")
    return 0


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``collaface evaluate`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "evaluate",
        help="the paper's Tables 1-3 for trained models, with baselines, CIs and a report",
        description=(
            "Scores each MODEL (exported model dir, run dir or ckpt-*.pt) and three baselines (OpenCV "
            "Telea and Navier-Stokes inpainting, mirror fill) on the same faces and masks: SSIM/PSNR of "
            "the completed image, PSNR and L1 in the hole, hole sharpness, realism of the hole (classifier "
            "two-sample test and sliced Wasserstein distance) (Table 1, per O1-O6, the paper's "
            "training masks and free-form area bins), parsing Dice (Table 2) and landmark errors (Table 3) "
            "for models with those tasks, with 95% bootstrap CIs. Writes report.json/.csv/.md and figures."
        ),
    )
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="one or more trained models (same image size); default: the shipped weights")
    p.add_argument("--data", required=True, help="dataset folder (prepared, CelebA or CelebAMask-HQ layout)")
    p.add_argument("--source", choices=("prepared", "celeba", "celebamask_hq"),
                   help="dataset layout (default: the first model's data.source)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to evaluate (default test)")
    p.add_argument("--out", default="work/eval", help="report folder (default work/eval)")
    p.add_argument("--labels", nargs="+", help="a display name per MODEL (default: each config's name)")
    p.add_argument("--masks", nargs="+", default=["all"], metavar="MASK",
                   help=f"conditions or groups: all (default), {', '.join(CONDITION_GROUPS)}, or names "
                        f"({', '.join(ALL_CONDITIONS)})")
    p.add_argument("--limit", type=int, default=0, help="only the first N faces of the split (0 = all)")
    defaults = EvalConfig()
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help=f"faces per batch (default {defaults.batch_size})")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the masks, noise fill and bootstrap")
    p.add_argument("--bootstrap", type=int, default=defaults.bootstrap,
                   help=f"bootstrap resamples for the 95%% CIs (default {defaults.bootstrap}; 0 = no CIs)")
    p.add_argument("--workers", type=int, default=2, help="data loading processes (default 2)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default 0 = torch's choice; 1 is often faster when other jobs "
                        "share the cores)")
    p.add_argument("--no-realism", action="store_true",
                   help="skip the realism measures (C2ST and SWD on hole patches: 3 small CNNs are trained per "
                        "condition and method, about 20 s on 2 busy CPU cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)
    return p
