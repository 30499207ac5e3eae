"""The dispatcher's callbacks on an in-memory API: ``on_state`` hears every state
seen, ``on_abandoned`` hears what an early end left behind.

Jobs change state only when a test changes them (from inside a callback), so
each step waits on the dispatcher's own calls, never on time.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import structlog
from fakes import FakeAPI

from async_orch._dispatcher import Dispatcher, Started
from async_orch._jobs import Abandoned, JobHandle, JobRequest, Outcome
from async_orch._options import AbandonedCallback, Hooks, StateCallback, StopPolicy
from async_orch._planner import PollPolicy
from async_orch._states import JobState

POLL = PollPolicy(min_interval=0.005, max_interval=0.02, probe_rate_per_second=1000.0)

Seen = tuple[int, JobState | None, JobState]


def requests(count: int) -> list[JobRequest]:
    return [
        JobRequest(process="Echo", folder="Shared", inputs={"i": i}, reference=f"ref-{i}")
        for i in range(count)
    ]


def left_running(logs: list[Any]) -> list[Any]:
    return [e for e in logs if e["event"] == "async_orch.jobs_left_running"]


async def test_on_state_hears_each_state_once_in_order_before_the_result() -> None:
    api = FakeAPI()
    dispatcher = Dispatcher(api, poll=POLL)
    seen: list[Seen] = []

    def on_started(index: int, handle: JobHandle) -> None:
        api.jobs[handle.job_id].state = JobState.RUNNING  # picked up by a robot

    def on_state(handle: JobHandle, old: JobState | None, new: JobState) -> None:
        seen.append((handle.job_id, old, new))
        if new is JobState.RUNNING:
            api.jobs[handle.job_id].state = JobState.SUCCESSFUL  # and done

    with anyio.fail_after(20):  # a safety net, not a timing
        (result,) = await dispatcher.run(
            requests(1), hooks=Hooks(on_started=on_started, on_state=on_state)
        )

    assert result.outcome is Outcome.SUCCESSFUL
    assert seen == [
        (result.job_id, None, JobState.PENDING),  # what StartJobs answered
        (result.job_id, JobState.PENDING, JobState.RUNNING),
        (result.job_id, JobState.RUNNING, JobState.SUCCESSFUL),
    ]


async def test_on_state_starts_from_none_for_a_job_re_attached_to() -> None:
    api = FakeAPI(finish_on_start=True)
    (started,) = await Dispatcher(api).start(requests(1))
    assert isinstance(started, Started)
    (handle,) = started.handles
    seen: list[Seen] = []

    with anyio.fail_after(20):
        (result,) = await Dispatcher(api, poll=POLL).run(
            handles=[handle],
            hooks=Hooks(on_state=lambda h, old, new: seen.append((h.job_id, old, new))),
        )

    assert result.outcome is Outcome.SUCCESSFUL
    assert seen == [(handle.job_id, None, JobState.SUCCESSFUL)]


async def cancel_once_started(
    dispatcher: Dispatcher,
    count: int,
    stop: StopPolicy | None = None,
    on_abandoned: AbandonedCallback | None = None,
    on_state: StateCallback | None = None,
) -> None:
    """Run ``count`` requests; cancel the run once every job exists."""
    started: list[JobHandle] = []

    def on_started(index: int, handle: JobHandle) -> None:
        started.append(handle)
        if len(started) == count:
            scope.cancel()

    with anyio.fail_after(20), anyio.CancelScope() as scope:
        hooks = Hooks(on_started=on_started, on_abandoned=on_abandoned, on_state=on_state)
        await dispatcher.run(requests(count), stop=stop, hooks=hooks)
        pytest.fail("run returned although its jobs never end")


async def test_on_abandoned_gets_the_jobs_stopped_after_a_cancel() -> None:
    api = FakeAPI()
    dispatcher = Dispatcher(api, poll=POLL)
    reports: list[Abandoned] = []
    seen: list[Seen] = []

    with structlog.testing.capture_logs() as logs:
        await cancel_once_started(
            dispatcher,
            3,
            stop=StopPolicy(on_cancel=True),
            on_abandoned=reports.append,
            on_state=lambda h, old, new: seen.append((h.job_id, old, new)),
        )

    (report,) = reports
    assert report.reason == "CancelledError"
    assert sorted(h.job_id for h in report.stopped) == sorted(api.jobs)
    assert report.left_running == ()
    assert report.uncertain_references == ()
    assert {j.state for j in api.jobs.values()} == {JobState.STOPPED}
    # Their states come through on_state: the one StartJobs answered, then the
    # last one, from the state they were known in.
    for job_id in api.jobs:
        assert [(old, new) for j, old, new in seen if j == job_id] == [
            (None, JobState.PENDING),
            (JobState.PENDING, JobState.STOPPED),
        ]
    assert left_running(logs) == []


async def test_on_abandoned_takes_over_the_left_running_warning() -> None:
    api = FakeAPI()
    dispatcher = Dispatcher(api, poll=POLL)
    reports: list[Abandoned] = []

    with structlog.testing.capture_logs() as logs:
        await cancel_once_started(dispatcher, 2, on_abandoned=reports.append)

    (report,) = reports
    assert report.stopped == ()
    assert sorted(h.job_id for h in report.left_running) == sorted(api.jobs)
    assert api.stops() == []
    (event,) = left_running(logs)
    assert event["log_level"] == "info"  # the caller reports it; still there with -v
    assert sorted(event["job_ids"]) == sorted(api.jobs)


async def test_a_failing_on_abandoned_neither_hides_the_jobs_nor_the_cancellation() -> None:
    api = FakeAPI()
    dispatcher = Dispatcher(api, poll=POLL)

    def broken(abandoned: Abandoned) -> None:
        raise ValueError("report bug")

    with structlog.testing.capture_logs() as logs:
        await cancel_once_started(dispatcher, 2, on_abandoned=broken)  # cancelled, not raised

    failed = [e for e in logs if e["event"] == "async_orch.callback_failed"]
    assert len(failed) == 1 and "report bug" in str(failed[0]["error"])
    (event,) = left_running(logs)
    assert event["log_level"] == "warning"
    assert sorted(event["job_ids"]) == sorted(api.jobs)


async def test_an_error_in_on_state_ends_the_batch_and_reports_its_jobs() -> None:
    api = FakeAPI()
    dispatcher = Dispatcher(api, poll=POLL)

    def on_started(index: int, handle: JobHandle) -> None:
        api.jobs[handle.job_id].state = JobState.RUNNING

    def broken(handle: JobHandle, old: JobState | None, new: JobState) -> None:
        raise ValueError("state bug")

    with (
        structlog.testing.capture_logs() as logs,
        anyio.fail_after(20),
        pytest.raises(ValueError, match="state bug"),
    ):
        await dispatcher.run(
            requests(1),
            stop=StopPolicy(on_cancel=True),
            hooks=Hooks(on_started=on_started, on_state=broken),
        )
    # The stop on the way out still happened, although on_state failed again there.
    assert {j.state for j in api.jobs.values()} == {JobState.STOPPED}
    assert [e["event"] for e in logs].count("async_orch.callback_failed") == 1
    assert left_running(logs) == []


@pytest.mark.parametrize("which", ["on_started", "on_state"])
async def test_a_callback_failing_in_every_start_comes_out_once_as_it_is(which: str) -> None:
    # Four starts in flight each meet the broken callback before the batch can end;
    # the first failure ends it, alone (not an ExceptionGroup of four), and the
    # later ones are logged.
    api = FakeAPI()
    dispatcher = Dispatcher(api, poll=POLL)

    def broken(*args: object) -> None:
        raise ValueError(f"{which} bug")

    with (
        structlog.testing.capture_logs() as logs,
        anyio.fail_after(20),
        pytest.raises(ValueError, match=f"{which} bug"),
    ):
        await dispatcher.run(requests(4), hooks=Hooks(**{which: broken}))
    (event,) = left_running(logs)
    assert event["reason"] == "ValueError"
    assert sorted(event["job_ids"]) == sorted(api.jobs) and len(api.jobs) == 4
