"""Watch started jobs until they end, with as few requests as the API allows.

Theory of operation: the pure :class:`~async_orch._planner.PollPlanner` decides
*what* to ask and *when*; this module only carries its decisions out.

- ``ListBatch``: one ``GET /odata/Jobs?$filter=Id in (...)`` for many jobs of
  one folder, selecting only Id and State. The list endpoint is rate limited per
  tenant (orchestrator-api.md §4), so the planner spends a budget of such calls;
  a 429 pauses them for the Retry-After the server gave. The watchers of one
  client (a :class:`WatcherGroup`) share that budget, and a list call carries
  the other watchers' jobs of its folder too.
- ``FetchOne``: ``GET /odata/Jobs({id})``, not rate limited, read once per job
  when it is final, because only this route returns OutputArguments.

Deadlines are kept here, not in the planner: a job past its deadline is either
stopped (SoftStop, then Kill after a grace period) or reported as still running.
Stops are sent with one ``StopJobs`` call per folder for all the jobs due at
once, so a batch timeout over 500 jobs costs a handful of calls, not 500.
Nothing is dropped silently: every watched job comes out of :meth:`JobWatcher.run`
exactly once, as a :class:`Finished` record (or is taken back with
:meth:`JobWatcher.forget`, by a caller that reports it itself).

A server can lose a job (404 on every read) or, after a restart that forgot its
jobs, hand the job's id to another job. Both come out as a
:class:`~async_orch._errors.JobLostError`: the full read compares the job's Key,
Reference and folder with the handle's before its record is believed.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from async_orch._errors import (
    JobLostError,
    NotFoundError,
    OutputsUnavailableError,
    RateLimitedError,
    RequestError,
)
from async_orch._jobs import JobHandle
from async_orch._logs import get_logger
from async_orch._models import Job
from async_orch._options import StateCallback, StopPolicy
from async_orch._planner import FetchOne, ListBatch, ListBudget, PollPlanner, PollPolicy
from async_orch._seams import JobsAPI
from async_orch._states import JobState

__all__ = ["Finished", "JobWatcher", "WatcherGroup", "identity_change"]

log = get_logger("async_orch.poller")

_NOT_FOUND_LIMIT = 3  # reads by id answered 404 in a row before a job counts as gone

# Job ids per StopJobs call. UNCONFIRMED: Orchestrator's limit on jobIds per call
# is not documented; 100 stays within what the official SDK sends in one call.
_STOP_CHUNK = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    """A watched job leaving the watcher: final, or timed out (``timed_out``)."""

    handle: JobHandle
    job: Job | None  # the full job when it was read, else None
    state: JobState | None  # the last state seen
    timed_out: bool
    detected: datetime
    error: RequestError | None = None
    stop_sent: str | None = None  # the last stop sent after its deadline, if any
    # Seconds it had been Pending when its pending_timeout passed (None: it did not).
    stuck_pending_for: float | None = None
    # Suspended at its deadline and reported so, not stopped (StopPolicy.on_suspended).
    suspended: bool = False


@dataclass(slots=True)
class _Watched:
    handle: JobHandle
    deadline: float | None
    pending_deadline: float | None = None  # while Pending: when it counts as stuck
    pending_since: float | None = None
    stuck_pending_for: float | None = None
    seen_at: float = -math.inf  # when the server last told its state
    state: JobState | None = None
    job: Job | None = None
    stop_sent: str | None = None  # "SoftStop" / "Kill" once sent
    stop_at: float | None = None  # when the last stop was sent
    not_found: int = 0  # reads by id answered 404 in a row

    def due_at(self, grace: float) -> float | None:
        """When its deadline needs attention next (None: it has no deadline)."""
        if self.stop_at is not None:
            return self.stop_at + grace
        limits = [d for d in (self.deadline, self.pending_deadline) if d is not None]
        return min(limits) if limits else None


class WatcherGroup:
    """The watchers of one client: one list budget, and list calls that carry the
    jobs of several batches.

    A list call costs one request of the tenant's budget whatever its number of
    ids, so when one watcher lists a folder, the other watchers' jobs of that
    folder ride along (up to ``max_batch`` ids in all). Without this, many small
    batches run at once (the request handlers of a service) would each wait for
    a share of the budget.
    """

    def __init__(self, policy: PollPolicy) -> None:
        self.budget = ListBudget(policy.list_budget_per_minute)
        self.watchers: set[JobWatcher] = set()


class JobWatcher:
    """Watch many jobs at once; call :meth:`watch` any time, then :meth:`run`.

    Usage::

        watcher = JobWatcher(api)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher.run, on_finished)
            watcher.watch(handle)
            ...
            watcher.close()   # no more jobs will come: run() returns when all ended
    """

    def __init__(
        self,
        api: JobsAPI,
        *,
        policy: PollPolicy | None = None,
        stop_policy: StopPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        fetch_concurrency: int = 8,
        on_state: StateCallback | None = None,
        group: WatcherGroup | None = None,
    ) -> None:
        self._api = api
        self._group = group  # the client's other watchers (see WatcherGroup)
        self._planner: PollPlanner[int] = PollPlanner(
            policy or PollPolicy(), budget=group.budget if group is not None else None
        )
        self._min_interval = self._planner.policy.min_interval
        self._fresh_within = 2 * self._planner.policy.max_interval
        self._stop_policy = stop_policy or StopPolicy()
        self._clock = clock
        # Reads by id wait in a queue, drained by at most this many tasks at once:
        # a task spawned per read would cost more than the read's own bookkeeping.
        self._fetch_limit = max(1, fetch_concurrency)
        self._fetch_queue: deque[FetchOne[int]] = deque()
        self._fetchers = 0
        self._on_state = on_state
        self._jobs: dict[int, _Watched] = {}
        # Jobs with a deadline, and a lower bound of their next due time, so the
        # loop does not scan every job on every turn.
        self._timed: dict[int, _Watched] = {}
        self._next_due = math.inf
        self._closed = False
        self._wakeup = anyio.Event()
        self._sleeping_until = -math.inf  # when the run loop wakes by itself next

    @property
    def watching(self) -> int:
        """How many jobs are still being watched."""
        return len(self._jobs)

    def watch(
        self,
        handle: JobHandle,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        state: JobState | None = None,
    ) -> None:
        """Start watching a job.

        Args:
            timeout: seconds from now the job may take.
            deadline: a time on this watcher's clock (say, a batch deadline); the
                earlier of the two applies.
            state: the job's state if known (StartJobs answers Pending).

        Raises:
            ValueError: the job is already watched.
        """
        if self._closed:
            raise RuntimeError("watch() after close(): this watcher takes no more jobs")
        if handle.job_id in self._jobs:
            raise ValueError(f"job {handle.job_id} is already watched")
        now = self._clock()
        limits = [
            d for d in (deadline, now + timeout if timeout is not None else None) if d is not None
        ]
        watched = _Watched(handle=handle, deadline=min(limits) if limits else None, state=state)
        pending_timeout = self._stop_policy.pending_timeout
        if pending_timeout is not None and state in (None, JobState.PENDING):
            watched.pending_since, watched.pending_deadline = now, now + pending_timeout
        self._jobs[handle.job_id] = watched
        self._planner.add(handle.job_id, handle.folder_id, now=now, state=state)
        self._track_deadline(watched)
        # Wake the loop only if this job needs it sooner than the loop wakes anyway:
        # a thousand starts must not re-plan a thousand times.
        first = now if state is not None and state.is_terminal else now + self._min_interval
        if min(first, self._next_due) < self._sleeping_until:
            self._wakeup.set()

    def forget(self, job_id: int) -> JobHandle | None:
        """Stop watching a job without a :class:`Finished` record (the caller
        reports it); return its handle, None if it was not watched. Any answer
        about the id still in flight is then taken as an answer about whatever
        job is watched under that id next."""
        watched = self._jobs.pop(job_id, None)
        if watched is None:
            return None
        self._timed.pop(job_id, None)
        self._planner.remove(job_id)
        return watched.handle

    def close(self) -> None:
        """No more jobs will be added; :meth:`run` ends once every job has left."""
        self._closed = True
        self._wakeup.set()

    async def run(self, on_finished: Callable[[Finished], Awaitable[None]]) -> None:
        """Carry out the planner's actions until every job has finished or timed out."""
        if self._group is not None:
            self._group.watchers.add(self)
        try:
            await self._run(on_finished)
        finally:
            if self._group is not None:
                self._group.watchers.discard(self)

    async def _run(self, on_finished: Callable[[Finished], Awaitable[None]]) -> None:
        async with anyio.create_task_group() as tg:
            while True:
                now = self._clock()
                await self._enforce_deadlines(now, on_finished)
                action = self._planner.next_action(now)
                if isinstance(action, FetchOne):
                    self._fetch_queue.append(action)
                    if self._fetchers < self._fetch_limit:
                        self._fetchers += 1
                        tg.start_soon(self._drain_fetches, on_finished)
                    continue
                if action is not None:
                    tg.start_soon(self._execute_list, action)
                    continue
                if self._closed and not self._jobs:
                    return
                wake = self._planner.next_wake(now)
                until = min(math.inf if wake is None else wake, self._next_due)
                delay = max(0.0, until - now)
                self._wakeup = anyio.Event()
                self._sleeping_until = now + delay
                with anyio.move_on_after(delay):
                    await self._wakeup.wait()

    # -- actions -----------------------------------------------------------------

    async def _execute_list(self, action: ListBatch[int]) -> None:
        try:
            await self._list(action)
        finally:
            self._wakeup.set()

    async def _drain_fetches(self, on_finished: Callable[[Finished], Awaitable[None]]) -> None:
        """Read queued jobs by id, one after another, until the queue is empty."""
        try:
            while self._fetch_queue:
                action = self._fetch_queue.popleft()
                replan = True
                try:
                    replan = await self._fetch(action, on_finished)
                finally:
                    # A job read in full and finished leaves nothing new to plan:
                    # waking the loop for each would re-plan a thousand times.
                    if replan or (self._closed and not self._jobs):
                        self._wakeup.set()
        finally:
            self._fetchers -= 1

    async def _list(self, action: ListBatch[int]) -> None:
        folder = self._folder_of(action.job_ids)
        if folder is None:
            return
        # Every group's ids, this watcher's first; each is reported to its own watcher.
        groups = [(self, action.job_ids), *self._riders(action.folder, len(action.job_ids))]
        answered = False
        try:
            ids = [job_id for _, own in groups for job_id in own]
            states = await self._api.job_states(folder, ids)
            answered = True
        except RateLimitedError as exc:
            # A warning: the tenant's list limit is shared with every other client of
            # the tenant, and waiting it out can delay results by a minute.
            log.warning("async_orch.poll_rate_limited", retry_after=exc.retry_after, error=str(exc))
            self._planner.rate_limited(retry_after=exc.retry_after, now=self._clock())
            return
        except RequestError as exc:
            # The transport already retried what is worth retrying; the jobs stay
            # due and are asked about again on the next round. Info, not a warning:
            # during an outage this fires every round, and the transport's health
            # tracker already warns once per 30 s of outage.
            log.info("async_orch.poll_failed", error=str(exc), jobs=len(ids))
            return
        finally:
            for watcher, own in groups:
                if not answered:  # failed or cancelled: the jobs are due again
                    watcher._planner.list_failed(own, now=watcher._clock())
                if watcher is not self:
                    watcher._wakeup.set()  # its loop plans what the answer changed
        for watcher, own in groups:
            watcher._apply_states(own, states)

    def _riders(self, folder: int, taken: int) -> list[tuple[JobWatcher, tuple[int, ...]]]:
        """Jobs of the group's other watchers to list along with this call."""
        if self._group is None:
            return []
        riders = []
        room = self._planner.policy.max_batch - taken
        for watcher in self._group.watchers:
            if room <= 0:
                break
            if watcher is self:
                continue
            ids = watcher._planner.join_list(folder, room=room, now=watcher._clock())
            if ids:
                riders.append((watcher, ids))
                room -= len(ids)
        return riders

    def _apply_states(self, job_ids: Sequence[int], states: Mapping[int, JobState]) -> None:
        """A list call's answer about ``job_ids`` (the ones this watcher asked for)."""
        now = self._clock()
        for job_id in job_ids:
            state = states.get(job_id)
            if job_id not in self._jobs:
                continue  # left meanwhile (timed out, say): the answer is moot
            if state is None:
                self._planner.observe_missing(job_id, now=now)
            else:
                self._jobs[job_id].seen_at = now
                self._note_state(job_id, state)
                self._planner.observe(job_id, state, now=now)

    async def _fetch(
        self, action: FetchOne[int], on_finished: Callable[[Finished], Awaitable[None]]
    ) -> bool:
        """Read one job by id; return whether the planner has something new to plan."""
        watched = self._jobs.get(action.job_id)
        if watched is None:
            return False
        try:
            job = await self._api.get_job(
                watched.handle.folder_key or watched.handle.folder_id, action.job_id
            )
        except NotFoundError as exc:
            if self._jobs.get(action.job_id) is not watched:
                return True  # forgotten meanwhile: the answer is moot
            # A handle that outlived its job (purged, from another tenant or
            # folder, or a server that restarted and forgot it) would otherwise be
            # read forever. A few 404s in a row, not one, in case a just-created
            # job is not readable yet.
            watched.not_found += 1
            if watched.not_found >= _NOT_FOUND_LIMIT:
                # Info: a forgetful server loses every job at once, and each one is
                # reported in the results (JobLostError) anyway.
                log.info("async_orch.job_not_found", job_id=action.job_id, error=str(exc))
                lost = _lost(watched.handle, f"the server answers 404 for it ({exc.message})")
                lost.__cause__ = exc
                await self._finish(watched, on_finished, timed_out=False, error=lost)
                return False
            self._planner.fetch_failed(action.job_id, now=self._clock())
            return True
        except RequestError as exc:
            log.warning("async_orch.fetch_failed", job_id=action.job_id, error=str(exc))
            if self._jobs.get(action.job_id) is watched:
                self._planner.fetch_failed(action.job_id, now=self._clock())
            return True
        if self._jobs.get(action.job_id) is not watched:
            return True  # forgotten meanwhile: the answer is moot
        now = self._clock()
        watched.not_found = 0
        watched.seen_at = now
        changed = identity_change(watched.handle, job)
        if changed:
            log.warning("async_orch.job_identity_changed", job_id=job.id, change=changed)
            lost = _lost(watched.handle, f"its id now names another job ({changed})")
            await self._finish(watched, on_finished, timed_out=False, error=lost)
            return False
        self._note_state(job.id, job.state)
        watched.job = job
        if job.state.is_terminal:
            self._planner.observe_fetched(job.id, now=now)
            job, missing = await self._read_output_file(watched.handle, job)
            watched.job = job
            await self._finish(watched, on_finished, timed_out=False, error=missing)
            return False
        # A fallback probe of a job that is not final yet.
        self._planner.observe(job.id, job.state, now=now)
        return True

    async def _read_output_file(
        self, handle: JobHandle, job: Job
    ) -> tuple[Job, OutputsUnavailableError | None]:
        """Outputs sent as an OutputFile, read in; a failure is the job's error."""
        if job.output_file is None:
            return job, None
        try:
            return await self._api.with_outputs(handle.folder_key or handle.folder_id, job), None
        except RequestError as exc:
            log.warning("async_orch.outputs_unavailable", job_id=job.id, error=str(exc))
            error = OutputsUnavailableError(
                f"job {job.id} ended {job.state}, but its outputs (attachment "
                f"{job.output_file}) could not be read: {exc}. Read them later with "
                "OrchestratorAPI.with_outputs, or in Orchestrator.",
                job_id=job.id,
                output_file=job.output_file,
            )
            error.__cause__ = exc
            return job, error

    # -- deadlines ---------------------------------------------------------------

    def _track_deadline(self, watched: _Watched) -> None:
        due = watched.due_at(self._stop_policy.grace)
        if due is None:
            return
        self._timed[watched.handle.job_id] = watched
        self._next_due = min(self._next_due, due)

    async def _enforce_deadlines(
        self, now: float, on_finished: Callable[[Finished], Awaitable[None]]
    ) -> None:
        if now < self._next_due:
            return
        grace = self._stop_policy.grace
        to_finish: list[_Watched] = []
        to_report_suspended: list[_Watched] = []
        to_stop: dict[str, list[_Watched]] = {"SoftStop": [], "Kill": []}
        next_due = math.inf
        for job_id, watched in list(self._timed.items()):
            if job_id not in self._jobs:
                del self._timed[job_id]
                continue
            due = watched.due_at(grace)
            if due is None:  # its only limit was a pending one, and it left Pending
                del self._timed[job_id]
                continue
            ended = watched.state is not None and watched.state.is_terminal
            if (
                watched.pending_deadline is not None
                and watched.pending_since is not None
                and watched.stop_sent is None
                and now >= due == watched.pending_deadline
            ):
                if watched.seen_at < watched.pending_deadline:
                    # Pending as last seen, but maybe picked up since: stuck only once
                    # an answer from after the limit still says Pending.
                    next_due = min(next_due, now + self._min_interval)
                    continue
                watched.stuck_pending_for = now - watched.pending_since
            if ended and watched.stop_sent is None:
                # It ended in time and only its outputs read is left: give that
                # the grace period rather than report a finished job as timed out.
                due += grace
            if now < due:
                next_due = min(next_due, due)
            elif (suspended := self._suspended_at_deadline(watched, due, now)) is not None:
                if suspended == "later":
                    next_due = min(next_due, now + self._min_interval)
                elif suspended == "wait":
                    watched.deadline = None  # waited for until it ends
                    del self._timed[job_id]
                    log.info("async_orch.suspended_waited_for", job_id=job_id)
                else:
                    to_report_suspended.append(watched)
            elif ended or not self._stop_policy.on_timeout or watched.stop_sent == "Kill":
                to_finish.append(watched)
            else:
                to_stop["Kill" if watched.stop_sent else "SoftStop"].append(watched)
        self._next_due = next_due
        for watched in to_finish:
            await self._finish(watched, on_finished, timed_out=True)
        for watched in to_report_suspended:
            await self._finish(watched, on_finished, timed_out=True, suspended=True)
        for strategy, jobs in to_stop.items():
            if jobs:
                await self._send_stops(jobs, strategy, now)

    def _suspended_at_deadline(self, watched: _Watched, due: float, now: float) -> str | None:
        """What ``StopPolicy.on_suspended`` makes of ``watched`` at its own deadline:
        "wait", "report", "later" (seen running before the deadline: decide on a
        fresher state), or None (not Suspended, or the policy is "timeout")."""
        if (
            self._stop_policy.on_suspended == "timeout"
            or watched.stop_sent is not None
            or watched.deadline is None
            or due != watched.deadline
            or (watched.state is not None and watched.state.is_terminal)
        ):
            return None
        if watched.state is JobState.SUSPENDED:
            # Suspended is slow to change (and polled seldom): as last seen, it stands.
            return self._stop_policy.on_suspended
        if watched.seen_at < watched.deadline and now < watched.deadline + self._fresh_within:
            # Seen running before the deadline, it may be Suspended by now: a poll comes
            # within the job's interval (if polls keep failing, the last state seen
            # decides after two of the longest).
            return "later"
        return None

    async def _send_stops(self, jobs: Sequence[_Watched], strategy: str, now: float) -> None:
        """Stop jobs with one StopJobs call per folder (and per chunk of ids)."""
        by_folder: dict[int | str, list[_Watched]] = {}
        for watched in jobs:
            watched.stop_sent, watched.stop_at = strategy, now
            self._track_deadline(watched)
            handle = watched.handle
            by_folder.setdefault(handle.folder_key or handle.folder_id, []).append(watched)
        for folder, members in by_folder.items():
            for start in range(0, len(members), _STOP_CHUNK):
                ids = [w.handle.job_id for w in members[start : start + _STOP_CHUNK]]
                log.info("async_orch.jobs_stopping", strategy=strategy, job_ids=ids)
                try:
                    await self._api.stop_jobs(folder, ids, strategy=strategy)
                except RequestError as exc:
                    # The grace still runs: a failed SoftStop is followed by Kill,
                    # a failed Kill by reporting the job as timed out.
                    log.warning("async_orch.stop_failed", job_ids=ids, error=str(exc))

    async def _finish(
        self,
        watched: _Watched,
        on_finished: Callable[[Finished], Awaitable[None]],
        *,
        timed_out: bool,
        error: RequestError | None = None,
        suspended: bool = False,
    ) -> None:
        job_id = watched.handle.job_id
        if self._jobs.pop(job_id, None) is None:
            return
        self._timed.pop(job_id, None)
        self._planner.remove(job_id)
        await on_finished(
            Finished(
                handle=watched.handle,
                job=watched.job,
                state=watched.state,
                timed_out=timed_out,
                detected=datetime.now(UTC),
                error=error,
                stop_sent=watched.stop_sent,
                stuck_pending_for=watched.stuck_pending_for,
                suspended=suspended,
            )
        )

    # -- helpers -----------------------------------------------------------------

    def _note_state(self, job_id: int, state: JobState) -> None:
        watched = self._jobs.get(job_id)
        if watched is None or watched.state == state:
            return
        old, watched.state = watched.state, state
        if state is not JobState.PENDING:
            watched.pending_deadline = None  # picked up: the pending limit is met
        if self._on_state is not None:
            self._on_state(watched.handle, old, state)

    def _folder_of(self, job_ids: tuple[int, ...]) -> int | str | None:
        for job_id in job_ids:
            watched = self._jobs.get(job_id)
            if watched is not None:
                return watched.handle.folder_key or watched.handle.folder_id
        return None


def identity_change(handle: JobHandle, job: Job) -> str:
    """How the job read under the handle's id differs from the handle ("": it
    does not). Only what both sides know is compared."""
    pairs = [
        ("Key", handle.job_key and handle.job_key.lower(), job.key and job.key.lower()),
        ("Reference", handle.reference, job.reference),
        ("folder Id", handle.folder_id, job.folder_id),
    ]
    return "; ".join(
        f"{name} {theirs!r} instead of {ours!r}"
        for name, ours, theirs in pairs
        if ours is not None and theirs is not None and ours != theirs
    )


def _lost(handle: JobHandle, why: str) -> JobLostError:
    reference = f" (Reference {handle.reference!r})" if handle.reference else ""
    return JobLostError(
        f"job {handle.job_id}{reference} is lost: {why}. The server may have restarted "
        "and forgotten its jobs; its outcome is unknown. Look for it by Reference "
        "in Orchestrator before starting it again.",
        job_id=handle.job_id,
        reference=handle.reference,
    )
