"""Suspended and Resumed jobs (issue 13 point 4), against the simulator over sockets.

A long-running workflow suspends (waiting on an event), freeing its robot, and
resumes later; the client keeps watching it. With a deadline, it is reported as
what it is at the deadline (timed out, last state Suspended), never silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from test_dispatcher_support import TENANT_T, engine_jobs, fast_client

from async_orch._jobs import JobHandle, JobRequest, Outcome
from async_orch._options import Hooks
from async_orch._states import JobState
from async_orch.simulator import SimulatorHandle, parse_scenario

SCENARIO = f"""
seed = 9
{TENANT_T}
[[tenants.processes]]
name = "Sleeper"           # suspends 1 s in, resumes 30 s later, then runs 1 s more
duration = 2
[tenants.processes.lifecycle]
suspend_after = 1
suspend_for = 30
[[tenants.processes]]
name = "Waiter"            # suspends 1 s in until someone resumes it
duration = 2
[tenants.processes.lifecycle]
suspend_after = 1
[[tenants.folders]]
path = "Shared"
capacity = 5
"""


async def start(start_simulator: Callable[..., Any]) -> SimulatorHandle:
    scenario = parse_scenario(SCENARIO, name="suspend")
    sim: SimulatorHandle = await start_simulator(scenario, time_scale=100.0)
    return sim


async def test_a_job_that_suspends_and_resumes_is_waited_for(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    seen: list[JobState] = []
    async with fast_client(sim) as orch:
        (result,) = await orch.run_jobs(
            [JobRequest(process="Sleeper", folder="Shared", inputs={"a": 1})],
            hooks=Hooks(on_state=lambda _h, _old, new: seen.append(new)),
        )
    assert result.outcome is Outcome.SUCCESSFUL and result.outputs == {"a": 1}
    assert JobState.SUSPENDED in seen and seen[-1] is JobState.SUCCESSFUL


async def test_a_suspended_job_at_the_deadline_is_reported_suspended(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    suspended = []

    def on_state(handle: JobHandle, _old: JobState | None, new: JobState) -> None:
        if new is JobState.SUSPENDED:
            suspended.append(handle)

    async with fast_client(sim) as orch:
        (result,) = await orch.run_jobs(
            [JobRequest(process="Waiter", folder="Shared")],
            timeout=1.0,
            hooks=Hooks(on_state=on_state),
        )
    assert suspended
    assert result.outcome is Outcome.TIMED_OUT and result.state is JobState.SUSPENDED
    assert [j.state for j in engine_jobs(sim)] == [JobState.SUSPENDED]


async def test_resume_job_brings_a_waiting_job_to_its_end(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    engine = sim.simulator.tenants[0].engine

    def on_state(handle: JobHandle, _old: JobState | None, new: JobState) -> None:
        if new is JobState.SUSPENDED:  # the admin resumes it (what ResumeJob does)
            assert handle.job_key is not None
            assert engine.resume_job(sim.simulator.sim_now(), handle.job_key)

    async with fast_client(sim) as orch:
        (result,) = await orch.run_jobs(
            [JobRequest(process="Waiter", folder="Shared", inputs={"b": 2})],
            hooks=Hooks(on_state=on_state),
        )
    assert result.outcome is Outcome.SUCCESSFUL and result.outputs == {"b": 2}
