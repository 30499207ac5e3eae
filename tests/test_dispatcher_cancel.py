"""Cancellation while StartJobs calls are in flight, on an in-memory API.

A StartJobs held at a gate when the batch is cancelled is let finish, so the
job it created is known (and reported); one that outlives the allowed wait is
reported by its Reference as uncertain.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import anyio
import pytest
import structlog
from anyio import wait_all_tasks_blocked
from fakes import FakeAPI

import async_orch._cancellation as cancellation
from async_orch._dispatcher import Dispatcher
from async_orch._errors import ClientClosedError
from async_orch._jobs import JobHandle, JobRequest
from async_orch._models import Job, StartRequest
from async_orch._options import Hooks
from async_orch._planner import PollPolicy
from async_orch._seams import FolderRef

POLL = PollPolicy(min_interval=0.01, max_interval=0.05)


def requests(count: int) -> list[JobRequest]:
    return [
        JobRequest(process="Echo", folder="Shared", inputs={"i": i}, reference=f"ref-{i}")
        for i in range(count)
    ]


def left_running(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "async_orch.jobs_left_running"]


async def test_a_start_in_flight_at_cancellation_finishes_and_is_reported() -> None:
    api = FakeAPI(gate=anyio.Event())
    dispatcher = Dispatcher(api, poll=POLL)
    started: list[JobHandle] = []
    scope = anyio.CancelScope()

    async def run() -> None:
        with scope:
            await dispatcher.run(
                requests(3), hooks=Hooks(on_started=lambda i, h: started.append(h))
            )

    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await api.wait_until(lambda: api.in_flight == 3)
            scope.cancel()
            await wait_all_tasks_blocked()
            # Cancelled, yet the three calls are still waiting for their answer.
            assert api.in_flight == 3
            assert api.gate is not None
            api.gate.set()
    assert scope.cancelled_caught

    assert len(api.jobs) == 3
    assert sorted(h.job_id for h in started) == sorted(api.jobs)
    (event,) = left_running(logs)
    assert sorted(event["job_ids"]) == sorted(api.jobs)
    assert event["uncertain_references"] == []


async def test_a_start_that_outlives_the_allowed_wait_is_reported_uncertain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cancellation, "ABANDON_START_WAIT", 0.05)
    api = FakeAPI(gate=anyio.Event())  # never opened: the answer never comes
    dispatcher = Dispatcher(api, poll=POLL)
    scope = anyio.CancelScope()

    async def run() -> None:
        with scope:
            await dispatcher.run(requests(2))

    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await api.wait_until(lambda: api.in_flight == 2)
            scope.cancel()
    assert scope.cancelled_caught

    (event,) = left_running(logs)
    assert event["count"] == 0
    assert sorted(event["uncertain_references"]) == ["ref-0", "ref-1"]


class SecondStartHangs(FakeAPI):
    """The second StartJobs creates its job, then holds its answer until ``hold``."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = anyio.Event()

    async def create_jobs(self, folder: FolderRef, request: StartRequest) -> list[Job]:
        jobs = await super().create_jobs(folder, request)
        if len(self.starts()) == 2:
            await self.hold.wait()  # held inside StartJobs: shielded, so it comes back
        return jobs


async def test_cancelled_start_only_logs_the_jobs_it_had_started() -> None:
    api = SecondStartHangs()
    dispatcher = Dispatcher(api)
    scope = anyio.CancelScope()

    async def run() -> None:
        with scope:
            await dispatcher.start(requests(2))

    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await api.wait_until(lambda: len(api.jobs) == 2)
            scope.cancel()
            await wait_all_tasks_blocked()
            api.hold.set()
    assert scope.cancelled_caught

    (event,) = left_running(logs)
    assert sorted(event["job_ids"]) == sorted(api.jobs)


async def test_an_error_in_a_callback_ends_the_batch_and_reports_its_jobs() -> None:
    api = FakeAPI()
    dispatcher = Dispatcher(api, poll=POLL)

    def broken(index: int, handle: JobHandle) -> None:
        raise ValueError("callback bug")

    with structlog.testing.capture_logs() as logs, pytest.raises(ValueError, match="callback bug"):
        await dispatcher.run(requests(1), hooks=Hooks(on_started=broken))
    (event,) = left_running(logs)
    assert event["job_ids"] == list(api.jobs)


class ClosedUnderStarts(FakeAPI):
    """The first two StartJobs create their jobs; the others wait at ``gate``, then
    fail as calls do once the client is closed under them."""

    async def create_jobs(self, folder: FolderRef, request: StartRequest) -> list[Job]:
        if len(self.starts()) < 2:
            return await super().create_jobs(folder, request)
        self.calls.append(("start", str(folder), request.reference))
        self.in_flight += 1
        self._signal()
        assert self.gate is not None
        await self.gate.wait()
        raise ClientClosedError()


async def test_a_client_closed_under_starts_in_flight_is_one_error_and_reports_its_jobs() -> None:
    """An attack review: closing the client while StartJobs calls were in flight
    raised an ExceptionGroup of one ClientClosedError per call."""
    api = ClosedUnderStarts(gate=anyio.Event())
    dispatcher = Dispatcher(api, poll=POLL)
    started: list[JobHandle] = []

    async def close_when_held() -> None:
        await api.wait_until(lambda: api.in_flight >= 6)  # every other start is held
        assert api.gate is not None
        api.gate.set()

    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(close_when_held)
            with pytest.raises(ClientClosedError) as caught:
                await dispatcher.run(
                    requests(8), hooks=Hooks(on_started=lambda i, h: started.append(h))
                )
    assert type(caught.value) is ClientClosedError  # one error, not a group of six

    assert len(started) == 2 and sorted(h.job_id for h in started) == sorted(api.jobs)
    (event,) = left_running(logs)
    assert event["reason"] == "ClientClosedError"
    assert sorted(event["job_ids"]) == sorted(api.jobs)
    # No answer came to the six held calls: each may be on the server, so each is
    # in doubt (a journal's resume waits the reconcile window for them).
    held = [reference for kind, _, reference in api.calls if kind == "start"][2:]
    assert len(held) == 6 and sorted(event["uncertain_references"]) == sorted(held)
