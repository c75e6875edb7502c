"""Scoring: trained generators loaded, every face of every condition completed by each model
and baseline (known pixels pasted back, ``contracts.composite``) and scored per face
(``metrics``, and with ``with_realism`` the hole patches by ``realism``)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from collaface import metrics, realism
from collaface.config import Config, DataConfig, EvalConfig
from collaface.contracts import composite
from collaface.data.dataset import FaceDataset
from collaface.data.labels import LABEL_INDEX, TABLE2_PARTS
from collaface.data.targets import heatmaps_to_landmarks, landmark_error, landmarks_visible, onehot_to_parsing
from collaface.data.transforms import to_uint8_image
from collaface.evaluation.baselines import BASELINES, run_baselines
from collaface.evaluation.conditions import ALL_CONDITIONS, condition_dataset
from collaface.model_format import load_generator


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
REFERENCE_SIZE = 128  # landmark errors are reported in pixels at this size, as in the paper

GRID_FACES = 6      # the qualitative grid cycles through the first faces of each condition
CROP_SIDE = 64      # side of the median-score crops
CROP_PAD = 4        # pixels around the hole's bounding box


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
    """Generators of exported model dirs, run dirs or ckpt files (``model_format.load_generator``).

    Labels default to each config's name, made unique with the folder name when repeated.
    """
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} models")
    loaded = [(str(p), *load_generator(Path(p), map_location=device)) for p in paths]
    names = list(labels) if labels else [cfg.name for _, cfg, _ in loaded]
    if not labels:
        names = [f"{n} ({Path(p).name})" if names.count(n) > 1 else n for n, (p, _, _) in zip(names, loaded)]
    if len(set(names)) != len(names) or set(names) & set(BASELINES):
        raise ValueError(f"model labels must be distinct and not a baseline name: {names}")
    return [EvalModel(n, p, cfg, gen, weights_sha256(gen)) for n, (p, cfg, gen) in zip(names, loaded)]


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
