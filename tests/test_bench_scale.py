"""benchmarks/bench_scale.py runs end to end, tiny: canned server and client processes.

The full run (10,000 and 100,000 jobs) is not a test; this checks that the script
works and prints its figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here starts a process

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_scale.py"


def test_small_run_prints_memory_and_start_rate() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--jobs", "300", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "server: canned aiohttp responder" in done.stdout
    (row,) = [line.split() for line in done.stdout.splitlines() if line.lstrip().startswith("300")]
    assert row[3] == "300"  # every job started within the second
    assert float(row[5]) > 0  # starts/s
