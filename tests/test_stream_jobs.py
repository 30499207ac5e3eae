"""``OrchestratorClient.stream_jobs``: a batch in a task group owned by an ``async with``
block, against the simulator. Leaving the block early (``break``, an exception, a
cancellation) ends the batch before the block is left, per its stop policy; errors
come out as they are, not in exception groups.

``Slow`` jobs never end during a test; every wait is on an event (a result, a
started job), never on time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from test_dispatcher_deadlines import slow, start
from test_dispatcher_support import STOP_JOBS, engine_jobs, fast_client, requests_to

from async_orch._jobs import Abandoned, JobHandle, JobRequest, Outcome
from async_orch._options import Hooks, StopPolicy
from async_orch._states import JobState

FAST = JobRequest(process="Echo", folder="Shared", inputs={"fast": 1})


def slow_states(sim: Any) -> set[JobState]:
    return {j.state for j in engine_jobs(sim) if "i" in j.effective_inputs}


async def test_every_result_comes_through_the_block(start_simulator: Callable[..., Any]) -> None:
    sim = await start(start_simulator)
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"n": n}) for n in range(5)]
    async with fast_client(sim) as orch, orch.stream_jobs(requests) as results:
        seen = [result async for result in results]
    assert sorted(r.index for r in seen) == list(range(5))
    assert all(
        r.outcome is Outcome.SUCCESSFUL and r.request and r.outputs == r.request.inputs
        for r in seen
    )


async def test_breaking_out_stops_the_rest_before_the_block_is_left(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    abandoned: list[Abandoned] = []
    async with fast_client(sim) as orch:
        async with orch.stream_jobs(
            [FAST, *slow(4)],
            stop=StopPolicy(on_cancel=True, grace=20.0),
            hooks=Hooks(on_abandoned=abandoned.append),
        ) as results:
            async for result in results:
                first = result
                break
        # No aclosing, no garbage collection: the batch is over here.
        assert slow_states(sim) == {JobState.STOPPED}
    assert first.outcome is Outcome.SUCCESSFUL and first.outputs == {"fast": 1}
    (report,) = abandoned
    assert len(report.stopped) == 4 and not report.left_running
    assert report.reason == "break"  # not a CancelledError: nothing cancelled the caller


async def test_an_exception_in_the_block_comes_out_as_it_is_after_the_batch_ends(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    abandoned: list[Abandoned] = []
    async with fast_client(sim) as orch:
        with pytest.raises(KeyError, match="from the body"):  # not an ExceptionGroup
            async with orch.stream_jobs(
                [FAST, *slow(3)], hooks=Hooks(on_abandoned=abandoned.append)
            ) as results:
                async for _ in results:
                    raise KeyError("from the body")
    (report,) = abandoned
    assert len(report.left_running) == 3 and not report.stopped  # StopPolicy.on_cancel False
    assert report.reason == "KeyError"
    assert slow_states(sim) <= {JobState.PENDING, JobState.RUNNING}
    assert requests_to(sim, STOP_JOBS) == 0


async def test_cancelling_the_consumer_ends_the_batch_and_reports_what_it_left(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)
    started: list[JobHandle] = []
    all_started = anyio.Event()

    def on_started(index: int, handle: JobHandle) -> None:
        started.append(handle)
        if len(started) == 3:
            all_started.set()

    async with fast_client(sim) as orch:
        with structlog.testing.capture_logs() as logs:
            with anyio.CancelScope() as scope:
                async with orch.stream_jobs(slow(3), hooks=Hooks(on_started=on_started)) as results:
                    await all_started.wait()
                    scope.cancel()
                    async for _ in results:  # cancelled here: no result ever comes
                        pytest.fail("a Slow job ended")
    assert scope.cancelled_caught
    (left,) = [e for e in logs if e["event"] == "async_orch.jobs_left_running"]
    assert left["count"] == 3
    assert slow_states(sim) <= {JobState.PENDING, JobState.RUNNING}


async def test_a_failing_callback_ends_the_batch_and_comes_out_of_the_loop_as_it_is(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start(start_simulator)

    def on_started(index: int, handle: JobHandle) -> None:
        raise RuntimeError("journal full")

    async with (
        fast_client(sim) as orch,
        orch.stream_jobs(
            slow(1), hooks=Hooks(on_started=on_started), stop=StopPolicy(on_cancel=True, grace=20.0)
        ) as results,
    ):
        with pytest.raises(RuntimeError, match="journal full"):
            async for _ in results:
                pytest.fail("no result was expected")
    assert slow_states(sim) == {JobState.STOPPED}


def test_the_library_creates_no_task_outside_a_task_group() -> None:
    package = Path(__file__).resolve().parent.parent / "async_orch"
    bare = re.compile(r"\.create_task\(|ensure_future\(|\.call_soon\(")
    found = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if bare.search(line)
    ]
    # The simulator's webhook delivery: a server's background task, owned by its
    # aiohttp application (cleanup_ctx cancels and awaits it). aiohttp sets up and
    # cleans up from different tasks, which no task group can span.
    assert [f for f in found if not f.startswith("simulator/app.py:")] == []
    assert len(found) <= 1
