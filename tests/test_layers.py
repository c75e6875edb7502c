"""The layering of docs/ARCHITECTURE.md holds: import-linter checks the contracts in
pyproject.toml ([tool.importlinter]) on this checkout's package, lazy imports included."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT

# In a child process: import-linter configures logging (and so would mute the tests' loggers).
LINT = f"""
import sys
from pathlib import Path

import collaface
from importlinter.cli import lint_imports

assert Path(collaface.__file__).parent.resolve() == Path({str(REPO_ROOT / "src" / "collaface")!r}).resolve(), (
    f"import-linter would analyse {{collaface.__file__}}, not this checkout")
sys.exit(lint_imports(config_filename={str(REPO_ROOT / "pyproject.toml")!r}, no_cache=True, no_logo=True))
"""


def test_every_import_linter_contract_is_kept():
    done = subprocess.run([sys.executable, "-c", LINT], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
