"""The dispatch summary tells "stopped" from "asked to stop but finished" (issue 13
point 3), against the built-in "realistic" scenario: Shared's LegacyExport ignores
SoftStop (it runs on to its end), DailyReport honours it 5 s after it is sent."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import cli_env, run_cli

from async_orch.simulator import SimulatorHandle

pytestmark = pytest.mark.slow  # starts a process

# 20 simulated seconds per real second. Each job may run 0.5 s real (10 s simulated,
# 8 s past its pickup) once started: both run 20 s or more, so both are still
# running at their deadline. DailyReport stops 5 s after the SoftStop; LegacyExport
# ends by itself (at most 90 s, 4.5 s real) well within the 30 s before the Kill.
SCALE = 20.0


async def test_the_summary_counts_jobs_that_finished_despite_the_stop(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator("realistic", time_scale=SCALE)
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "folder,process,inputs\nShared,LegacyExport,\nShared,DailyReport,\n", encoding="utf-8"
    )
    run = await run_cli(
        "dispatch", "--url", sim.url, "--file", str(jobs), "--job-timeout", "0.5",
        "--stop-on-timeout", "--stop-grace", "30", env=cli_env(tmp_path),
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    legacy, report = run.rows()
    assert report["outcome"] == "stopped" and report["stop_sent"] == "SoftStop"
    assert legacy["outcome"] in ("successful", "faulted") and legacy["stop_sent"] == "SoftStop"
    summary = re.search(r"^2 jobs: .*$", run.stderr, re.MULTILINE)
    assert summary is not None, run.stderr
    counts = ", ".join(sorted([f"{legacy['outcome']} 1", "stopped 1"]))
    assert summary.group(0) == f"2 jobs: {counts} (1 asked to stop but finished)"
