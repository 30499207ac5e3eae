"""Timeouts (batch and per job) and cancellation, against the simulator.

``Slow`` jobs run for simulated months, so they are certainly still running
when a timeout of a second passes; what happens to them is read back from the
simulator's own job records. Cancellations are triggered by events (every job
started), not by time.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import structlog
from test_dispatcher_support import (
    STOP_JOBS,
    engine_jobs,
    fast_client,
    leave_after_first,
    requests_to,
    scenario,
)

from async_orch import Hooks, StopPolicy
from async_orch._client import OrchestratorClient
from async_orch._errors import NotStartedError
from async_orch._jobs import JobHandle, JobRequest, Outcome, Progress
from async_orch._states import JobState
from async_orch.simulator import SimulatorHandle

# 100x: the 2 s pickup takes 20 ms; a Slow job never ends during a test.
SCALE = 100.0


def slow(count: int, folder: str = "Shared", **fields: Any) -> list[JobRequest]:
    return [
        JobRequest(process="Slow", folder=folder, inputs={"i": i}, **fields) for i in range(count)
    ]


async def start(start_simulator: Callable[..., Any], **timings: Any) -> SimulatorHandle:
    handle: SimulatorHandle = await start_simulator(scenario(**timings), time_scale=SCALE)
    return handle


# -- batch timeout ------------------------------------------------------------------


async def test_batch_timeout_reports_jobs_still_running_and_leaves_them(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    async with fast_client(sim) as orch:
        results = await orch.run_jobs(slow(6) + slow(4, "HR"), timeout=1.5)

    assert [r.outcome for r in results] == [Outcome.TIMED_OUT] * 10
    assert all(r.timed_out and r.handle is not None for r in results)
    # The last state seen is reported (the job was picked up long before 1.5 s).
    assert {r.state for r in results} == {JobState.RUNNING}
    # Its info says why it has no end (the CLI's line under the table).
    assert {r.info for r in results} == {
        "still Running when the batch timeout (1.5 s) passed; it may still run"
    }
    assert {j.state for j in engine_jobs(sim)} == {JobState.RUNNING}
    assert requests_to(sim, STOP_JOBS) == 0


async def test_batch_timeout_with_stop_soft_stops_then_reports_stopped(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)  # SoftStop takes 5 simulated s: 50 ms
    async with fast_client(sim) as orch:
        results = await orch.run_jobs(
            slow(5) + slow(5, "HR"), timeout=1.0, stop=StopPolicy(on_timeout=True, grace=20.0)
        )

    assert [r.outcome for r in results] == [Outcome.STOPPED] * 10
    assert all(r.timed_out for r in results)
    jobs = engine_jobs(sim)
    assert {j.state for j in jobs} == {JobState.STOPPED}
    assert {j.stop_strategy for j in jobs} == {"SoftStop"}  # well within the grace
    assert requests_to(sim, STOP_JOBS) == 2  # one StopJobs per folder, not per job


async def test_stop_kills_jobs_that_ignore_soft_stop_after_the_grace(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator, soft_stop_delay=1e9)  # a workflow that never stops
    async with fast_client(sim) as orch:
        results = await orch.run_jobs(
            slow(4), timeout=0.5, stop=StopPolicy(on_timeout=True, grace=0.5)
        )

    assert [r.outcome for r in results] == [Outcome.STOPPED] * 4
    jobs = engine_jobs(sim)
    assert {j.state for j in jobs} == {JobState.STOPPED}
    assert {j.stop_strategy for j in jobs} == {"Kill"}
    assert requests_to(sim, STOP_JOBS) == 2  # SoftStop for all, then Kill for all


async def test_requests_still_waiting_at_the_batch_timeout_are_not_started(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    async with fast_client(sim) as orch:
        orch.set_limits(starts_per_second=2.0)  # 10 starts need 4.5 s; the batch has 1
        results = await orch.run_jobs(slow(10), timeout=1.0)

    outcomes = collections.Counter(r.outcome for r in results)
    assert set(outcomes) == {Outcome.TIMED_OUT, Outcome.NOT_STARTED}
    assert outcomes[Outcome.NOT_STARTED] >= 6
    not_started = [r for r in results if r.outcome is Outcome.NOT_STARTED]
    assert all(isinstance(r.error, NotStartedError) for r in not_started)
    assert all("batch timeout" in str(r.error) and r.handle is None for r in not_started)
    assert len(engine_jobs(sim)) == outcomes[Outcome.TIMED_OUT]


# -- per-job timeout ------------------------------------------------------------------


async def test_a_request_timeout_applies_to_its_job_only(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    requests = [
        JobRequest(process="Echo", folder="Shared", inputs={"fast": 1}, timeout=30.0),
        JobRequest(process="Slow", folder="Shared", inputs={"slow": 1}, timeout=0.5),
        JobRequest(process="Echo", folder="HR", inputs={"fast": 2}),
    ]
    async with fast_client(sim) as orch:
        results = await orch.run_jobs(requests, stop=StopPolicy(on_timeout=True, grace=20.0))

    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL, Outcome.STOPPED, Outcome.SUCCESSFUL]
    assert [r.timed_out for r in results] == [False, True, False]
    assert results[0].outputs == {"fast": 1}
    states = {j.effective_inputs.get("slow"): j.state for j in engine_jobs(sim)}
    assert states[1] is JobState.STOPPED


# -- cancellation -------------------------------------------------------------------


async def run_and_cancel_when_started(
    orch: OrchestratorClient,
    requests: list[JobRequest],
    stop: StopPolicy | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> list[JobHandle]:
    """Run ``requests``; cancel the call once every job has started."""
    started: list[JobHandle] = []
    all_started = anyio.Event()

    def on_started(index: int, handle: JobHandle) -> None:
        started.append(handle)
        if len(started) == len(requests):
            all_started.set()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_when_started() -> None:
                await all_started.wait()
                scope.cancel()

            tg.start_soon(cancel_when_started)
            hooks = Hooks(on_started=on_started, on_progress=on_progress)
            await orch.run_jobs(requests, stop=stop, hooks=hooks)
            pytest.fail("run_jobs returned although its jobs never end")
    assert scope.cancelled_caught
    return started


async def test_cancelled_run_leaves_jobs_running_and_says_which(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    async with fast_client(sim) as orch:
        with structlog.testing.capture_logs() as logs:
            started = await run_and_cancel_when_started(orch, slow(5) + slow(3, "HR"))

    left = [e for e in logs if e["event"] == "async_orch.jobs_left_running"]
    assert len(left) == 1
    assert left[0]["log_level"] == "warning"
    assert sorted(left[0]["job_ids"]) == sorted(h.job_id for h in started)
    assert sorted(left[0]["job_ids"]) == sorted(j.id for j in engine_jobs(sim))
    assert {j.state for j in engine_jobs(sim)} <= {JobState.PENDING, JobState.RUNNING}
    assert requests_to(sim, STOP_JOBS) == 0


async def test_cancelled_run_with_stop_on_cancel_stops_every_job_first(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    snapshots: list[dict[str, int]] = []
    async with fast_client(sim) as orch:
        with structlog.testing.capture_logs() as logs:
            started = await run_and_cancel_when_started(
                orch,
                slow(5) + slow(3, "HR"),
                stop=StopPolicy(on_cancel=True, grace=20.0),
                on_progress=lambda p: snapshots.append(+p.by_state),
            )

    assert len(started) == 8
    # The last progress counts them as what they are, stopped, not as still running.
    assert snapshots[-1] == {"stopped": 8}
    # When the cancellation came out of run_jobs, every job was already stopped.
    assert {j.state for j in engine_jobs(sim)} == {JobState.STOPPED}
    assert not [e for e in logs if e["event"] == "async_orch.jobs_left_running"]
    stopped = [e for e in logs if e["event"] == "async_orch.jobs_stopped"]
    assert stopped and stopped[0]["count"] == 8


async def test_stop_on_timeout_also_stops_on_cancel_unless_told_otherwise(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    async with fast_client(sim) as orch:
        await run_and_cancel_when_started(orch, slow(3), StopPolicy(on_timeout=True, grace=20.0))
    assert {j.state for j in engine_jobs(sim)} == {JobState.STOPPED}

    sim = await start(start_simulator)
    async with fast_client(sim) as orch:
        stop = StopPolicy(on_timeout=True, on_cancel=False)
        await run_and_cancel_when_started(orch, slow(3), stop)
    assert {j.state for j in engine_jobs(sim)} <= {JobState.PENDING, JobState.RUNNING}
    assert requests_to(sim, STOP_JOBS) == 0


async def test_leaving_iter_jobs_early_stops_the_rest_when_asked(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"fast": 1}), *slow(4)]
    first = await leave_after_first(
        fast_client(sim), requests, stop=StopPolicy(on_cancel=True, grace=20.0)
    )

    assert first.outcome is Outcome.SUCCESSFUL and first.outputs == {"fast": 1}
    slow_jobs = [j for j in engine_jobs(sim) if "i" in j.effective_inputs]
    assert len(slow_jobs) == 4
    assert {j.state for j in slow_jobs} == {JobState.STOPPED}


async def test_cancelling_an_iter_jobs_consumer_between_results_is_clean(
    start_simulator: Callable[..., Any],
) -> None:
    """The consumer is cancelled while busy in its own loop body, not in the iterator."""
    sim = await start(start_simulator)
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"fast": 1}), *slow(3)]
    async with fast_client(sim) as orch:
        with structlog.testing.capture_logs() as logs:
            with anyio.CancelScope() as scope:
                async with contextlib.aclosing(orch.iter_jobs(requests)) as results:
                    async for _ in results:
                        scope.cancel()
                        await anyio.sleep_forever()  # cancelled here, between results
    assert scope.cancelled_caught
    left = [e for e in logs if e["event"] == "async_orch.jobs_left_running"]
    assert len(left) == 1 and left[0]["count"] == 3
    assert {j.state for j in engine_jobs(sim) if "i" in j.effective_inputs} <= {
        JobState.PENDING,
        JobState.RUNNING,
    }
