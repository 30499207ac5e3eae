"""The client facing a tenant's robots (issue 13 point 1), against the "realistic"
simulator over real sockets: a 409 at start is explained and never retried, a job
Pending too long is reported stuck_pending (and stopped if asked)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from test_dispatcher_support import START_JOBS, fast_poll, fast_settings, requests_to

from async_orch._client import OrchestratorClient
from async_orch._errors import ConflictError, StuckPendingError
from async_orch._jobs import JobRequest, Outcome, Progress
from async_orch._options import Hooks, StopPolicy
from async_orch._states import JobState


async def test_a_folder_without_machine_fails_its_request_once_with_the_fix(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start_simulator("realistic", time_scale=100.0)
    requests = [
        JobRequest(process="Echo", folder="Sandbox", inputs={"n": 1}),
        JobRequest(process="Echo", folder="Finance", inputs={"n": 2}),
    ]
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        refused, done = await orch.run_jobs(requests, timeout=30)
    assert done.outcome is Outcome.SUCCESSFUL
    assert refused.outcome is Outcome.NOT_STARTED
    assert isinstance(refused.error, ConflictError)
    assert refused.error.error_code == 2818
    assert refused.attempts == 1  # a 409 is final: never posted again
    text = str(refused.error)
    assert "Could not find a machine with Unattended or NonProduction runtimes" in text
    assert "'Sandbox' has no machine with unattended runtimes" in text
    assert "assign a machine (template) with unattended runtimes to the folder" in text
    assert requests_to(sim, START_JOBS) == 2


async def test_a_robot_id_not_in_the_folder_is_explained(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start_simulator("realistic", time_scale=100.0)
    request = JobRequest(process="Echo", folder="Finance", strategy="Specific", robot_ids=[6])
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        (result,) = await orch.run_jobs([request], timeout=30)
    assert result.outcome is Outcome.NOT_STARTED
    assert isinstance(result.error, ConflictError)
    assert result.attempts == 1
    assert "is not a robot of folder 'Finance'" in str(result.error)


async def test_jobs_pending_too_long_are_reported_stuck_and_optionally_stopped(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start_simulator("realistic", time_scale=100.0)
    requests = [
        JobRequest(process="Echo", folder="HR", inputs={"n": 1}, jobs_count=2),
        JobRequest(process="Echo", folder="Shared", inputs={"n": 2}),
    ]
    ages: list[float | None] = []  # Progress is one object, updated in place

    def on_progress(progress: Progress) -> None:
        ages.append(progress.oldest_pending("HR"))

    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        results = await orch.run_jobs(
            requests,
            timeout=60,
            stop=StopPolicy(pending_timeout=0.5),
            hooks=Hooks(on_progress=on_progress),
        )
        assert ages[-1] is None  # all reported
        assert any(age is not None for age in ages)
        stopped = await orch.run_jobs(
            requests[:1],
            timeout=60,
            stop=StopPolicy(on_timeout=True, grace=5, pending_timeout=0.5),
        )
    first, second, shared = results
    assert shared.outcome is Outcome.SUCCESSFUL  # picked up at once: never stuck
    for result in (first, second):
        assert result.outcome is Outcome.STUCK_PENDING
        assert result.state is JobState.PENDING  # left Pending, not stopped
        assert isinstance(result.error, StuckPendingError)
        assert result.error.folder == "HR"
        assert result.error.seconds >= 0.5
        assert "stayed Pending for" in str(result.error)
        assert "in folder 'HR'" in str(result.error)
        assert "still Pending" in str(result.error)
    for stop in stopped:
        assert stop.outcome is Outcome.STUCK_PENDING
        assert stop.state is JobState.STOPPED
        assert isinstance(stop.error, StuckPendingError) and stop.error.stopped
        assert "it was stopped" in str(stop.error)
    # The simulator agrees: the first two jobs still Pending in HR, the next two stopped.
    states = sim.simulator.stats()["tenants"]["demo/DefaultTenant"]["jobs_by_state"]
    assert states.get("Pending") == 2 and states.get("Stopped") == 2


async def test_stuck_pending_is_found_in_a_folder_watched_by_range_queries(
    start_simulator: Callable[..., Any],
) -> None:
    """Range queries return only ended jobs: a job Pending past its limit is read by
    id to confirm it (else it would wait for the batch's timeout as 'maybe picked up')."""
    sim = await start_simulator("realistic", time_scale=100.0)
    requests = [JobRequest(process="Echo", folder="HR", inputs={"n": 1}, jobs_count=3)]
    poll = replace(fast_poll(), range_threshold=1)  # 3 jobs in HR: ranges
    async with OrchestratorClient(fast_settings(sim), poll=poll) as orch:
        # The limit is found within a second or two; without the read by id, only the
        # planner's slow overdue reads (~25 s here) would see it, after this timeout.
        results = await orch.run_jobs(requests, timeout=10, stop=StopPolicy(pending_timeout=0.5))
    assert [r.outcome for r in results] == [Outcome.STUCK_PENDING] * 3
    assert all(r.state is JobState.PENDING for r in results)
