"""The light install: `pip install ".[demo]"` in a fresh venv brings no torch, and `complete`
(one photo and a folder), its errors and the demo run there on onnxruntime.

Builds the venv once per pyproject.toml (about 1.5 minutes from pip's local cache) under
~/.cache/collaface-tests/, then points it at this checkout with an editable install.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import textwrap
import venv
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from collaface.data import io

pytestmark = pytest.mark.slow
EXAMPLE = REPO_ROOT / "examples" / "astronaut.jpg"


@pytest.fixture(scope="module")
def light_python() -> Path:
    """The python of a venv with `collaface[demo]` (no torch), installed from this checkout."""
    key = hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    home = Path.home() / ".cache" / "collaface-tests" / f"light-{key}"
    python = home / "bin" / "python"
    if not (home / "ready").is_file():
        shutil.rmtree(home, ignore_errors=True)
        venv.create(home, with_pip=True)
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{REPO_ROOT}[demo]"],
                             capture_output=True, text=True)
        assert pip.returncode == 0, pip.stderr[-3000:]
        (home / "ready").write_text(key)
    else:  # the venv may come from another checkout: point it at this one
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(REPO_ROOT)],
                             capture_output=True, text=True)
        assert pip.returncode == 0, pip.stderr[-3000:]
    return python


def in_venv(python: Path, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(Path.home()), "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.run([str(python), *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_the_light_install_has_no_torch(light_python):
    done = in_venv(light_python, "-c", "import importlib.util as u; print([m for m in ('torch', 'onnxruntime', "
                                       "'mediapipe', 'gradio') if u.find_spec(m)])")
    assert done.stdout.strip() == "['onnxruntime', 'mediapipe', 'gradio']", done.stderr


def test_complete_one_photo_and_a_folder_without_torch(light_python, tmp_path):
    one = in_venv(light_python, "-m", "collaface", "complete", str(EXAMPLE), "--region", "eyes",
                  "--out", str(tmp_path / "one.png"), "--side-by-side", str(tmp_path / "sbs.png"))
    assert one.returncode == 0, one.stderr
    photo, result = io.load_rgb(EXAMPLE), io.load_rgb(tmp_path / "one.png")
    changed = (photo.astype(int) - result).any(axis=2)
    assert result.shape == photo.shape and 100 < changed.sum() < 0.05 * changed.size
    rows = np.nonzero(changed.any(axis=1))[0]
    assert rows.max() < photo.shape[0] / 2  # the eyes, in the upper half

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "a.jpg")
    Image.open(EXAMPLE).save(folder / "b.png")
    batch = in_venv(light_python, "-m", "collaface", "complete", str(folder), "--region", "mouth",
                    "--out", str(tmp_path / "out"), "--no-progress")
    assert batch.returncode == 0, batch.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "b.png", "failures.csv"]
    assert "none failed" in batch.stdout

    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    bad = in_venv(light_python, "-m", "collaface", "complete", str(EXAMPLE), "--mask", str(tmp_path / "broken.png"))
    assert bad.returncode == 2 and "broken.png" in bad.stderr


def test_the_demo_serves_and_completes_without_torch(light_python, tmp_path):
    script = textwrap.dedent(f"""
        import socket, sys, urllib.request
        from collaface.data import io
        from collaface.demo.app import DemoSession, build_app, launch
        from collaface.inference.engine import FaceCompleter

        session = DemoSession(FaceCompleter())
        picture, parsing, landmarks, files, status = session.complete(
            None, "mouth", False, io.load_rgb({str(EXAMPLE)!r}))
        assert picture is not None and len(files) == 3, status
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        app = build_app(session)
        url = launch(app, "127.0.0.1", port, block=False)
        page = urllib.request.urlopen(url, timeout=60).read().decode()
        app.close()
        session.close()
        print(session.completer.engine.runtime, "collaface" in page, "torch" in sys.modules)
    """)
    done = in_venv(light_python, "-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "onnx True False"
