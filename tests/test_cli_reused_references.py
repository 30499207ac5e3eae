"""A --reference-prefix whose References already exist in the tenant is warned of
before anything starts (issue 15 point 7): References must identify one job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import cli_env, run_cli

from async_orch.simulator import SimulatorHandle

pytestmark = pytest.mark.slow  # starts the CLI


async def test_a_reused_reference_prefix_is_warned_of_before_starting(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=3600.0)
    env = cli_env(tmp_path, UIPATH_URL=sim.url)
    args = ["dispatch", "--process", "Echo", "--folder", "HR", "--count", "2"]
    first = await run_cli(*args, "--reference-prefix", "inv", env=env)
    assert first.returncode == 0, first.stderr
    assert "warning" not in first.stderr

    again = await run_cli(*args, "--reference-prefix", "inv", env=env)
    assert again.returncode == 0, again.stderr
    warning = next(line for line in again.stderr.splitlines() if line.startswith("warning:"))
    assert "a job with Reference 'inv-0' already exists in folder HR" in warning
    assert "choose a new --reference-prefix" in warning
    assert again.stderr.index("warning:") < again.stderr.index("dispatching 2 jobs")
