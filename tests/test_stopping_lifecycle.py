"""Stopping is not instant (issue 13 point 3), against the simulator over sockets.

SoftStop only sets the workflow's "should stop" flag: a workflow that never
checks it keeps running (and may end Successful), one that checks stops when it
does; Kill ends any job (orchestrator-api.md §8). The client escalates SoftStop
to Kill after the grace period, and reports what the job really did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from test_dispatcher_support import (
    NEVER,
    STOP_JOBS,
    TENANT_T,
    engine_jobs,
    fast_client,
    leave_after_first,
)

from async_orch._errors import ConfigurationError
from async_orch._jobs import JobRequest, Outcome, Summary
from async_orch._options import StopPolicy
from async_orch._states import JobState
from async_orch.simulator import Scenario, SimulatorHandle, parse_scenario

SCALE = 100.0  # simulated seconds per real second: pickup (2 s) takes 20 ms

SCENARIO = f"""
seed = 3
{TENANT_T}
[[tenants.processes]]
name = "Echo"
duration = 1
[[tenants.processes]]
name = "Stubborn"          # never checks the stop flag, never ends by itself
duration = {NEVER}
[tenants.processes.lifecycle]
soft_stop = "ignore"
[[tenants.processes]]
name = "Finisher"          # never checks the flag; ends 150 s (1.5 s real) in
duration = 150
[tenants.processes.lifecycle]
soft_stop = "ignore"
[[tenants.processes]]
name = "Checker"           # checks the flag 10 s (0.1 s real) after a SoftStop
duration = {NEVER}
[tenants.processes.lifecycle]
soft_stop = 10

[[tenants.folders]]
path = "Shared"
capacity = 20
"""


def scenario() -> Scenario:
    return parse_scenario(SCENARIO, name="stopping")


def jobs(process: str, count: int) -> list[JobRequest]:
    return [JobRequest(process=process, folder="Shared", inputs={"i": i}) for i in range(count)]


def stop_calls(sim: SimulatorHandle) -> int:
    return sum(sim.simulator.stats()["requests"].get(STOP_JOBS, {}).values())


async def test_an_ignored_soft_stop_is_escalated_to_kill_and_reported_stopped(
    start_simulator: Callable[..., Any],
) -> None:
    sim: SimulatorHandle = await start_simulator(scenario(), time_scale=SCALE)
    async with fast_client(sim) as orch:
        results = await orch.run_jobs(
            jobs("Stubborn", 3), timeout=0.5, stop=StopPolicy(on_timeout=True, grace=0.5)
        )

    assert [r.outcome for r in results] == [Outcome.STOPPED] * 3
    assert {r.stop_sent for r in results} == {"Kill"}
    assert not any(r.finished_despite_stop for r in results)
    engine = engine_jobs(sim)
    assert {(j.state, j.stop_strategy) for j in engine} == {(JobState.STOPPED, "Kill")}
    assert stop_calls(sim) == 2  # one SoftStop call, then one Kill call
    assert Summary.of(results).describe() == "3 jobs: stopped 3"


async def test_a_job_asked_to_stop_that_finishes_is_reported_as_what_it_did(
    start_simulator: Callable[..., Any],
) -> None:
    sim: SimulatorHandle = await start_simulator(scenario(), time_scale=SCALE)
    async with fast_client(sim) as orch:
        results = await orch.run_jobs(
            jobs("Finisher", 2) + jobs("Checker", 2),
            timeout=0.5,
            stop=StopPolicy(
                on_timeout=True, grace=30.0
            ),  # the Finishers end long before a Kill would be sent
        )

    by_process = {r.request.process: r for r in results if r.request is not None}
    finisher, checker = by_process["Finisher"], by_process["Checker"]
    assert finisher.outcome is Outcome.SUCCESSFUL and finisher.state is JobState.SUCCESSFUL
    assert finisher.stop_sent == "SoftStop" and finisher.finished_despite_stop
    assert finisher.request is not None and finisher.outputs == finisher.request.inputs
    assert checker.outcome is Outcome.STOPPED and checker.stop_sent == "SoftStop"
    summary = Summary.of(results)
    assert summary.finished_despite_stop == 2
    assert summary.describe() == "4 jobs: stopped 2, successful 2 (2 asked to stop but finished)"
    assert stop_calls(sim) == 1  # no Kill was needed


async def test_leaving_early_kills_jobs_that_ignore_soft_stop(
    start_simulator: Callable[..., Any],
) -> None:
    sim: SimulatorHandle = await start_simulator(scenario(), time_scale=SCALE)
    requests = [
        JobRequest(process="Echo", folder="Shared", inputs={"fast": 1}),
        *jobs("Stubborn", 3),
    ]
    first = await leave_after_first(
        fast_client(sim), requests, stop=StopPolicy(on_cancel=True, grace=0.3)
    )

    assert first.outcome is Outcome.SUCCESSFUL
    stubborn = [j for j in engine_jobs(sim) if "i" in j.effective_inputs]
    assert {(j.state, j.stop_strategy) for j in stubborn} == {(JobState.STOPPED, "Kill")}


def test_soft_stop_setting_is_checked() -> None:
    bad = SCENARIO.replace('soft_stop = "ignore"', 'soft_stop = "never"', 1)
    with pytest.raises(ConfigurationError, match=r"soft_stop must be \"ignore\" or seconds"):
        parse_scenario(bad, name="bad")


def test_a_summary_of_one_job_says_job() -> None:
    assert Summary(total=1, by_outcome={"successful": 1}).describe() == "1 job: successful 1"
    assert Summary(total=0, by_outcome={}).describe() == "0 jobs: none"
