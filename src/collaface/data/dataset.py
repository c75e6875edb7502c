"""The Dataset that training and evaluation share, and its DataLoader factory.

One sample (a dict; batches stack each entry):

* ``image``     float32 (3, S, S) in [-1, 1], the original face (target)
* ``mask``      float32 (1, S, S), **1 = hole**
* ``masked``    float32 (3, S, S), the generator input: ``image`` with the hole filled
  (uniform noise in [-1, 1] = the paper's z, or zeros for pattern masks)
* ``parsing``   int64 (S, S) labels (``contracts.LABELS``); all 0 when ``has_parsing`` is False
* ``landmarks`` float32 (5, 2) x, y pixels at S; NaN when ``has_landmarks`` is False
* ``heatmaps``  float32 (5, S, S) in [-1, 1]
* ``has_parsing``, ``has_landmarks`` bool; ``identity`` str ("" unknown); ``file`` str; ``index`` int

Randomness is a pure function of (seed, epoch, index): augmentation and training masks draw from
``np.random.default_rng([seed, epoch, index])`` and evaluation masks from
``masks.eval_rng(seed, index, kind)``. So results do not depend on worker count or rank, and a
resumed run sees exactly the samples it would have seen.

A file that cannot be decoded is reported once (path and reason) and replaced by the next
index, so training keeps going; ``bad_files`` lists them (per worker process).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from collaface.config import DataConfig
from collaface.data import io, masks, targets, transforms
from collaface.data.sources import open_sources
from collaface.data.sources.base import DatasetLayoutError, FaceSource, RawSample

log = logging.getLogger(__name__)

EVAL_MASK_KINDS = ("block", "pattern", "noise", "freeform") + tuple(masks.OCCLUSIONS)
MAX_CONSECUTIVE_BAD = 50


class FaceDataset(Dataset):
    """Faces of a source as training/evaluation samples at ``cfg.image_size``.

    mask: "train" (``cfg.masks`` mix, fresh per epoch) or an evaluation kind from
    EVAL_MASK_KINDS (block/pattern/noise/freeform or occlusion O1..O6), fixed per (seed, index).
    augment: apply ``cfg.augment`` (training only makes sense with mask="train").
    require: tasks whose labels must exist ("s" needs parsing, "d" landmarks); samples lacking
    them are skipped like bad files, and a source with none at all is an error.
    """

    def __init__(
        self,
        source: FaceSource,
        cfg: DataConfig,
        *,
        mask: str = "train",
        augment: bool = True,
        seed: int = 0,
        require: tuple[str, ...] = (),
    ):
        if mask != "train" and mask not in EVAL_MASK_KINDS:
            raise ValueError(f"mask must be 'train' or one of {', '.join(EVAL_MASK_KINDS)}, got {mask!r}")
        self.source = source
        self.cfg = cfg
        self.mask_kind = mask
        self.augment = augment and cfg.augment.enabled
        self.seed = seed
        self.epoch = 0
        self.require_parsing = "s" in require
        self.require_landmarks = "d" in require or mask in masks.OCCLUSIONS
        self.bad_files: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        """Training randomness changes per epoch; call before each epoch (workers re-read it)."""
        self.epoch = epoch

    def _load_usable(self, index: int) -> tuple[int, RawSample]:
        """The sample at index, or the next usable one; bad files are logged once and skipped."""
        for attempt in range(min(MAX_CONSECUTIVE_BAD, len(self))):
            current = (index + attempt) % len(self)
            file = self.source.files[current]
            if file in self.bad_files:
                continue
            try:
                raw = self.source.load(current)
            except (io.ImageDecodeError, DatasetLayoutError) as err:
                self._mark_bad(file, str(err))
                continue
            if self.require_parsing and raw.parsing is None:
                self._mark_bad(file, "no parsing map (install the annotation extra or use a source with parsing)")
                continue
            if self.require_landmarks and raw.landmarks is None:
                self._mark_bad(file, "no landmarks")
                continue
            return current, raw
        raise RuntimeError(
            f"{MAX_CONSECUTIVE_BAD} consecutive unusable samples from index {index}; last problems: "
            + "; ".join(f"{f}: {r}" for f, r in list(self.bad_files.items())[-3:])
        )

    def _mark_bad(self, file: str, reason: str) -> None:
        self.bad_files[file] = reason
        log.warning("skipping %s: %s", file, reason)

    def __getitem__(self, index: int) -> dict:
        size = self.cfg.image_size
        index, raw = self._load_usable(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        params = transforms.sample_affine(self.cfg.augment, rng) if self.augment else transforms.AffineParams.identity()
        image, parsing, landmarks = transforms.warp_sample(raw.image, raw.parsing, raw.landmarks, params, size)

        if self.mask_kind == "train":
            hole, fill = masks.sample_train_mask(self.cfg.masks, size, rng, landmarks)
        else:
            hole, fill = self._eval_mask(index, landmarks)
        noise_seed = int(rng.integers(2**62)) if self.mask_kind == "train" else int(
            masks.eval_rng(self.seed, index, "fill").integers(2**62)
        )
        image_t = transforms.to_tensor_image(image)
        mask_t = torch.from_numpy(hole)[None]
        masked = masks.apply_mask(image_t, mask_t, fill, torch.Generator().manual_seed(noise_seed))

        has_landmarks = landmarks is not None
        points = torch.from_numpy(landmarks) if has_landmarks else torch.full((5, 2), math.nan)
        return {
            "image": image_t,
            "mask": mask_t,
            "masked": masked,
            "parsing": torch.from_numpy(parsing.astype(np.int64)) if parsing is not None
            else torch.zeros(size, size, dtype=torch.int64),
            "landmarks": points,
            "heatmaps": targets.landmarks_to_heatmaps(points, size, self.cfg.heatmap_sigma),
            "has_parsing": parsing is not None,
            "has_landmarks": has_landmarks,
            "identity": raw.identity or "",
            "file": raw.file,
            "index": index,
        }

    def _eval_mask(self, index: int, landmarks: np.ndarray | None) -> tuple[np.ndarray, str]:
        size = self.cfg.image_size
        kind = self.mask_kind
        if kind in masks.OCCLUSIONS:
            return masks.occlusion_mask(kind, landmarks, size), masks.MASK_FILL["occlusion"]
        one_kind = dataclasses.replace(self.cfg.masks, kinds=[kind], weights=[1.0])
        return masks.sample_train_mask(one_kind, size, masks.eval_rng(self.seed, index, kind))


def build_dataset(
    cfg: DataConfig,
    split: str | None,
    *,
    mask: str = "train",
    augment: bool = True,
    seed: int = 0,
    require: tuple[str, ...] = (),
) -> FaceDataset:
    """Open ``cfg.source`` at ``cfg.root`` (one folder, or several joined by ":") for one split
    and wrap it as a FaceDataset."""
    if not cfg.root:
        raise DatasetLayoutError("no dataset given: pass --data DIR (or set data.root)")
    options: dict = {}
    if cfg.source == "celeba":
        options = {"images": cfg.celeba_images, "crop_size": cfg.image_size, "annotation_cache": cfg.annotation_cache,
                   "annotate_missing": "s" in require}
    elif cfg.source == "celebamask_hq":
        options = {"crop_size": cfg.image_size}
    source = open_sources(cfg.source, cfg.root, split, **options)
    return FaceDataset(source, cfg, mask=mask, augment=augment, seed=seed, require=require)


def build_loader(
    dataset: FaceDataset,
    batch_size: int,
    *,
    shuffle: bool,
    num_workers: int,
    seed: int = 0,
    drop_last: bool = False,
    distributed: bool = False,
) -> DataLoader:
    """DataLoader with a seeded shuffle (DistributedSampler under torchrun)."""
    sampler = None
    generator = torch.Generator().manual_seed(seed)
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
        shuffle = False
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_seed_worker,
    )


def _seed_worker(worker_id: int) -> None:
    """Per-worker seeds for any library that still uses global RNG (ours does not)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    torch.manual_seed(seed)
