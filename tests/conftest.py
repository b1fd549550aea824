"""Shared test fixtures. The real MPII samples live in ../shared (beside the checkout), read in place."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FOCUSCLIP_SHARED", REPO.parent / "shared"))
MPII_SAMPLES = SHARED / "samples" / "mpii"
VENV_BIN = REPO / ".venv" / "bin"


@pytest.fixture
def mpii_samples() -> Path:
    """Folder with five real MPII images and their HRNet/mmpose JSON (`test_mpii.json`)."""
    if not (MPII_SAMPLES / "test_mpii.json").is_file():
        pytest.skip("../shared/samples/mpii is absent (as on a user's machine)")
    return MPII_SAMPLES


def console_script(name: str) -> str:
    """Path of an installed console script (`focus-data`, …), preferring the project's .venv."""
    p = VENV_BIN / name
    if p.exists():
        return str(p)
    import shutil

    found = shutil.which(name)
    if not found:
        pytest.skip(f"console script {name} is not installed")
    return found


def load_benchmark(name: str):
    """A script of benchmarks/ (not a package) imported as a module, for testing its pieces."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
