"""dispatch reports timed-out jobs with why (issue 15): the limit that passed and
the last state seen, one line each under a table, and how to stop what may still run."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import cli_env, run_cli
from test_dispatcher_support import scenario

from async_orch.simulator import SimulatorHandle

pytestmark = pytest.mark.slow  # starts the CLI


async def test_timed_out_jobs_say_which_limit_passed_and_how_to_stop_them(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(scenario(), time_scale=100.0)
    journal = tmp_path / "j.sqlite"
    run = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Slow", "--folder", "Shared",
        "--count", "2", "--job-timeout", "1", "--format", "table", "--journal", str(journal),
        env=cli_env(
            tmp_path, UIPATH_CLIENT_ID=sim.client_id, UIPATH_CLIENT_SECRET=sim.client_secret
        ),
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    # The state last seen: Pending or Running, whichever the last poll saw.
    why = re.compile(
        r"[01]  timed_out: still (Pending|Running) when the job timeout \(1 s\) passed; "
        r"it may still run"
    )
    lines = [line for line in run.stdout.splitlines() if "timed_out:" in line]
    assert len(lines) == 2 and all(why.fullmatch(line) for line in lines), lines
    assert (
        f"2 timed-out jobs may still run; stop them with:\n  async-orch stop --journal {journal}"
        in run.stderr
    )
