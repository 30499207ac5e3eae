"""A JobWatcher fed by a WebhookReceiver, on the in-memory API: what a signed end
event changes at once (the state, through on_state) and what it leaves to the read
by id (the outputs, and the job's result)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import anyio
from fakes import FakeAPI, FakeJob

from async_orch import WebhookReceiver
from async_orch._jobs import JobHandle
from async_orch._models import Job
from async_orch._planner import PollPolicy
from async_orch._poller import Finished, JobWatcher, WatcherGroup
from async_orch._seams import FolderRef
from async_orch._states import JobState
from async_orch._webhooks import signature_of

SECRET = "s3cret-for-tests"
# No poll falls due within a test: whatever the watcher learns, it learns by push.
SLOW = PollPolicy(min_interval=30.0, max_interval=60.0, probe_rate_per_second=0.001)


class HeldReads(FakeAPI):
    """Reads by id wait until ``reads_open`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.reads_open = anyio.Event()

    async def get_job(self, folder: FolderRef, job_id: int) -> Job:
        await self.reads_open.wait()
        return await super().get_job(folder, job_id)


def ended_job(api: FakeAPI, job_id: int) -> JobHandle:
    """A job that has ended Successful on the server; the watcher knows it Running."""
    folder = api.folder("Shared")
    api.jobs[job_id] = FakeJob(
        id=job_id, folder=folder, reference=f"r{job_id}", inputs={"id": job_id},
        state=JobState.SUCCESSFUL,
    )  # fmt: skip
    return JobHandle(
        job_id=job_id, job_key=f"KEY-{job_id}", folder_id=folder.id, folder_key=None,
        folder_path="Shared", reference=f"r{job_id}",
    )  # fmt: skip


def completed_event(job_id: int, key: str, folder: int) -> tuple[bytes, str]:
    payload = {
        "Type": "job.completed",
        "EventId": f"event-{job_id}-{key}",
        "Timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "Job": {"Id": job_id, "Key": key, "State": "Successful", "OutputArguments": None},
        "OrganizationUnitId": folder,
    }
    body = json.dumps(payload).encode()
    return body, signature_of(SECRET, body)


async def watching(
    api: FakeAPI,
    handle: JobHandle,
    on_state: Callable[[JobHandle, JobState | None, JobState], None],
    test: Callable[[WebhookReceiver, JobWatcher], Awaitable[None]],
) -> list[Finished]:
    """Run a watcher of ``handle`` (known Running) fed by a receiver, while ``test`` runs."""
    receiver = WebhookReceiver(SECRET, wall_clock=time.time)
    watcher = JobWatcher(
        api, policy=SLOW, on_state=on_state, group=WatcherGroup(SLOW, webhooks=receiver)
    )
    finished: list[Finished] = []
    running = anyio.Event()

    async def collect(item: Finished) -> None:
        finished.append(item)

    async def run() -> None:
        running.set()
        await watcher.run(collect)

    with anyio.fail_after(10):  # a safety net: every wait below is on an event
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run)
            await running.wait()
            await anyio.lowlevel.checkpoint()  # run() has joined the group
            watcher.watch(handle, state=JobState.RUNNING)
            watcher.close()
            await test(receiver, watcher)
    return finished


async def test_a_signed_end_event_is_reported_by_on_state_before_the_read_by_id() -> None:
    api = HeldReads()
    handle = ended_job(api, 7)
    seen: list[tuple[JobState | None, JobState]] = []
    reported = anyio.Event()

    def on_state(_: JobHandle, old: JobState | None, new: JobState) -> None:
        seen.append((old, new))
        if new.is_terminal:
            reported.set()

    async def push(receiver: WebhookReceiver, watcher: JobWatcher) -> None:
        body, signature = completed_event(7, "key-7", handle.folder_id)
        assert receiver.receive(body, signature) == (200, "accepted")
        await reported.wait()  # while the read by id is still held
        assert not api.reads_open.is_set()
        assert seen == [(JobState.RUNNING, JobState.SUCCESSFUL)]
        api.reads_open.set()  # the read brings the outputs and ends the job

    (finished,) = await watching(api, handle, on_state, push)
    assert finished.state is JobState.SUCCESSFUL and finished.job is not None
    assert finished.job.output_arguments == {"id": 7}
    assert seen == [(JobState.RUNNING, JobState.SUCCESSFUL)]  # told once
    assert [call[0] for call in api.calls] == ["get"]  # no list call


async def test_an_event_naming_another_job_key_under_the_id_is_ignored() -> None:
    api = FakeAPI()
    handle = ended_job(api, 8)
    seen: list[JobState] = []

    async def push(receiver: WebhookReceiver, watcher: JobWatcher) -> None:
        body, signature = completed_event(8, "key-of-another-job", handle.folder_id)
        assert receiver.receive(body, signature) == (200, "accepted")
        assert watcher.pushed_seen == 0 and seen == []  # nothing read, nothing told
        body, signature = completed_event(8, "key-8", handle.folder_id)  # Keys: any case
        assert receiver.receive(body, signature) == (200, "accepted")
        assert watcher.pushed_seen == 1 and seen == [JobState.SUCCESSFUL]

    (finished,) = await watching(api, handle, lambda _, old, new: seen.append(new), push)
    assert finished.state is JobState.SUCCESSFUL


async def test_a_job_found_ended_by_polling_while_events_arrive_restores_the_usual_pace() -> None:
    # Job 1's end comes by event; job 2's event is lost and polling finds it: the
    # folder's events are not all arriving, so it is polled at the usual pace again.
    api = FakeAPI()
    told, lost = ended_job(api, 1), ended_job(api, 2)
    fast = PollPolicy(min_interval=0.01, max_interval=0.05)
    receiver = WebhookReceiver(SECRET, wall_clock=time.time)
    group = WatcherGroup(fast, webhooks=receiver)
    watcher = JobWatcher(api, policy=fast, group=group)
    finished: list[Finished] = []

    async def collect(item: Finished) -> None:
        finished.append(item)

    assert group.pace is not None
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watcher.run, collect)
            await anyio.lowlevel.checkpoint()  # run() has joined the group
            watcher.watch(told, state=JobState.RUNNING)
            watcher.watch(lost, state=JobState.RUNNING)
            watcher.close()
            body, signature = completed_event(1, "key-1", told.folder_id)
            assert receiver.receive(body, signature) == (200, "accepted")
            assert watcher.pushed_seen == 1
            assert group.pace.factor(told.folder_id, group.clock()) == 4.0  # slowed
    assert sorted(f.handle.job_id for f in finished) == [1, 2]
    assert group.pace.factor(told.folder_id, group.clock()) == 1.0


def started_event(job_id: int, key: str, folder: int) -> tuple[bytes, str]:
    body, _ = completed_event(job_id, key, folder)
    payload = json.loads(body)
    payload.update(Type="job.started", EventId=f"started-{job_id}-{key}")
    payload["Job"]["State"] = "Running"
    body = json.dumps(payload).encode()
    return body, signature_of(SECRET, body)


async def test_only_our_jobs_events_or_ends_slow_a_folders_polling() -> None:
    # Another caller's job.started says nothing about whether our ends will be told:
    # the folder keeps its usual pace. Our own job's start (the subscription tells
    # our jobs' events) or anyone's end (ends are told there) slows it.
    api = FakeAPI()
    ours = ended_job(api, 1)
    folder = ours.folder_id

    async def test(receiver: WebhookReceiver, watcher: JobWatcher) -> None:
        group = watcher._group
        assert group is not None and group.pace is not None
        now = group.clock()
        other_start = started_event(99, "key-99", folder)
        assert receiver.receive(*other_start) == (200, "accepted")
        assert group.pace.factor(folder, now) == 1.0
        own_start = started_event(1, ours.job_key or "", folder)
        assert receiver.receive(*own_start) == (200, "accepted")
        assert group.pace.factor(folder, group.clock()) == 4.0
        assert receiver.receive(*completed_event(1, ours.job_key or "", folder))[0] == 200

    finished = await watching(api, ours, lambda *_: None, test)
    assert [f.handle.job_id for f in finished] == [1]


def test_another_callers_end_event_slows_the_folder() -> None:
    receiver = WebhookReceiver(SECRET, wall_clock=time.time)
    group = WatcherGroup(SLOW, webhooks=receiver, clock=lambda: 100.0)
    assert group.pace is not None
    assert receiver.receive(*started_event(99, "key-99", 5)) == (200, "accepted")
    assert group.pace.factor(5, 100.0) == 1.0
    assert receiver.receive(*completed_event(99, "key-99", 5)) == (200, "accepted")
    assert group.pace.factor(5, 100.0) == 4.0
