"""Aggregation of per-face results: means (geometric for ratios, pooled for Dice) with bootstrap
CIs over faces, verdicts against the best baseline, comparisons between models, realism means."""

from __future__ import annotations

import math

import numpy as np

from collaface import metrics, realism
from collaface.contracts import LANDMARK_NAMES
from collaface.data.labels import TABLE2_PARTS
from collaface.evaluation.baselines import BASELINES
from collaface.evaluation.conditions import OCCLUSION_CONDITIONS
from collaface.evaluation.scoring import COMPARISON_METRICS, IMAGE_METRICS, VERDICT_METRICS, Evaluation, MetricSpec


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
