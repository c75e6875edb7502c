"""The mask conditions of an evaluation and the datasets that give their faces with holes."""

from __future__ import annotations

import dataclasses

from collaface.config import AugmentConfig, Config, DataConfig, MaskConfig
from collaface.data.dataset import FaceDataset, build_dataset

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


def label_task_condition(tables: dict) -> str | None:
    with_rows = [c for c, models in tables.items() if models]
    return LABEL_TASK_CONDITION if LABEL_TASK_CONDITION in with_rows else (with_rows[0] if with_rows else None)
