"""benchmarks/bench_own_cpu.py runs end to end, tiny: a batch over its in-memory sender."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts a process

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_own_cpu.py"


@pytest.mark.parametrize("checks", [1, 4])
def test_small_run_prints_cpu_per_job(checks: int) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--jobs", "60", "--rounds", "2", "--checks", str(checks)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == f"jobs 60, rounds 2, checks {checks}"
    rounds = lines[1].split(": ")[1].split()
    assert len(rounds) == 2 and all(float(r) > 0 for r in rounds)
    assert float(lines[2].split(": ")[1]) == min(float(r) for r in rounds)
