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

OCCLUSIONS = [f"O{i}" for i in range(1, 7)]


def merge(reports: list[dict]) -> tuple[list[str], dict, dict]:
    """Model labels, Table 1 and realism results of several reports, per condition and label."""
    if len({(r["seed"], r["data"]["split"], r["data"]["sha256"]) for r in reports}) > 1:
        raise SystemExit("the reports differ in seed, split or faces: they cannot be compared")
    labels, table1, realism = [], {}, {}
    for report in reports:
        missing = [c for c in OCCLUSIONS if c not in report["results"]["table1"]]
        if missing:
            raise SystemExit(f"a report lacks conditions {missing}: evaluate with --masks occlusions")
        labels += [model["label"] for model in report["models"]]
        for c in OCCLUSIONS:
            table1.setdefault(c, {}).update(report["results"]["table1"][c])
            realism.setdefault(c, {}).update(report["results"]["realism"]["by_condition"][c])
    return labels, table1, realism


def summarise(reports: list[dict], reference: str) -> dict[str, dict[str, float]]:
    """Per model label: worst hole-PSNR gap (dB), sharpness min/max and mean C2ST (%) over O1-O6."""
    labels, table1, realism = merge(reports)
    if reference not in labels:
        raise SystemExit(f"no model labelled {reference!r} in the reports: labels are {labels}")
    labels.remove(reference)
    rows = {}
    for label in labels:
        gaps = [table1[c][label]["psnr_hole"]["value"] - table1[c][reference]["psnr_hole"]["value"]
                for c in OCCLUSIONS]
        sharpness = [table1[c][label]["sharpness"]["value"] for c in OCCLUSIONS]
        c2st = [realism[c][label]["c2st"]["accuracy"] for c in OCCLUSIONS]
        rows[label] = {"worst_gap_db": min(gaps), "sharpness_min": min(sharpness),
                       "sharpness_max": max(sharpness), "c2st_pct": 100 * sum(c2st) / len(c2st)}
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
