"""Choose the network-interpolation point to ship from validation reports (issue 19).

The reports (one ``collaface evaluate`` run or several, on the same split, faces and seed) must
score the reconstruction-only generator (``--reference``) and the interpolated exports
(``collaface export RUN --interpolate L1_MODEL --alpha A``) on O1-O6. Prints, per model,
the worst hole-PSNR gap to the reference over O1-O6, the hole sharpness range and the mean C2ST,
and picks the model with the lowest mean C2ST whose gap is within ``--max-loss`` dB everywhere
(the bar's PSNR cost). Exits 1 when no model qualifies.

    python scripts/choose_alpha.py ../runs/eval/l1/report.json ../runs/eval/alphas/report.json \
        --reference l1
"""
import argparse
import json
import sys
from pathlib import Path

from collaface.evaluation.conditions import OCCLUSION_CONDITIONS


def merge(reports: list[dict]) -> tuple[list[str], dict, dict]:
    """Model labels, Table 1 (per condition and label) and the realism means over O1-O6 (per
    label) of several reports."""
    if len({(r["seed"], r["data"]["split"], r["data"]["sha256"]) for r in reports}) > 1:
        raise SystemExit("the reports differ in seed, split or faces: they cannot be compared")
    labels, table1, realism = [], {}, {}
    for report in reports:
        missing = [c for c in OCCLUSION_CONDITIONS if c not in report["results"]["table1"]]
        if missing:
            raise SystemExit(f"a report lacks conditions {missing}: evaluate with --masks occlusions")
        labels += [model["label"] for model in report["models"]]
        for c in OCCLUSION_CONDITIONS:
            table1.setdefault(c, {}).update(report["results"]["table1"][c])
        realism.update(report["results"]["realism"]["occlusions"])
    return labels, table1, realism


def summarise(reports: list[dict], reference: str) -> dict[str, dict[str, float]]:
    """Per model label: worst hole-PSNR gap (dB), sharpness min/max and the report's mean C2ST (%)
    over O1-O6."""
    labels, table1, realism = merge(reports)
    if reference not in labels:
        raise SystemExit(f"no model labelled {reference!r} in the reports: labels are {labels}")
    labels.remove(reference)
    if unscored := [label for label in labels if label not in realism]:
        raise SystemExit(f"no realism measures for {unscored}: evaluate without --no-realism")
    rows = {}
    for label in labels:
        gaps = [table1[c][label]["psnr_hole"]["value"] - table1[c][reference]["psnr_hole"]["value"]
                for c in OCCLUSION_CONDITIONS]
        sharpness = [table1[c][label]["sharpness"]["value"] for c in OCCLUSION_CONDITIONS]
        rows[label] = {"worst_gap_db": min(gaps), "sharpness_min": min(sharpness),
                       "sharpness_max": max(sharpness),
                       "c2st_pct": 100 * realism[label]["c2st"]["accuracy"]}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", type=Path, nargs="+", help="report.json files of collaface evaluate")
    parser.add_argument("--reference", required=True,
                        help="label of the reconstruction-only generator in the report")
    parser.add_argument("--max-loss", type=float, default=0.5,
                        help="largest allowed hole-PSNR loss against the reference, dB")
    args = parser.parse_args()
    rows = summarise([json.loads(p.read_text()) for p in args.reports], args.reference)
    print("| model | worst hole-PSNR gap (dB) | hole sharpness | C2ST mean O1-O6 (%) |")
    print("|---|---|---|---|")
    for label, row in rows.items():
        print(f"| {label} | {row['worst_gap_db']:+.2f} | {row['sharpness_min']:.2f}-"
              f"{row['sharpness_max']:.2f} | {row['c2st_pct']:.1f} |")
    allowed = {label: row for label, row in rows.items() if row["worst_gap_db"] >= -args.max_loss}
    if not allowed:
        print(f"no model is within {args.max_loss} dB of {args.reference} on every O1-O6")
        sys.exit(1)
    best = min(allowed, key=lambda label: allowed[label]["c2st_pct"])
    print(f"chosen: {best} (lowest C2ST within {args.max_loss} dB of {args.reference})")


if __name__ == "__main__":
    main()
