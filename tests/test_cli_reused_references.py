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


async def test_references_of_a_job_file_that_already_name_jobs_are_warned_of(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """The attack review's first step: a file's explicit References used before
    went unwarned; they are looked up in shared calls before anything starts."""
    sim: SimulatorHandle = await start_simulator(time_scale=3600.0)
    env = cli_env(tmp_path, UIPATH_URL=sim.url)
    old = tmp_path / "old.jsonl"
    old.write_text(
        "".join(
            f'{{"folder": "HR", "process": "Echo", "reference": "oldref-{i}"}}\n' for i in (1, 2, 3)
        ),
        encoding="utf-8",
    )
    first = await run_cli("dispatch", "--file", str(old), env=env)
    assert first.returncode == 0, first.stderr
    assert "warning" not in first.stderr

    new = tmp_path / "new.jsonl"
    new.write_text(
        '{"folder": "HR", "process": "Echo", "reference": "newref-0"}\n'
        '{"folder": "HR", "process": "Echo"}\n' + old.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    again = await run_cli("dispatch", "--file", str(new), env=env)
    assert again.returncode == 0, again.stderr
    warning = next(line for line in again.stderr.splitlines() if line.startswith("warning:"))
    assert "3 of the file's 4 References already name jobs (e.g. 'oldref-1' is job" in warning
    assert "in folder HR" in warning and "give those lines new references" in warning
    assert again.stderr.index("warning:") < again.stderr.index("dispatching 5 jobs")
