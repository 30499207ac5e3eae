"""The JobWatcher on an in-memory API: outputs read once, deadlines, batched stops.

Jobs change state only when a test (or a stop call) changes them; the watcher
polls every few milliseconds, so each test waits on the watcher's own output.
"""

from __future__ import annotations

import ast
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from fakes import FakeAPI, FakeJob

from async_orch import _poller as poller_module
from async_orch._errors import AuthenticationError, JobLostError, NotFoundError, TransportError
from async_orch._jobs import JobHandle
from async_orch._models import Job
from async_orch._options import StopPolicy
from async_orch._planner import ListUnfinished, PollPolicy
from async_orch._poller import Finished, JobWatcher, WatcherGroup
from async_orch._seams import FolderRef, RangeAnswer
from async_orch._states import JobState

POLL = PollPolicy(min_interval=0.005, max_interval=0.02, probe_rate_per_second=1000.0)


def add_job(
    api: FakeAPI,
    job_id: int,
    folder: str = "Shared",
    *,
    state: JobState = JobState.PENDING,
    obeys_soft_stop: bool = True,
) -> JobHandle:
    resolved = api.folder(folder)
    api.jobs[job_id] = FakeJob(
        id=job_id,
        folder=resolved,
        reference=f"r{job_id}",
        inputs={"id": job_id},
        state=state,
        obeys_soft_stop=obeys_soft_stop,
    )
    return JobHandle(
        job_id=job_id,
        job_key=None,
        folder_id=resolved.id,
        folder_key=None,
        folder_path=folder,
        reference=f"r{job_id}",
    )


async def watch_all(
    watcher: JobWatcher, handles: list[JobHandle], **watch_args: Any
) -> list[Finished]:
    finished: list[Finished] = []

    async def collect(item: Finished) -> None:
        finished.append(item)

    for handle in handles:
        watcher.watch(handle, **watch_args)
    watcher.close()
    # Warnings (a failed read) go to a capture, whatever logging other tests set up.
    with structlog.testing.capture_logs(), anyio.fail_after(20):  # fail_after: a safety net
        await watcher.run(collect)
    return finished


async def test_final_jobs_are_read_once_by_id_with_their_outputs() -> None:
    api = FakeAPI()
    handles = [add_job(api, 1), add_job(api, 2, "HR"), add_job(api, 3, state=JobState.FAULTED)]
    api.jobs[1].state = api.jobs[2].state = JobState.SUCCESSFUL
    finished = await watch_all(JobWatcher(api, policy=POLL), handles)

    by_id = {f.handle.job_id: f for f in finished}
    assert set(by_id) == {1, 2, 3}
    assert not any(f.timed_out for f in finished)
    assert by_id[1].job is not None and by_id[1].job.output_arguments == {"id": 1}
    assert by_id[3].job is not None and by_id[3].job.state is JobState.FAULTED
    gets = sorted(c[2] for c in api.calls if c[0] == "get")
    assert gets == [1, 2, 3]  # exactly one read by id per job


class GatedReads(FakeAPI):
    """Reads by id wait at a gate, counting how many wait there at once."""

    def __init__(self) -> None:
        super().__init__()
        self.read_gate = anyio.Event()
        self.reading = 0
        self.most_reading = 0
        self.arrived = anyio.Event()

    async def get_job(self, folder: FolderRef, job_id: int) -> Job:
        self.reading += 1
        self.most_reading = max(self.most_reading, self.reading)
        self.arrived.set()
        await self.read_gate.wait()
        self.reading -= 1
        return await super().get_job(folder, job_id)


async def test_reads_by_id_run_at_most_fetch_concurrency_at_once_and_none_is_lost() -> None:
    api = GatedReads()
    handles = [add_job(api, i, state=JobState.SUCCESSFUL) for i in range(1, 21)]
    watcher = JobWatcher(api, policy=POLL, fetch_concurrency=3)

    async def open_gate_once_they_queue() -> None:
        await api.arrived.wait()
        await anyio.wait_all_tasks_blocked()  # every reader that can start has started
        api.read_gate.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(open_gate_once_they_queue)
        finished = await watch_all(watcher, handles)

    assert api.most_reading == 3
    assert sorted(f.handle.job_id for f in finished) == list(range(1, 21))
    assert sorted(c[2] for c in api.calls if c[0] == "get") == list(range(1, 21))


class ReadsInWaves(FakeAPI):
    """Jobs 1-5 end at once; jobs 6-10 end once the first five are read."""

    async def get_job(self, folder: FolderRef, job_id: int) -> Job:
        job = await super().get_job(folder, job_id)
        if sum(1 for c in self.calls if c[0] == "get") == 5:
            for later in range(6, 11):
                self.jobs[later].state = JobState.SUCCESSFUL
        return job


async def test_reader_tasks_outlive_a_burst_of_reads_and_end_with_the_run() -> None:
    api = ReadsInWaves()
    handles = [add_job(api, i, state=JobState.RUNNING) for i in range(1, 11)]
    for i in range(1, 6):
        api.jobs[i].state = JobState.SUCCESSFUL
    watcher = JobWatcher(api, policy=POLL, fetch_concurrency=2)
    spawned = 0
    read_queued = watcher._read_queued

    async def counted(*args: Any) -> None:
        nonlocal spawned
        spawned += 1
        await read_queued(*args)

    watcher._read_queued = counted  # type: ignore[method-assign,assignment]
    finished = await watch_all(watcher, handles)  # returns: no reader is left waiting

    assert sorted(f.handle.job_id for f in finished) == list(range(1, 11))
    assert spawned <= 2  # two bursts of reads, the same (at most two) readers
    assert watcher._fetchers == 0 and not watcher._idle_readers


async def test_a_run_cancelled_while_its_readers_read_or_wait_returns_at_once() -> None:
    api = GatedReads()  # the gate never opens: the reads hang
    handles = [add_job(api, 1, state=JobState.SUCCESSFUL)]
    handles += [add_job(api, i, state=JobState.RUNNING) for i in range(2, 5)]
    watcher = JobWatcher(api, policy=POLL, fetch_concurrency=3)
    for handle in handles:
        watcher.watch(handle)
    watcher.close()

    async def collect(item: Finished) -> None:
        raise AssertionError(f"nothing can finish: {item}")

    with anyio.fail_after(20):  # a safety net: the cancellation must end the run
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher.run, collect)
            await api.arrived.wait()  # one reader reads (and hangs); others may wait
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert watcher._fetchers == 0


async def test_a_fatal_error_in_one_reader_ends_the_run_while_others_wait() -> None:
    class RevokedReads(FakeAPI):
        async def get_job(self, folder: FolderRef, job_id: int) -> Job:
            await anyio.lowlevel.checkpoint()
            raise AuthenticationError("refused", status=401, hint="check the secret")

    api = RevokedReads()
    handles = [add_job(api, 1, state=JobState.SUCCESSFUL)]
    handles += [add_job(api, i, state=JobState.RUNNING) for i in range(2, 4)]
    watcher = JobWatcher(api, policy=POLL, fetch_concurrency=4)
    # The watcher's task group carries it out (the batch layer unwraps it: _fatal.py).
    with pytest.raises(BaseExceptionGroup) as raised:
        await watch_all(watcher, handles)
    assert [type(e) for e in raised.value.exceptions] == [AuthenticationError]
    assert watcher._fetchers == 0


async def test_state_changes_are_reported_in_order() -> None:
    api = FakeAPI()
    handle = add_job(api, 1, state=JobState.RUNNING)
    changes: list[tuple[JobState | None, JobState]] = []
    seen_running = anyio.Event()

    def on_state(handle: JobHandle, old: JobState | None, new: JobState) -> None:
        changes.append((old, new))
        seen_running.set()

    watcher = JobWatcher(api, policy=POLL, on_state=on_state)

    async def finish_later() -> None:
        await seen_running.wait()
        api.jobs[1].state = JobState.SUCCESSFUL

    async with anyio.create_task_group() as tg:
        tg.start_soon(finish_later)
        await watch_all(watcher, [handle])
    assert changes == [(None, JobState.RUNNING), (JobState.RUNNING, JobState.SUCCESSFUL)]


async def test_past_the_deadline_without_stop_jobs_are_reported_with_their_last_state() -> None:
    api = FakeAPI()
    handles = [add_job(api, i, state=JobState.RUNNING) for i in (1, 2)]
    watcher = JobWatcher(api, policy=POLL, stop_policy=StopPolicy(on_timeout=False))
    finished = await watch_all(watcher, handles, timeout=0.1)

    assert {f.handle.job_id for f in finished} == {1, 2}
    assert all(f.timed_out and f.state is JobState.RUNNING for f in finished)
    assert api.stops() == []


async def test_stops_are_batched_per_folder_and_kill_follows_for_stubborn_jobs() -> None:
    api = FakeAPI()
    handles = [
        add_job(api, 1, state=JobState.RUNNING),
        add_job(api, 2, state=JobState.RUNNING, obeys_soft_stop=False),
        add_job(api, 3, "HR", state=JobState.RUNNING),
        add_job(api, 4, "HR", state=JobState.RUNNING),
    ]
    watcher = JobWatcher(api, policy=POLL, stop_policy=StopPolicy(on_timeout=True, grace=0.3))
    finished = await watch_all(watcher, handles, timeout=0.05)

    soft = [c for c in api.stops() if c[3] == "SoftStop"]
    kill = [c for c in api.stops() if c[3] == "Kill"]
    assert sorted(c[2] for c in soft) == [(1, 2), (3, 4)]  # one call per folder
    assert [c[2] for c in kill] == [(2,)]  # only the job that ignored SoftStop
    assert {f.handle.job_id: f.state for f in finished} == dict.fromkeys(
        (1, 2, 3, 4), JobState.STOPPED
    )
    assert all(f.stop_sent is not None for f in finished)


class FirstReadFails(FakeAPI):
    """The first read by id fails (a connection reset)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get_job(self, folder: FolderRef, job_id: int) -> Job:
        self.reads += 1
        if self.reads == 1:
            raise TransportError("reset", method="GET", url="x")
        return await super().get_job(folder, job_id)


class ForgetfulServer(FakeAPI):
    """A server that restarted without its state: lists omit the jobs, reads 404;
    until ``list_errors`` run out, list calls fail (an outage)."""

    async def get_job(self, folder: FolderRef, job_id: int) -> Job:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("get", folder, job_id))
        raise NotFoundError(status=404, method="GET", url="x", message="no such job")


async def test_an_outage_and_a_server_that_forgot_many_jobs_give_one_warning() -> None:
    api = ForgetfulServer()
    api.list_errors = [TransportError("refused", method="GET", url="x") for _ in range(3)]
    add_job(api, 1)
    handles = [dataclasses.replace(add_job(api, 1), job_id=i) for i in range(100, 140)]
    api.jobs.clear()
    watcher = JobWatcher(api, policy=POLL, fetch_concurrency=4)
    finished: list[Finished] = []

    async def collect(item: Finished) -> None:
        finished.append(item)

    for handle in handles:
        watcher.watch(handle)
    watcher.close()
    with structlog.testing.capture_logs() as logs, anyio.fail_after(20):
        await watcher.run(collect)

    assert len(finished) == len(handles)  # every one reported lost
    failed_lists = 3 - len(api.list_errors)
    assert failed_lists >= 1  # the outage was seen
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == ["async_orch.jobs_not_found"]
    assert warnings[0]["count"] == len(handles)
    assert sum(e["event"] == "async_orch.poll_failed" for e in logs) == failed_lists  # info


async def test_a_job_that_ended_before_its_deadline_is_not_stopped() -> None:
    api = FirstReadFails()
    handle = add_job(api, 1, state=JobState.SUCCESSFUL)
    watcher = JobWatcher(api, policy=POLL, stop_policy=StopPolicy(on_timeout=True, grace=5.0))
    # Known Successful (as StartJobs or a list call could say), deadline already
    # past, and its outputs read fails once: it still gets the grace to be read.
    (finished,) = await watch_all(watcher, [handle], timeout=0.0, state=JobState.SUCCESSFUL)

    assert not finished.timed_out
    assert finished.job is not None and finished.job.output_arguments == {"id": 1}
    assert api.stops() == []


async def test_watch_refuses_a_job_twice_and_after_close() -> None:
    api = FakeAPI()
    handle = add_job(api, 1)
    watcher = JobWatcher(api)
    watcher.watch(handle)
    with pytest.raises(ValueError, match="already watched"):
        watcher.watch(handle)
    watcher.close()
    with pytest.raises(RuntimeError, match="after close"):
        watcher.watch(add_job(api, 2))


class GatedLists(FakeAPI):
    """List calls wait at a gate (until it opens); each call's ids are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.list_gate = anyio.Event()
        self.listed: list[tuple[int, ...]] = []
        self.arrived = anyio.Event()

    async def job_states(self, folder: FolderRef, ids: Sequence[int]) -> dict[int, JobState]:
        self.listed.append(tuple(ids))
        self.arrived.set()
        await self.list_gate.wait()
        return await super().job_states(folder, ids)


async def test_a_list_call_carries_the_other_watchers_jobs_and_frees_them_if_cancelled() -> None:
    # Two batches of one client: one list call asks about both; when the batch that
    # made it is cancelled, the other's jobs are due again, not stuck waiting.
    api = GatedLists()
    group = WatcherGroup(POLL)
    # Both jobs are watched at one instant, so both are due for the first list
    # call however long the box stalls between the two watch() calls.
    frozen = [time.monotonic()]

    def clock() -> float:
        return frozen[0] if frozen else time.monotonic()

    watchers = {job_id: JobWatcher(api, policy=POLL, group=group, clock=clock) for job_id in (1, 2)}
    scopes: dict[int, anyio.CancelScope] = {}
    finished: list[Finished] = []

    async def collect(item: Finished) -> None:
        finished.append(item)

    async def run(job_id: int) -> None:
        with anyio.CancelScope() as scope:
            scopes[job_id] = scope
            await watchers[job_id].run(collect)

    for job_id, watcher in watchers.items():
        watcher.watch(add_job(api, job_id, state=JobState.SUCCESSFUL))
        watcher.close()
    frozen.clear()
    with structlog.testing.capture_logs(), anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for job_id in watchers:
                tg.start_soon(run, job_id)
            await api.arrived.wait()
            await anyio.wait_all_tasks_blocked()
            (call,) = api.listed
            assert sorted(call) == [1, 2]  # one call, both batches' jobs
            maker, rider = call  # the maker's own ids come first
            scopes[maker].cancel()
            await anyio.wait_all_tasks_blocked()
            api.list_gate.set()

    # Stuck in the cancelled call, the rider's job would never finish (fail_after).
    assert [f.handle.job_id for f in finished] == [rider]
    assert [c[2] for c in api.calls if c[0] == "get"] == [rider]


class ListsFailThrice(FakeAPI):
    """The first three list calls fail (an outage), then the server answers."""

    def __init__(self) -> None:
        super().__init__()
        self.lists = 0
        self.answering = anyio.Event()

    async def job_states(self, folder: FolderRef, ids: Sequence[int]) -> dict[int, JobState]:
        self.lists += 1
        if self.lists <= 3:
            raise TransportError("reset", method="GET", url="x")
        self.answering.set()
        return await super().job_states(folder, ids)


async def test_failed_list_calls_during_an_outage_are_not_warned_one_by_one() -> None:
    # The transport's health tracker warns once per 30 s of outage; a warning per
    # failed round would flood stderr (several a second).
    api = ListsFailThrice()
    watcher = JobWatcher(api, policy=POLL)
    for job_id in (1, 2):
        watcher.watch(add_job(api, job_id, state=JobState.RUNNING))
    watcher.close()
    finished: list[Finished] = []

    async def collect(item: Finished) -> None:
        finished.append(item)

    with structlog.testing.capture_logs() as logs, anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher.run, collect)
            await api.answering.wait()  # three failed rounds, then one answered
            for job_id in (1, 2):
                api.jobs[job_id].state = JobState.SUCCESSFUL
    assert len(finished) == 2
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == []
    assert [e["event"] for e in logs].count("async_orch.poll_failed") == 3


def test_watchers_use_only_each_others_public_methods() -> None:
    """Batch coordination (WatcherGroup, list calls that carry other watchers'
    jobs) goes through public methods: no ``other._private`` in the module."""
    source = Path(poller_module.__file__).read_text(encoding="utf-8")
    reaching = [
        f"line {node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]
    assert reaching == []


class EndAfterFirstRange(FakeAPI):
    """Every job ends right after the first range query (which sees none ended)."""

    async def unfinished_jobs(
        self, folder: FolderRef, low: int, high: int, *, top: int, also: Sequence[int] = ()
    ) -> RangeAnswer:
        rows = await super().unfinished_jobs(folder, low, high, top=top, also=also)
        for job in self.jobs.values():
            if not job.state.is_terminal:
                job.state = JobState.FAULTED if job.id % 7 == 0 else JobState.SUCCESSFUL
        return rows


async def test_many_jobs_of_a_folder_are_watched_by_range_queries_others_jobs_ignored() -> None:
    api = EndAfterFirstRange()
    ours = [add_job(api, i) for i in range(1, 301) if i % 3]  # 200 jobs
    for i in range(3, 301, 3):
        add_job(api, i)  # another caller's jobs, interleaved in the same range
    # Probes by id wait for max_interval: long enough for them never to be needed.
    policy = PollPolicy(
        list_budget_per_minute=600, min_interval=0.005, max_interval=5.0, range_page=60
    )
    finished = await watch_all(JobWatcher(api, policy=policy), ours)

    assert sorted(f.handle.job_id for f in finished) == [h.job_id for h in ours]
    assert all(
        f.job is not None and f.job.output_arguments == {"id": f.handle.job_id}
        for f in finished
        if f.state is JobState.SUCCESSFUL
    )
    assert {f.state for f in finished} == {JobState.SUCCESSFUL, JobState.FAULTED}
    # One read by id per job of ours (its outputs); none of the other caller's.
    gets = sorted(c[2] for c in api.calls if c[0] == "get")
    assert gets == [h.job_id for h in ours]
    ranges = [c for c in api.calls if c[0] == "unfinished"]
    # The lowest to the highest id watched: a full page of 60 unfinished rows (ours
    # and the other caller's), answering up to id 60. The rest at once from there:
    # no row, so every job of ours above 60 ended (read by id). The 40 jobs the first
    # page saw unfinished, under range_threshold, are then asked for by id list.
    assert [r[2] for r in ranges] == [(1, 299), (61, 299)]
    lists = [c[2] for c in api.calls if c[0] == "states"]
    assert [sorted(ids) for ids in lists] == [[h.job_id for h in ours if h.job_id <= 60]]


async def test_a_range_query_answers_the_groups_other_watchers_too() -> None:
    api = EndAfterFirstRange()
    policy = PollPolicy(list_budget_per_minute=600, min_interval=0.005, max_interval=5.0)
    group = WatcherGroup(policy)
    first = JobWatcher(api, policy=policy, group=group)
    # The second batch would not ask about its jobs for 30 s: only the first's
    # range queries, carrying its jobs, can end it in time.
    slow = PollPolicy(list_budget_per_minute=600, min_interval=30.0, max_interval=60.0)
    second = JobWatcher(api, policy=slow, group=group)
    # The second batch's 39 jobs lie within the first's range (ids 5, 10, ... 195).
    handles = {
        first: [add_job(api, i) for i in range(1, 201) if i % 5],
        second: [add_job(api, i) for i in range(5, 200, 5)],
    }
    finished: list[Finished] = []

    async def collect(item: Finished) -> None:
        finished.append(item)

    with structlog.testing.capture_logs(), anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for watcher, own in handles.items():
                for handle in own:
                    watcher.watch(handle)
                watcher.close()
                tg.start_soon(watcher.run, collect)
    assert sorted(f.handle.job_id for f in finished) == list(range(1, 200))
    assert sorted(c[2] for c in api.calls if c[0] == "get") == list(range(1, 200))
    assert [c[2] for c in api.calls if c[0] in ("unfinished", "states")] == [(1, 199), (1, 199)]


class PurgingServer(FakeAPI):
    """Jobs of ``purged`` no longer exist (not in ``jobs``): reads answer 404."""

    purged: set[int]

    async def get_job(self, folder: FolderRef, job_id: int) -> Job:
        if job_id in self.purged:
            await anyio.lowlevel.checkpoint()
            self.calls.append(("get", folder, job_id))
            raise NotFoundError(status=404, method="GET", url="x", message="no such job")
        return await super().get_job(folder, job_id)


async def test_a_job_gone_from_a_folder_watched_by_ranges_is_reported_lost() -> None:
    # Asking a range for what ended never named a job that no longer exists: while
    # the folder had more jobs than range_threshold it was watched until a deadline.
    # Missing from the unfinished jobs, it is read by id, and the 404s tell.
    api = PurgingServer()
    running = [add_job(api, i, state=JobState.RUNNING) for i in range(1, 21)]
    gone = [add_job(api, i, state=JobState.RUNNING) for i in (21, 22, 23)]
    api.purged = {h.job_id for h in gone}
    for job_id in api.purged:
        del api.jobs[job_id]
    policy = PollPolicy(min_interval=0.005, max_interval=0.02, range_threshold=10)
    watcher = JobWatcher(api, policy=policy)
    finished: list[Finished] = []
    all_lost = anyio.Event()

    async def collect(item: Finished) -> None:
        finished.append(item)
        if len(finished) == len(gone):
            all_lost.set()

    for handle in running + gone:
        watcher.watch(handle)
    with structlog.testing.capture_logs(), anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watcher.run, collect)
            await all_lost.wait()
            tasks.cancel_scope.cancel()

    assert sorted(f.handle.job_id for f in finished) == [21, 22, 23]
    assert all(isinstance(f.error, JobLostError) for f in finished)
    assert [c for c in api.calls if c[0] == "unfinished"]  # the folder was asked by range


def test_list_answers_change_only_the_jobs_they_were_asked_about() -> None:
    # Range rows and id-list states about other jobs (another caller's, or ours
    # in another call or being read by id, whose row may be older) are ignored.
    api = FakeAPI()
    seen: list[tuple[int, JobState]] = []
    watcher = JobWatcher(
        api, policy=POLL, on_state=lambda h, old, new: seen.append((h.job_id, new))
    )
    for job_id in (1, 2):
        watcher.watch(add_job(api, job_id))
    running = JobState.RUNNING
    rows = [(1, running), (2, running), (3, running)]
    query = ListUnfinished(api.folder("Shared").id, 1, 1, (1,), 1000)
    watcher.range_answered([1], RangeAnswer(rows), query=query)
    watcher.list_answered([1], {1: JobState.PENDING, 2: JobState.SUCCESSFUL, 4: running})
    assert seen == [(1, running), (1, JobState.PENDING)]


@pytest.mark.parametrize(
    ("read", "change"),
    [
        ({}, ""),
        ({"Key": "ABCDEF01-0000-0000-0000-000000000007"}, ""),  # any case: the same key
        ({"Key": None, "Reference": None, "OrganizationUnitId": None}, ""),  # unknown: not compared
        (
            {"Key": "99999999-0000-0000-0000-000000000007"},
            "Key '99999999-0000-0000-0000-000000000007' instead of "
            "'abcdef01-0000-0000-0000-000000000007'",
        ),
        ({"Reference": "other"}, "Reference 'other' instead of 'mine'"),
        (
            {"Reference": "other", "OrganizationUnitId": 4},
            "Reference 'other' instead of 'mine'; folder Id 4 instead of 3",
        ),
    ],
)
def test_a_read_names_the_same_job_unless_what_both_know_differs(
    read: dict[str, Any], change: str
) -> None:
    handle = JobHandle(
        job_id=7,
        job_key="abcdef01-0000-0000-0000-000000000007",
        folder_id=3,
        folder_key=None,
        folder_path="Shared",
        reference="mine",
    )
    dto = {
        "Id": 7,
        "State": "Successful",
        "Key": "abcdef01-0000-0000-0000-000000000007",
        "Reference": "mine",
        "OrganizationUnitId": 3,
    }
    assert poller_module.identity_change(handle, Job.from_api(dto | read)) == change
