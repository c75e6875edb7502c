"""scripts/choose_alpha.py (issue 19): pick the most realistic interpolated export within the
bar's hole-PSNR cost of the reconstruction-only generator, from one or several reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from collaface.evaluation.conditions import OCCLUSION_CONDITIONS

REPO = Path(__file__).resolve().parents[1]


def write_report(path: Path, models: dict[str, tuple[float, float]], faces: str = "abc") -> Path:
    """A report.json with, per label, a hole PSNR in every O1-O6 condition and a C2ST mean."""
    cell = lambda v: {"value": v, "low": None, "high": None, "n": 300}  # noqa: E731
    report = {
        "seed": 0,
        "data": {"split": "val", "sha256": faces},
        "models": [{"label": label} for label in models],
        "results": {
            "table1": {c: {label: {"psnr_hole": cell(psnr), "sharpness": cell(0.8)}
                           for label, (psnr, _) in models.items()} for c in OCCLUSION_CONDITIONS},
            "realism": {"occlusions": {label: {"c2st": {"accuracy": c2st}}
                                       for label, (_, c2st) in models.items()}},
        },
    }
    path.write_text(json.dumps(report))
    return path


def choose(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "choose_alpha.py"), *map(str, args)],
                          capture_output=True, text=True)


def test_picks_the_most_realistic_model_within_the_psnr_cost(tmp_path):
    l1 = write_report(tmp_path / "l1.json", {"l1": (20.0, 0.99)})
    sweep = write_report(tmp_path / "sweep.json", {"a1.0": (19.3, 0.89), "a0.95": (19.6, 0.91),
                                                   "a0.85": (20.2, 0.93)})
    result = choose(l1, sweep, "--reference", "l1")
    assert result.returncode == 0, result.stderr
    assert "| a1.0 | -0.70 | 0.80-0.80 | 89.0 |" in result.stdout
    assert "chosen: a0.95" in result.stdout
    assert "chosen: a1.0" in choose(l1, sweep, "--reference", "l1", "--max-loss", "1").stdout


def test_says_when_no_model_qualifies_or_reports_differ(tmp_path):
    l1 = write_report(tmp_path / "l1.json", {"l1": (20.0, 0.99)})
    far = write_report(tmp_path / "far.json", {"gan": (18.0, 0.85)})
    result = choose(l1, far, "--reference", "l1")
    assert result.returncode == 1 and "no model is within 0.5 dB of l1" in result.stdout
    other_faces = write_report(tmp_path / "other.json", {"gan": (19.9, 0.85)}, faces="xyz")
    result = choose(l1, other_faces, "--reference", "l1")
    assert result.returncode != 0 and "cannot be compared" in result.stderr
    assert "no model labelled 'L1'" in choose(l1, far, "--reference", "L1").stderr
    report = json.loads(far.read_text())
    report["results"]["realism"] = {"by_condition": {}, "occlusions": {}}  # --no-realism
    far.write_text(json.dumps(report))
    assert "evaluate without --no-realism" in choose(l1, far, "--reference", "l1").stderr
