"""Shared fixtures. Tests that need the real photos in ../shared/faces skip cleanly without them."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FACES = REPO_ROOT.parent / "shared" / "faces"


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    """Path to ../shared/faces (celeba_aligned, celeba_crops, celebamaskhq_samples, ...)."""
    if not (SHARED_FACES / "README.md").is_file():
        pytest.skip("../shared/faces is not present")
    return SHARED_FACES


def has_mediapipe() -> bool:
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        return False
    return True


requires_mediapipe = pytest.mark.skipif(not has_mediapipe(), reason="annotation extra (mediapipe) not installed")
