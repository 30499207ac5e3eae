"""The dry run (issue 13 point 2): `orch.validate`, `check` and `dispatch --dry-run` ask
Orchestrator (ValidateDynamicJob) whether each (folder, process) could start a job, over
real sockets against the built-in "realistic" scenario, and start nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import cli_env, run_cli, simulator_jobs
from test_dispatcher_support import fast_settings

from async_orch import (
    JobRequest,
    OrchestratorClient,
    ProcessNotFoundError,
    Validation,
    ValidationProblem,
)
from async_orch._start_refusals import pending_reason_fix
from async_orch.simulator import SimulatorHandle
from async_orch.simulator.robots import REASON_TEXTS


@pytest.fixture
async def realistic(start_simulator: Callable[..., Any]) -> SimulatorHandle:
    handle: SimulatorHandle = await start_simulator("realistic", time_scale=1.0)
    return handle


async def test_validate_answers_per_pair_with_the_cause_and_fix(
    realistic: SimulatorHandle,
) -> None:
    requests = [
        JobRequest(process="Echo", folder="Shared", inputs={"n": 1}),
        JobRequest(process="Echo", folder="Sandbox"),
        JobRequest(process="Echo", folder="Shared", inputs={"n": 2}),  # same pair
        JobRequest(process="EmployeeOnboarding", folder="HR"),
    ]
    async with OrchestratorClient(fast_settings(realistic)) as orch:
        results = await orch.validate(requests)
    assert results == [
        Validation(folder="Shared", process="Echo", is_valid=True),
        Validation(
            folder="Sandbox",
            process="Echo",
            is_valid=False,
            problems=(
                ValidationProblem(
                    "TemplateNoRuntime",
                    REASON_TEXTS["TemplateNoRuntime"],
                    pending_reason_fix("TemplateNoRuntime", "Sandbox"),
                ),
            ),
        ),
        Validation(
            folder="HR",
            process="EmployeeOnboarding",
            is_valid=False,
            problems=(
                ValidationProblem(
                    "TemplateNoHostsAvailable",
                    REASON_TEXTS["TemplateNoHostsAvailable"],
                    pending_reason_fix("TemplateNoHostsAvailable", "HR"),
                ),
            ),
        ),
    ]
    # The same wording as a refused start (409 2818).
    assert "assign a machine (template) with unattended runtimes" in (
        results[1].problems[0].fix or ""
    )
    assert results[1].describe() == "Sandbox / Echo: INVALID (TemplateNoRuntime)"
    assert simulator_jobs(realistic)["created"] == 0


async def test_validate_refuses_an_unknown_process_by_name(realistic: SimulatorHandle) -> None:
    async with OrchestratorClient(fast_settings(realistic)) as orch:
        with pytest.raises(ProcessNotFoundError, match="Echoo"):
            await orch.validate([JobRequest(process="Echoo", folder="Shared")])


@pytest.mark.slow  # starts a process
async def test_dispatch_dry_run_prints_one_line_per_pair_and_starts_nothing(
    realistic: SimulatorHandle, tmp_path: Path
) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "folder,process,inputs\n"
        + "".join(f'Shared,Echo,"{{""n"": {i}}}"\n' for i in range(5))
        + "Sandbox,Echo,\nFinance,InvoiceProcessing,\n",
        encoding="utf-8",
    )
    env = cli_env(tmp_path)
    run = await run_cli(
        "dispatch", "--url", realistic.url, "--file", str(jobs), "--dry-run", env=env
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "Shared / Echo: valid"
    assert lines[1].startswith("Sandbox / Echo: INVALID (TemplateNoRuntime: folder 'Sandbox'")
    assert lines[2] == "Finance / InvoiceProcessing: valid"
    assert len(lines) == 3
    assert "2 of 3 (folder, process) valid" in run.stderr
    assert simulator_jobs(realistic)["created"] == 0
    assert not (tmp_path / "state").exists()  # no journal

    valid = await run_cli(
        "dispatch", "--url", realistic.url, "--process", "Echo", "--folder", "Shared",
        "--folder", "Finance", "--count", "4", "--dry-run", "-q", env=env,
    )  # fmt: skip
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert valid.stdout.splitlines() == ["Shared / Echo: valid", "Finance / Echo: valid"]
    assert valid.stderr == ""


@pytest.mark.slow  # starts a process
async def test_check_validates_each_pair_and_prints_each_error_with_its_fix(
    realistic: SimulatorHandle, tmp_path: Path
) -> None:
    run = await run_cli(
        "check", "--url", realistic.url, "--process", "Echo",
        "--folder", "Shared", "--folder", "Sandbox", env=cli_env(tmp_path),
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    out = run.stdout
    shared, sandbox = out.split("Shared / Echo\n")[1].split("Sandbox / Echo\n")
    assert "ok    dry run        IsValid: a job could start now" in shared
    assert "FAIL  dry run        IsValid: false (ValidateDynamicJob), 1 error(s)" in sandbox
    assert f"error TemplateNoRuntime: {REASON_TEXTS['TemplateNoRuntime']}" in sandbox
    assert "fix: folder 'Sandbox' has no machine with unattended runtimes" in sandbox
    assert "all checks passed" not in out
    assert simulator_jobs(realistic)["created"] == 0
