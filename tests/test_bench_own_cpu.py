"""benchmarks/bench_own_cpu.py runs end to end, tiny: a batch over its in-memory sender."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts a process

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_own_cpu.py"


def printed_lines(*arguments: str) -> list[str]:
    """What the script prints with ``arguments``; it must succeed."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return done.stdout.splitlines()


@pytest.mark.parametrize("checks", [1, 4])
def test_small_run_prints_cpu_per_job(checks: int) -> None:
    lines = printed_lines("--jobs", "60", "--rounds", "2", "--checks", str(checks))
    assert lines[0] == f"jobs 60, rounds 2, checks {checks}"
    rounds = lines[1].split(": ")[1].split()
    assert len(rounds) == 2 and all(float(r) > 0 for r in rounds)
    assert float(lines[2].split(": ")[1]) == min(float(r) for r in rounds)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="--instructions runs under valgrind")
def test_instruction_count_per_job() -> None:
    lines = printed_lines("--instructions", "--jobs", "10")
    assert lines[0] == "jobs 2 and 12, checks 1"
    per_job = int(lines[1].split(": ")[1].replace(",", ""))
    # A job is a StartJobs, a list answer's share and a read: far more than a
    # hundred thousand instructions, far fewer than ten million.
    assert 100_000 < per_job < 10_000_000
