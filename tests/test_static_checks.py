"""The package and its tests stay typed (mypy --strict) and lint-clean (ruff), in CI too.

The tests are held to the same strict settings as the package: typed fakes
(``fakes.py``) make that practical, and a test that passes a wrong type on
purpose says so with a ``type: ignore[code]`` (unused ones are errors)."""

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


def test_mypy_strict_passes_on_the_package_and_its_tests() -> None:
    done = _run("mypy", "async_orch", "tests")  # strict settings come from pyproject.toml
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_passes() -> None:
    done = _run("ruff", "check", "async_orch", "tests", "benchmarks")
    assert done.returncode == 0, done.stdout + done.stderr
