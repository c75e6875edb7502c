"""``collaface ablate``: train every paper variant on one budget and evaluate them side by side.

Every variant (M_i, M_s, M_d, M_is, M_id, M_isd, M*_isd; presets ``m_i`` .. ``m_isd_star``) is
trained by the ordinary trainer on the same data, step budget and seeds, validated every
``eval_every`` steps, then all are evaluated together on the same faces and masks
(``evaluation.evaluate``). Rerunning the same command continues unfinished runs from their
checkpoints and does not retrain or re-evaluate what is done. Output folder::

    OUT/runs/<variant>-seed<k>/                 trainer run folders (config, checkpoints, logs)
    OUT/runs/<variant>-seed<k>/validation.jsonl  validation metrics against steps
    OUT/report/                                  the evaluate report of all variants and baselines
    OUT/ablation.json                            its numbers, the paper's claims tested, settings
    OUT/ablation.md                              Tables 1-3 in the paper's layout beside its numbers
    OUT/validation.png                           validation metrics against steps, all variants
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io as _io
import json
import logging
import math
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from collaface import config as cfgmod
from collaface import metrics, model_format
from collaface.config import Config, EvalConfig
from collaface.data import io
from collaface.evaluation.baselines import BASELINES
from collaface.evaluation.cli import add_eval_config_arguments
from collaface.evaluation.conditions import (
    ALL_CONDITIONS,
    LABEL_TASK_CONDITION,
    OCCLUSION_CONDITIONS,
    evaluation_data_config,
    label_task_condition,
    resolve_conditions,
)
from collaface.evaluation.paper import PAPER_LAYOUT, PAPER_TABLE1, PAPER_VARIANTS, paper_layout_rows
from collaface.evaluation.reports import atomic_write, format_cell, json_safe, markdown_table, report_dict, write_report
from collaface.evaluation.scoring import IMAGE_METRICS, REFERENCE_SIZE, EvalModel, Evaluation, evaluate, load_models
from collaface.evaluation.statistics import paired_verdict, summarize
from collaface.training.loop import train

log = logging.getLogger(__name__)

VARIANTS = ("m_i", "m_s", "m_d", "m_is", "m_id", "m_isd", "m_isd_star")
BASELINE_VARIANTS = ("ce", "gfc", "sii")  # the re-implemented baselines, on request (--variants)
# Evaluation order: image models first (M_i is the reference of the comparisons), then s/d only.
EVAL_ORDER = ("m_i", "m_is", "m_id", "m_isd", "m_isd_star", "ce", "gfc", "sii", "m_s", "m_d")
# GFC's stage starts (local D, then global D + parsing loss) as fractions of the budget.
GFC_STAGES = (0.3, 0.6)
RESERVED_OVERRIDES = ("data.root", "data.source", "train.max_steps", "train.seed", "train.epochs")
# Training ends by the step budget, never by epochs.
UNBOUNDED_EPOCHS = 1_000_000
VALIDATION_METRICS = {  # key in a validation record -> axis label
    "ssim": "SSIM (%)", "psnr": "PSNR (dB)", "l1_hole": "L1 in the hole (gray levels)",
    "sharpness": "hole sharpness (1 = as sharp)", "dice": "parsing Dice, average (%)",
    "landmark_error": f"landmark error (px at {REFERENCE_SIZE})",
}


@dataclass(frozen=True)
class Claim:
    """One statement of the paper, tested as paired differences ``a - b`` on the same faces."""

    key: str
    statement: str
    table: str                 # table1 | table2 | table3
    better: tuple[str, ...]    # variants claimed better ...
    than: str                  # ... than this one
    measures: tuple[str, ...]  # table1: IMAGE_METRICS names; table2: dice_whole/dice_hole; table3: error
    conditions: tuple[str, ...] = OCCLUSION_CONDITIONS


CLAIMS = (
    Claim("more_tasks_vs_m_i", "Models trained with more tasks give better SSIM and PSNR than M_i (Table 1).",
          "table1", ("m_is", "m_id", "m_isd", "m_isd_star"), "m_i", ("ssim", "psnr")),
    Claim("three_tasks_vs_two", "Three tasks beat two (Table 1).", "table1", ("m_isd",), "m_is", ("ssim", "psnr")),
    Claim("three_tasks_vs_two_d", "Three tasks beat two (Table 1).", "table1", ("m_isd",), "m_id", ("ssim", "psnr")),
    Claim("concentrated", "The inpainting-concentrated M*_isd is slightly better than M_isd (Table 1).",
          "table1", ("m_isd_star",), "m_isd", ("ssim", "psnr")),
    Claim("parsing_collaboration", "Collaboratively trained models segment better than M_s (Table 2).",
          "table2", ("m_is", "m_isd", "m_isd_star"), "m_s", ("dice_whole", "dice_hole"), (LABEL_TASK_CONDITION,)),
    Claim("landmark_collaboration", "Collaboratively trained models locate landmarks better than M_d; the average "
          "error drops from 2.38 (M_d) to 1.72 px (M*_isd), -27.7% (Table 3).",
          "table3", ("m_id", "m_isd", "m_isd_star"), "m_d", ("error",), (LABEL_TASK_CONDITION,)),
)


@dataclass
class AblationOptions:
    """Everything ``collaface ablate`` needs besides the variants' presets."""

    data: str
    out: Path
    budget: int
    variants: tuple[str, ...] = VARIANTS
    seeds: tuple[int, ...] = (0,)
    source: str | None = None
    overrides: tuple[str, ...] = ()
    eval_data: str | None = None       # default: data
    eval_source: str | None = None     # default: source
    eval_split: str = "test"
    conditions: tuple[str, ...] = ALL_CONDITIONS
    limit: int = 0
    eval: EvalConfig = field(default_factory=EvalConfig)
    val_split: str = "val"
    eval_every: int | None = None      # None: budget // 10; 0: no validation
    val_faces: int = 64
    val_conditions: tuple[str, ...] = ("block", "O1", "O6")
    workers: int = 2
    device: str = "auto"
    progress: bool = True
    command: str | None = None
    train_only: bool = False           # train and validate, skip the joint evaluation and the reports


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"


def model_label(variant: str, seed: int, seeds: tuple[int, ...]) -> str:
    return variant if len(seeds) == 1 else f"{variant}/s{seed}"


def variant_config(variant: str, options: AblationOptions, seed: int, max_steps: int) -> Config:
    """The variant's preset with the user's overrides, the data, the seed and a step budget."""
    for text in options.overrides:
        key = text.split("=", 1)[0].strip()
        if key in RESERVED_OVERRIDES:
            raise cfgmod.ConfigError(f"{key}: set by ablate (--data, --source, --budget, --seeds); do not override it")
    fixed = [f"data.root={options.data}", f"train.max_steps={max_steps}", f"train.seed={seed}",
             f"train.epochs={UNBOUNDED_EPOCHS}"]
    if options.source:
        fixed.append(f"data.source={options.source}")
    stages = []  # GFC's stages follow the budget unless overridden
    if variant == "gfc":
        local_from, global_from = (max(1, int(f * options.budget)) for f in GFC_STAGES)
        stages = [f"baseline.gfc_local_from={local_from}", f"baseline.gfc_global_from={global_from}"]
    return cfgmod.load_config(variant, [*stages, *options.overrides, *fixed])


def trained_step(run_dir: Path) -> int:
    """Step of the newest loadable checkpoint of a run folder (0 when there is none)."""
    latest = model_format.load_latest(Path(run_dir) / "checkpoints")
    return 0 if latest is None else int(latest[1]["step"])


def milestones(budget: int, every: int) -> list[int]:
    """Steps at which training pauses for validation, ending at the budget."""
    if every <= 0:
        return [budget]
    return sorted({*range(every, budget, every), budget})


# --------------------------------------------------------------------------- validation


def read_validation(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "validation.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append_validation(run_dir: Path, record: dict) -> None:
    path = Path(run_dir) / "validation.jsonl"
    lines = [json.dumps(r) for r in read_validation(run_dir) if r["step"] != record["step"]] + [json.dumps(record)]
    io.write_text_atomic(path, "\n".join(lines) + "\n")


def validate(run_dir: Path, label: str, options: AblationOptions, step: int) -> dict:
    """Quick metrics of the run's newest checkpoint on the first ``val_faces`` faces of the
    validation split (no baselines, no CIs): {"step", "conditions": {condition: {metric: value}}}."""
    models = load_models([str(run_dir)], [label], _device(options))
    data_cfg = evaluation_data_config(models[0].cfg, options.data, options.source)
    evaluation = evaluate(models, data_cfg, split=options.val_split, conditions=options.val_conditions,
                            eval_cfg=dataclasses.replace(options.eval, bootstrap=0), limit=options.val_faces,
                            workers=options.workers, device=_device(options), progress=False, baselines=False,
                            examples=False)
    summary = summarize(evaluation, 0, options.eval.seed)
    conditions = {}
    for condition in options.val_conditions:
        values = {name: stats["value"] for name, stats in summary["table1"][condition].get(label, {}).items()}
        if label in summary["table2"][condition]:
            values["dice"] = summary["table2"][condition][label]["whole"]["average"]["value"]
        if label in summary["table3"][condition]:
            values["landmark_error"] = summary["table3"][condition][label]["average"]["value"]
            values["nme"] = summary["table3"][condition][label]["nme"]["value"]
        conditions[condition] = values
    return json_safe({"step": step, "faces": evaluation.data["faces"], "conditions": conditions})


def _device(options: AblationOptions) -> torch.device:
    from collaface.device import resolve_device

    return resolve_device(options.device)


# --------------------------------------------------------------------------- training


def train_variant(variant: str, seed: int, options: AblationOptions) -> Path:
    """Train (or continue) one variant to the budget, validating at each milestone. -> run folder."""
    run_dir = Path(options.out) / "runs" / run_name(variant, seed)
    label = model_label(variant, seed, options.seeds)
    every = max(options.budget // 10, 1) if options.eval_every is None else options.eval_every
    done = {r["step"] for r in read_validation(run_dir)}
    for milestone in milestones(options.budget, every):
        step = trained_step(run_dir)
        if step < milestone:
            log.info("%s: training steps %d..%d of %d", label, step, milestone, options.budget)
            train(variant_config(variant, options, seed, milestone), run_dir, progress=options.progress)
            step = trained_step(run_dir)
        if every > 0 and milestone not in done:
            if step == milestone:
                _append_validation(run_dir, validate(run_dir, label, options, milestone))
            else:
                log.warning("%s: cannot validate step %d, the run is at step %d", label, milestone, step)
    return run_dir


# --------------------------------------------------------------------------- claims


def _claim_samples(evaluation: Evaluation, claim: Claim, condition: str, label: str, measure: str):
    """(per-face samples, statistic, higher_is_better) of one model for one measure, or None."""
    record = evaluation.conditions.get(condition)
    if record is None:
        return None
    if claim.table == "table1":
        values = record.image.get(label)
        spec = IMAGE_METRICS[measure]
        statistic = metrics.geometric_mean if spec.geometric else metrics.mean
        return None if values is None else (values[measure], statistic, spec.higher_is_better)
    if claim.table == "table2":
        counts = record.dice.get(label)
        return None if counts is None else (counts[measure.removeprefix("dice_")], metrics.mean_pooled_dice, True)
    errors = record.landmarks.get(label)
    return None if errors is None else (errors["error"], metrics.mean_point_error, False)


def check_claims(evaluation: Evaluation, seeds: tuple[int, ...], resamples: int, seed: int) -> list[dict]:
    """Every CLAIMS comparison the evaluated variants allow, per seed, condition and measure:
    the paired difference a - b over the same faces with a 95% CI and a verdict for ``a``."""
    present = {m.label for m in evaluation.models}
    results = []
    for claim in CLAIMS:
        rows = []
        for run_seed in seeds:
            reference = model_label(claim.than, run_seed, seeds)
            for variant in claim.better:
                label = model_label(variant, run_seed, seeds)
                if label not in present or reference not in present:
                    continue
                for condition in claim.conditions:
                    for measure in claim.measures:
                        a = _claim_samples(evaluation, claim, condition, label, measure)
                        b = _claim_samples(evaluation, claim, condition, reference, measure)
                        if a is None or b is None:
                            continue
                        samples, statistic, higher = a
                        stats = metrics.paired_summary(samples, b[0], statistic, resamples, seed)
                        reference_value = float(statistic(b[0][None])[0])
                        rows.append({"a": label, "b": reference, "condition": condition, "measure": measure,
                                     "relative": stats["value"] / reference_value if reference_value else math.nan,
                                     **paired_verdict(stats, higher)})
        if rows:
            supported = sum(r["verdict"] == "better" for r in rows)
            contradicted = sum(r["verdict"] == "worse" for r in rows)
            results.append({"key": claim.key, "statement": claim.statement, "comparisons": rows,
                            "supported": supported, "contradicted": contradicted, "total": len(rows)})
    return results


# --------------------------------------------------------------------------- the run


def _evaluation_key(models: list[EvalModel], options: AblationOptions) -> str:
    """What the final evaluation depends on: weights, data and evaluation options."""
    parts = {"models": [(m.label, m.sha256) for m in models], "data": options.eval_data or options.data,
             "source": options.eval_source or options.source, "split": options.eval_split,
             "conditions": list(options.conditions), "limit": options.limit, "eval": dataclasses.asdict(options.eval)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def run_ablation(options: AblationOptions) -> dict:
    """Train every (variant, seed) to the budget, evaluate them together, write the reports.

    -> the content of OUT/ablation.json. Finished runs are not retrained, and the evaluation is
    reused when the weights, data and options are unchanged.
    """
    unknown = [v for v in options.variants if v not in VARIANTS + BASELINE_VARIANTS]
    if unknown or not options.variants:
        raise cfgmod.ConfigError(f"--variants: {unknown or 'none'}; choose from "
                                 f"{', '.join(VARIANTS + BASELINE_VARIANTS)}")
    if options.budget < 1:
        raise cfgmod.ConfigError("--budget: at least 1 step")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = [v for v in EVAL_ORDER if v in options.variants]
    runs = {(v, s): train_variant(v, s, options) for v in variants for s in options.seeds}
    trained_steps = {model_label(v, s, options.seeds): trained_step(p) for (v, s), p in runs.items()}
    if options.train_only:
        return {"trained_steps": trained_steps}

    labels = [model_label(v, s, options.seeds) for v, s in runs]
    device = _device(options)
    models = load_models([str(p) for p in runs.values()], labels, device)
    key = _evaluation_key(models, options)
    saved_path = out / "ablation.json"
    saved = json.loads(saved_path.read_text()) if saved_path.is_file() else None
    if saved is not None and saved.get("evaluation_key") == key:
        log.info("evaluation unchanged since the last run: reusing %s", saved_path)
        result = saved
    else:
        data_cfg = evaluation_data_config(models[0].cfg, options.eval_data or options.data,
                                            options.eval_source or options.source)
        evaluation = evaluate(models, data_cfg, split=options.eval_split, conditions=options.conditions,
                                eval_cfg=options.eval, limit=options.limit, workers=options.workers, device=device,
                                progress=options.progress)
        summary = summarize(evaluation, options.eval.bootstrap, options.eval.seed)
        write_report(evaluation, summary, out / "report", options.eval.bootstrap)
        result = json_safe({
            "format": "collaface-ablation",
            "evaluation_key": key,
            "report": report_dict(evaluation, summary, options.eval.bootstrap),
            "claims": check_claims(evaluation, options.seeds, options.eval.bootstrap, options.eval.seed),
        })
    result["settings"] = json_safe({
        "command": options.command, "budget": options.budget, "variants": variants, "seeds": list(options.seeds),
        "data": options.data, "source": options.source, "overrides": list(options.overrides),
        "eval_data": options.eval_data or options.data, "eval_split": options.eval_split,
        "val_split": options.val_split, "val_faces": options.val_faces, "val_conditions": list(options.val_conditions),
        "runs": {model_label(v, s, options.seeds): str(p) for (v, s), p in runs.items()},
        "trained_steps": trained_steps,
    })
    result["validation"] = {model_label(v, s, options.seeds): read_validation(p) for (v, s), p in runs.items()}
    atomic_write(saved_path, json.dumps(result, indent=1).encode())
    plot_validation(result["validation"], options.val_conditions, out / "validation.png")
    atomic_write(out / "ablation.md", ablation_markdown(result).encode())
    return result


# --------------------------------------------------------------------------- outputs


def plot_validation(validation: dict[str, list[dict]], conditions: tuple[str, ...], path: Path) -> None:
    """One panel per VALIDATION_METRICS entry: the mean over ``conditions`` against steps, a line
    per model (models without the metric are left out of its panel)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 6.5), layout="constrained")
    axes = fig.subplots(2, 3).flatten()
    colours = {label: f"C{k % 10}" for k, label in enumerate(validation)}  # one colour per model in every panel
    for ax, (name, title) in zip(axes, VALIDATION_METRICS.items()):
        for label, records in validation.items():
            points = [(r["step"], np.mean([r["conditions"][c][name] for c in conditions]))
                      for r in records if all(r["conditions"].get(c, {}).get(name) is not None for c in conditions)]
            if points:
                steps, values = zip(*sorted(points))
                ax.plot(steps, values, marker="o", markersize=3, label=label, color=colours[label])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(f"validation: mean over {', '.join(conditions)}", fontsize=11)
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write(path, buffer.getvalue())


def _value(stats: dict | None, decimals: int) -> str:
    if not stats or stats.get("value") is None:
        return "-"
    return f"{stats['value']:.{decimals}f}"


def _seed_cell(values: list[float | None], decimals: int) -> str:
    """One seed: the value; several: mean ± std (sample std over seeds)."""
    finite = [v for v in values if v is not None]
    if not finite:
        return "-"
    if len(finite) == 1:
        return f"{finite[0]:.{decimals}f}"
    return f"{np.mean(finite):.{decimals}f} ± {np.std(finite, ddof=1):.{decimals}f}"


def ablation_markdown(result: dict) -> str:
    """Tables 1-3 in the paper's layout (ours beside its numbers), the claims, validation curves."""
    settings, report = result["settings"], result["report"]
    summary = report["results"]
    seeds, variants = settings["seeds"], settings["variants"]

    def labels_of(variant: str) -> list[str]:
        return [model_label(variant, s, tuple(seeds)) for s in seeds]

    lines = ["# collaface ablation: the paper's variants under one budget", ""]
    if settings["command"]:
        lines += ["```", settings["command"], "```", ""]
    lines += [
        f"- budget {settings['budget']} steps per variant; seeds {', '.join(map(str, seeds))}"
        + (" (cells: mean ± std over seeds)" if len(seeds) > 1 else ""),
        f"- trained on `{settings['data']}`; evaluated on `{settings['eval_data']}` split `{settings['eval_split']}` "
        f"({report['data']['faces']} faces, data sha256 `{report['data']['sha256'][:16]}`); image size "
        f"{report['image_size']} px; eval seed {report['seed']}",
        f"- overrides: {' '.join(settings['overrides']) or 'none'}",
        "- trained steps: " + ", ".join(f"{k} {v}" for k, v in settings["trained_steps"].items()),
        "- full report with CIs, baselines, every mask condition and figures: `report/report.md`",
        "",
    ]
    table1 = summary["table1"]
    occlusions = [c for c in OCCLUSION_CONDITIONS if c in table1]
    if occlusions:
        lines += ["## Table 1: SSIM (%) / PSNR (dB) at O1-O6", ""]
        rows = _pair_rows(table1, occlusions, variants, labels_of, ("ssim", 1), ("psnr", 2), bold=True)
        for name, values in PAPER_TABLE1.items():
            rows.append([f"paper {name}"] + [f"{values[OCCLUSION_CONDITIONS.index(c)][0]:.1f} / "
                                              f"{values[OCCLUSION_CONDITIONS.index(c)][1]:.2f}" for c in occlusions])
        lines += markdown_table(["model", *occlusions], rows) + [""]
        lines += _hole_table(table1, occlusions, variants, labels_of)
    lines += _paper_layout_table("table2", summary, variants, labels_of)
    lines += _paper_layout_table("table3", summary, variants, labels_of)
    lines += _claims_section(result["claims"])
    lines += ["## Validation during training", "", "![validation](validation.png)", ""]
    return "\n".join(lines)


def _pair_rows(table1: dict, occlusions: list[str], variants: list[str], labels_of, first: tuple[str, int],
               second: tuple[str, int], bold: bool = False) -> list[list[str]]:
    """Rows "first / second" per occlusion for our variants (mean ± std over seeds), then the classical
    baselines; ``first``/``second`` are (IMAGE_METRICS name, decimals)."""
    (a, da), (b, db) = first, second
    rows = []
    for variant in variants:
        names = [n for n in labels_of(variant) if n in table1[occlusions[0]]]
        if names:
            title = f"ours {PAPER_VARIANTS[variant]}"
            rows.append([f"**{title}**" if bold else title] + [
                f"{_seed_cell([table1[c][n][a]['value'] for n in names], da)} / "
                f"{_seed_cell([table1[c][n][b]['value'] for n in names], db)}" for c in occlusions])
    for baseline, title in BASELINES.items():
        if baseline in table1[occlusions[0]]:
            cells = [table1[c][baseline] for c in occlusions]
            rows.append([f"ours {title}"] + [f"{_value(cell[a], da)} / {_value(cell[b], db)}" for cell in cells])
    return rows


def _hole_table(table1: dict, occlusions: list[str], variants: list[str], labels_of) -> list[str]:
    """PSNR and sharpness inside the hole at O1-O6: what whole-image SSIM/PSNR hide (blur scores well)."""
    rows = _pair_rows(table1, occlusions, variants, labels_of, ("psnr_hole", 2), ("sharpness", 2))
    return (["## In the hole: PSNR (dB) / sharpness at O1-O6", "",
             "Sharpness is the hole's gradient energy over the original's (1 = as sharp; a blurry fill scores well "
             "on SSIM/PSNR but low here). The paper reports neither.", ""]
            + markdown_table(["model", *occlusions], rows) + [""])


def _paper_layout_table(table: str, summary: dict, variants: list[str], labels_of) -> list[str]:
    """Table 2 (Dice on the whole face; variants with parsing) or 3 (landmark error; variants with
    landmarks) in the paper's layout: our variants (mean ± std over seeds) beside its numbers."""
    condition = label_task_condition(summary[table])
    if condition is None:
        return []
    models = summary[table][condition]
    if table == "table2":
        ours, rows_of, decimals = ("m_s", "m_is", "m_isd", "m_isd_star"), "part", 1
        title = f"## Table 2: Dice (%) on the whole face, {condition} mask"

        def value(name: str, part: str) -> float | None:
            return models[name]["whole"][part]["value"]
    else:
        ours, rows_of, decimals = ("m_d", "m_id", "m_isd", "m_isd_star"), "point", 2
        title = f"## Table 3: landmark error (px at {REFERENCE_SIZE}), {condition} mask"

        def value(name: str, point: str) -> float | None:
            return models[name][point]["value"]
    columns = [v for v in ours if v in variants and labels_of(v)[0] in models]
    header = [rows_of] + [f"ours {PAPER_VARIANTS[v]}" for v in columns] + [f"paper {p}" for p in PAPER_LAYOUT[table][2]]
    rows = paper_layout_rows(table, [lambda key, v=v: _seed_cell([value(n, key) for n in labels_of(v) if n in models],
                                                                  decimals) for v in columns])
    return [title, ""] + markdown_table(header, rows) + [""]


def _claims_section(claims: list[dict]) -> list[str]:
    lines = ["## The paper's claims against our numbers", "",
             "Each comparison is a paired difference a - b over the same faces (95% bootstrap CI): 'better' when "
             "the CI shows a better, 'worse' when it shows b better, else no significant difference. 'relative' is "
             "the difference over b's value.", ""]
    if not claims:
        return lines + ["No claim can be tested with these variants.", ""]
    for claim in claims:
        verdict = ("supported" if claim["supported"] == claim["total"] else
                   "contradicted" if claim["contradicted"] == claim["total"] else "partly supported"
                   if claim["supported"] else "not supported")
        lines += [f"### {claim['statement']}", "",
                  f"**{verdict}**: a better in {claim['supported']} of {claim['total']} comparisons, worse in "
                  f"{claim['contradicted']}.", ""]
        rows = [[r["a"], r["b"], r["condition"], r["measure"], str(r["n"]),
                 format_cell(r, 2), "-" if r["relative"] is None else f"{100 * r['relative']:+.1f}%", r["verdict"]]
                for r in claim["comparisons"]]
        lines += markdown_table(["a", "b", "condition", "measure", "faces", "a - b [CI]", "relative", "verdict"],
                                  rows) + [""]
    return lines


# --------------------------------------------------------------------------- CLI


def _cmd_ablate(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    options = AblationOptions(
        data=args.data, out=Path(args.out), budget=args.budget, variants=tuple(args.variants), seeds=tuple(args.seeds),
        source=args.source, overrides=tuple(args.overrides), eval_data=args.eval_data, eval_source=args.eval_source,
        eval_split=args.eval_split, conditions=resolve_conditions(args.masks), limit=args.limit,
        eval=EvalConfig(seed=args.eval_seed, batch_size=args.batch_size, bootstrap=args.bootstrap),
        val_split=args.val_split, eval_every=args.eval_every, val_faces=args.val_faces,
        val_conditions=resolve_conditions(args.val_masks), workers=args.workers, device=args.device,
        progress=not args.no_progress, command="collaface " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        train_only=args.train_only,
    )
    result = run_ablation(options)
    if options.train_only:
        for label, step in result["trained_steps"].items():
            print(f"{label}: trained to step {step}")
        return 0
    for claim in result["claims"]:
        print(f"{claim['key']}: better in {claim['supported']}/{claim['total']}, worse in {claim['contradicted']}")
    print(f"ablation report: {Path(args.out) / 'ablation.md'}")
    return 0


ABLATE_DESCRIPTION = (
    "Trains M_i, M_s, M_d, M_is, M_id, M_isd and M*_isd (presets m_i .. m_isd_star) for --budget steps "
    "each on the same data and seeds, validating every --eval-every steps, then evaluates them together "
    "(as `collaface evaluate`) and writes OUT/ablation.md with Tables 1-3 in the paper's layout, the "
    "paper's claims tested, and validation curves. Rerunning continues unfinished runs from their "
    "checkpoints; finished runs are not retrained. Dotted overrides (e.g. model.ngf=32) apply to every "
    "variant; put them before the options (or after --variants/--seeds/--masks lists, behind --)."
)


def add_ablate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``collaface ablate`` on an argparse subparsers object."""
    p = subparsers.add_parser("ablate", help="train and evaluate every paper variant with one budget (resumable)",
                              description=ABLATE_DESCRIPTION)
    p.add_argument("overrides", nargs="*", help="dotted config overrides for every variant, e.g. model.ngf=32")
    p.add_argument("--data", required=True, help="training dataset folder")
    p.add_argument("--source", choices=("prepared", "celeba", "celebamask_hq"), help="its layout (data.source)")
    p.add_argument("--budget", type=int, required=True, help="training steps per variant")
    p.add_argument("--out", required=True, help="ablation folder (runs, report, ablation.md)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS + BASELINE_VARIANTS,
                   metavar="VARIANT",
                   help=f"subset of {', '.join(VARIANTS)} (default: these seven), plus the re-implemented "
                        f"baselines {', '.join(BASELINE_VARIANTS)} on request")
    p.add_argument("--seeds", nargs="+", type=int, default=[0],
                   help="training seeds (default 0); several give mean ± std")
    p.add_argument("--eval-data", help="dataset to evaluate on (default --data)")
    p.add_argument("--eval-source", choices=("prepared", "celeba", "celebamask_hq"), help="its layout")
    p.add_argument("--eval-split", default="test", choices=("train", "val", "test"), help="default test")
    p.add_argument("--masks", nargs="+", default=["all"], metavar="MASK", help="evaluation conditions (as evaluate)")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N faces (0 = all)")
    add_eval_config_arguments(p, "--eval-seed")
    p.add_argument("--val-split", default="val", choices=("train", "val", "test"),
                   help="validation split (default val)")
    p.add_argument("--eval-every", type=int, help="validate every N steps (default budget/10; 0 = never)")
    p.add_argument("--val-faces", type=int, default=64, help="faces per validation (default 64)")
    p.add_argument("--val-masks", nargs="+", default=["block", "O1", "O6"], metavar="MASK",
                   help="validation conditions (default block O1 O6)")
    p.add_argument("--workers", type=int, default=2, help="evaluation data loading processes")
    p.add_argument("--device", default="auto", help="evaluation device: auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--train-only", action="store_true",
                   help="train and validate the variants, then stop before the joint evaluation (to train "
                        "disjoint --variants subsets in parallel processes into one OUT; the full command then "
                        "evaluates them all)")
    p.set_defaults(func=_cmd_ablate)
    return p
