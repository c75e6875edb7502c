"""The report files: report.json (every number and where it came from), report.csv (one row per
number) and report.md (the tables beside the paper's rows), with the figures."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import platform
from pathlib import Path

import cv2
import numpy as np
import torch

from collaface import metrics, realism
from collaface.config import to_dict
from collaface.data import io as data_io
from collaface.evaluation.baselines import BASELINES
from collaface.evaluation.conditions import CONDITION_GROUPS, GROUP_TITLES, OCCLUSION_CONDITIONS, label_task_condition
from collaface.evaluation.figures import bars_png, median_crop_sheet, qualitative_grid
from collaface.evaluation.paper import PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE3, PAPER_VARIANTS, paper_layout_rows
from collaface.evaluation.scoring import (
    COMPARISON_METRICS,
    GRID_FACES,
    IMAGE_METRICS,
    REFERENCE_SIZE,
    VERDICT_METRICS,
    Evaluation,
)


def atomic_write(path: Path, data: bytes) -> None:
    with data_io.atomic_path(path) as tmp:
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


def _table2_section(summary: dict) -> list[str]:
    condition = label_task_condition(summary["table2"])
    if condition is None:
        return ["## Table 2: face parsing", "",
                "No model with the parsing task (s), or no ground-truth parsing in the data: no Table 2.", ""]
    models = summary["table2"][condition]
    header = ["part"] + [f"{label} ({region})" for label in models for region in ("whole", "hole")] \
        + [f"paper {p}" for p in PAPER_TABLE2]
    columns = [lambda part, label=label, region=region: format_cell(models[label][region][part], 1)
               for label in models for region in ("whole", "hole")]
    rows = paper_layout_rows("table2", columns)
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
    rows = paper_layout_rows("table3", [lambda point, label=label: format_cell(models[label][point], 2)
                                        for label in models])
    rows.append(["NME (% inter-ocular)"] + [format_cell(models[label]["nme"], 2) for label in models]
                + ["-"] * len(PAPER_TABLE3))
    lines = [f"## Table 3: landmark error (px at {REFERENCE_SIZE}) under the {condition} mask", ""]
    lines += markdown_table(["point", *models, *[f"paper {p}" for p in PAPER_TABLE3]], rows) + [""]
    averages = [[c] + [f"{format_cell(summary['table3'][c][label]['average'], 2)} / "
                       f"{format_cell(summary['table3'][c][label]['nme'], 2)}" for label in models]
                for c in summary["table3"]]
    lines += ["Average error (px) / NME (%) per condition:", ""] + markdown_table(["condition", *models], averages)
    return lines + [""]


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
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(json_safe(csv_rows(summary)))
    atomic_write(paths["csv"], text.getvalue().encode())
    atomic_write(paths["markdown"], markdown_report(evaluation, summary, bootstrap).encode())
    for name in IMAGE_METRICS:
        paths[f"bars_{name}"] = out_dir / f"bars_{name}.png"
        atomic_write(paths[f"bars_{name}"], bars_png(evaluation, summary, name))
    paths["qualitative"] = out_dir / "qualitative.png"
    data_io.save_rgb(paths["qualitative"], qualitative_grid(evaluation))
    paths["median_crops"] = out_dir / "median_crops.png"
    data_io.save_rgb(paths["median_crops"], median_crop_sheet(evaluation))
    return paths
