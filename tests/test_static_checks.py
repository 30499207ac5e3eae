"""The package stays typed (mypy --strict) and lint-clean (ruff), in CI too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here starts a process

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_mypy_strict_passes_on_the_package() -> None:
    done = _run("mypy", "async_orch")  # strict settings come from pyproject.toml
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_passes() -> None:
    done = _run("ruff", "check", "async_orch", "tests", "benchmarks")
    assert done.returncode == 0, done.stdout + done.stderr
