"""``collaface`` start-up: --help and --version answer without the heavy libraries, and a slow
single photo says what it is doing on stderr."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from collaface import __version__

HEAVY = ("torch", "mediapipe", "gradio", "onnxruntime")


def modules_after(argv: list[str]) -> tuple[int, str, list[str]]:
    """Run ``collaface ARGV`` in a fresh interpreter. -> (exit code, stdout, heavy modules it imported)."""
    script = (
        "import json, sys\n"
        "from collaface.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as done:\n"
        "    code = done.code\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    *text, last = done.stdout.strip().splitlines()
    code, heavy = json.loads(last)
    return code, "\n".join(text), heavy


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["complete", "--help"], ["show-config", "small"]])
def test_help_and_version_import_no_heavy_library(argv):
    code, out, heavy = modules_after(argv)
    assert code == 0 and heavy == []
    if argv == ["--version"]:
        assert out == f"collaface {__version__}"
    if argv == ["--help"]:
        for command in ("complete", "demo", "evaluate", "ablate", "train", "export", "bench"):
            assert command in out


def test_complete_help_states_the_mask_rule():
    _, out, _ = modules_after(["complete", "--help"])
    flat = " ".join(out.split())
    assert "any non-black grey = HOLE" in flat and "painted pixel is hole" in flat and "--invert-mask" in flat


def test_the_face_solutions_load_without_mediapipe_tasks_or_matplotlib():
    """The annotator imports mediapipe's face solutions alone (0.03 s instead of 0.3 s); a later
    ``import mediapipe`` still gets the whole, real package."""
    pytest.importorskip("mediapipe")
    script = (
        "import json, sys\n"
        "from collaface.data.annotate import _import_mediapipe\n"
        "mp = _import_mediapipe()\n"
        "assert _import_mediapipe() is mp  # a second annotator takes the same modules\n"
        "assert callable(mp.solutions.face_detection.FaceDetection) and mp.solutions.face_mesh_connections\n"
        "loaded = sorted(m for m in ('matplotlib', 'mediapipe.tasks') if m in sys.modules)\n"
        "import mediapipe\n"
        "print(json.dumps([loaded, mp.__version__ == mediapipe.__version__, hasattr(mediapipe, 'tasks')]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [[], True, True]
