"""Watch started jobs until they end, with as few requests as the API allows.

Theory of operation: the pure :class:`~async_orch._planner.PollPlanner` decides
*what* to ask and *when*; this module only carries its decisions out.

- ``ListBatch``: one ``GET /odata/Jobs?$filter=Id in (...)`` for many jobs of
  one folder, selecting only Id and State. The list endpoint is rate limited per
  tenant (orchestrator-api.md §4), so the planner spends a budget of such calls;
  a 429 pauses them for the Retry-After the server gave. The watchers of one
  client (a :class:`WatcherGroup`) share that budget, and a list call carries
  the other watchers' jobs of its folder too.
- ``ListUnfinished``: one ``GET /odata/Jobs`` asking a folder with many jobs
  for those within the batch's id range that have not ended (non-final states
  only, Id and State, ordered by Id, up to 1,000 rows): a watched job missing
  from the rows ended and is read by id; rows of other callers' jobs are
  ignored. Other watchers of the group with jobs in the range are answered by
  the same call.
- ``FetchOne``: ``GET /odata/Jobs({id})``, not rate limited, read once per job
  when it is final, because only this route returns OutputArguments.

With a :class:`~async_orch._webhooks.WebhookReceiver` given to the group, a
signed event saying a job ended makes its watcher read the job by id at once,
and a folder whose events keep arriving is polled less often, back to normal as
soon as they stop (:mod:`async_orch._push_pace`). Events are never trusted
alone: the read by id is what finishes a job, and polling never stops.

Deadlines are decided by the pure :class:`~async_orch._deadlines.Deadlines` and
carried out here: a job past its deadline is either stopped (SoftStop, then Kill
after a grace period) or reported as still running.
Stops are sent with one ``StopJobs`` call per folder for all the jobs due at
once, so a batch timeout over 500 jobs costs a handful of calls, not 500.
Nothing is dropped silently: every watched job comes out of :meth:`JobWatcher.run`
exactly once, as a :class:`Finished` record (or is taken back with
:meth:`JobWatcher.forget`, by a caller that reports it itself).

A server can lose a job (404 on every read) or, after a restart that forgot its
jobs, hand the job's id to another job. Both come out as a
:class:`~async_orch._errors.JobLostError`: the full read compares the job's Id,
Key, Reference and folder with the handle's before its record is believed (a read
answering another Id counts as a failed read, lost after a few in a row, like 404s).
A range query the server refuses, or that keeps failing, makes the planner watch
that folder by id lists (:meth:`~async_orch._planner.PollPlanner.range_failed`).
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup

from async_orch._deadlines import Deadlines
from async_orch._errors import (
    FOLDER_REFUSALS,
    APIError,
    AuthenticationError,
    FolderNotFoundError,
    JobLostError,
    NotFoundError,
    OutputsUnavailableError,
    PermissionDeniedError,
    RateLimitedError,
    RequestError,
    UnauthorizedError,
)
from async_orch._jobs import JobHandle
from async_orch._list_budget import ListBudget
from async_orch._logs import get_logger
from async_orch._models import Job
from async_orch._options import StateCallback, StopPolicy
from async_orch._planner import (
    RANGE_RETRY_AFTER,
    FetchOne,
    ListBatch,
    ListUnfinished,
    PollPlanner,
    PollPolicy,
)
from async_orch._push_pace import PushPace
from async_orch._records import record_builder
from async_orch._resources import STOP_JOBS_CHUNK
from async_orch._seams import JobsAPI, RangeAnswer
from async_orch._shared_budget import SharedListBudget
from async_orch._states import TERMINAL_STATES, JobState
from async_orch._url_lists import ListRoom, job_states_query, split_ids_to_fit
from async_orch._wakeup import Wakeup
from async_orch._webhooks import JobEvent, WebhookReceiver

__all__ = ["Finished", "JobWatcher", "WatcherGroup", "identity_change"]

log = get_logger("async_orch.poller")

_T = TypeVar("_T")

_NOT_FOUND_LIMIT = 3  # reads by id answered 404 in a row before a job counts as gone
# Calls refused in a row before the refusal is taken as final. For the token (after
# the transport's own renewal; a revoked personal access token or secret can never be
# renewed) the batch ends with that error. For a folder (list calls answered errorCode
# 1100, the access to it lost; or calls about its jobs answered 403, a scope or a
# permission in it taken away mid-run) that folder's jobs end with it, and the batch
# ends with it when every folder of the batch is refused alike. Otherwise they would
# be polled for ever (a 403 was retried as a passing failure until the batch timeout:
# attack h9).
_REFUSALS_FINAL = 3
# Errors that refuse the token, not the call: counted toward _REFUSALS_FINAL.
_TOKEN_REFUSED = (AuthenticationError, UnauthorizedError)
# For list calls, a 404 too: the Jobs collection exists in every tenant, so a 404 says
# the tenant or its API is gone (a deleted tenant, a proxy's route), never for a while;
# it was retried silently until the batch timeout (attack h9).
_LIST_REFUSED = (*_TOKEN_REFUSED, NotFoundError)
# Errors that refuse one folder (FOLDER_REFUSALS) are counted per folder.
# Client errors that do not say a list query itself is refused (see _refuses_the_query).
_NOT_REFUSALS = frozenset({401, 403, 404, 408, 429})
_NOT_FOUND_WARN_EVERY = 30.0  # seconds, as the transport's outage warning
_NOT_FOUND_SAMPLE = 10  # job ids named in the one warning about jobs not found

# Job ids per StopJobs call. UNCONFIRMED: Orchestrator's limit on jobIds per call
# is not documented; 100 stays within what the official SDK sends in one call.


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


_build_finished = record_builder(Finished)


@dataclass(slots=True)
class _Watched:
    handle: JobHandle
    state: JobState | None = None
    job: Job | None = None
    # Reads by id in a row that did not return it: answered 404, or with another
    # job's Id (a buggy or hostile proxy); lost after _NOT_FOUND_LIMIT.
    not_found: int = 0
    heard: bool = False  # a webhook event said it ended


class WatcherGroup:
    """The watchers of one client: one list budget, and list calls that carry the
    jobs of several batches.

    A list call costs one request of the tenant's budget whatever its number of
    ids, so when one watcher lists a folder, the other watchers' jobs of that
    folder ride along (up to ``max_batch`` ids in all). Without this, many small
    batches run at once (the request handlers of a service) would each wait for
    a share of the budget.
    """

    def __init__(
        self,
        policy: PollPolicy,
        *,
        webhooks: WebhookReceiver | None = None,
        shared: SharedListBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = ListBudget(policy.list_budget_per_minute)
        self._running: set[JobWatcher] = set()
        self.clock = clock
        # Every list call also takes a slot of this budget, which other clients
        # (in this process or, with Redis, on other hosts) may draw on too.
        self.shared = shared
        # Per folder: whether webhook events arrive (slow polling down) or not.
        self.pace: PushPace[int] | None = None
        if webhooks is not None:
            self.pace = webhooks.new_pace()
            webhooks.subscribe(self.on_event)

    def join(self, watcher: JobWatcher) -> None:
        """``watcher`` runs: its jobs may ride along other watchers' list calls."""
        self._running.add(watcher)

    def leave(self, watcher: JobWatcher) -> None:
        """``watcher`` stopped running."""
        self._running.discard(watcher)

    def others_running(self, watcher: JobWatcher) -> bool:
        """Whether watchers other than ``watcher`` run (whose jobs may ride along)."""
        return len(self._running) > (watcher in self._running)

    def riders(
        self, asking: JobWatcher, folder: int, *, room: ListRoom
    ) -> list[tuple[JobWatcher, tuple[int, ...]]]:
        """Jobs of the other running watchers to list along with ``asking``'s call
        about ``folder`` (as many as ``room`` holds, which they fill); each watcher
        hears of the answer by :meth:`JobWatcher.list_answered`."""
        riders = []
        for watcher in self._running:
            if room.values <= 0:
                break
            if watcher is asking:
                continue
            ids = watcher.join_list(folder, room=room)
            if ids:
                riders.append((watcher, ids))
        return riders

    def range_riders(
        self, asking: JobWatcher, folder: int, low: int, high: int
    ) -> list[tuple[JobWatcher, tuple[int, ...]]]:
        """Jobs of the other running watchers within ``low..high`` of ``folder``,
        settled by ``asking``'s range query; each watcher hears of the answer by
        :meth:`JobWatcher.range_answered`."""
        riders = []
        for watcher in self._running:
            if watcher is not asking:
                ids = watcher.join_range(folder, low, high)
                if ids:
                    riders.append((watcher, ids))
        return riders

    def on_event(self, event: JobEvent) -> None:
        """A verified webhook event: tell the watchers, and note the folder as
        pushing (its polling may slow down) when the event shows that our jobs'
        events, or ends, are told there.

        Any event about a watched job counts (its job.started is what lets
        polling slow before the first end). About another caller's job, only an
        end counts: other callers' starts say nothing about whether our ends will
        be told, and slowed our polling 4x (attack review).
        """
        now = self.clock()
        watched_in: int | None = None
        for watcher in list(self._running):
            found = watcher.pushed(event)
            watched_in = watched_in if watched_in is not None else found
        folder = watched_in if watched_in is not None else event.folder_id
        if self.pace is None or folder is None:
            return
        if watched_in is not None or event.ended:
            self.pace.event(folder, now)

    def observe(self, remaining: int | None) -> None:
        """A list call was answered with this X-RateLimit-Remaining."""
        self.budget.observe(remaining, now=self.clock())


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
        read_outputs: bool = True,
    ) -> None:
        self._api = api
        # False: an OutputFile is not downloaded (the stop after a cancellation
        # wants states only; a slow download held the cancellation up).
        self._read_outputs = read_outputs
        self._group = group  # the client's other watchers (see WatcherGroup)
        self._planner: PollPlanner[int] = PollPlanner(
            policy or PollPolicy(), budget=group.budget if group is not None else None
        )
        self._min_interval = self._planner.policy.min_interval
        self._deadlines: Deadlines[int] = Deadlines(
            stop_policy or StopPolicy(),
            recheck=self._min_interval,
            fresh_within=2 * self._planner.policy.max_interval,
        )
        self._clock = clock
        self._token_refusals = 0  # calls refused for the token in a row
        # When the last token refusal counted arrived: as for a folder (below), calls
        # in flight together refused by one short outage are one refusal, not three in
        # a row that end the batch (review of attack h9b).
        self._token_refused_at = -math.inf
        # Per folder Id: calls about its jobs refused in a row (1100 or 403); and the
        # folders found lost, whose jobs the run loop ends with that error.
        self._folder_refusals: dict[int, int] = {}
        # Per folder Id: when the last refusal counted arrived. A refusal of a call
        # sent before that is news of the same moment, not one more in a row: three
        # reads in flight together, refused by a 403 lasting 0.1 s, ended a folder's
        # 100 jobs that all ended Successful (attack h9b).
        self._folder_refused_at: dict[int, float] = {}
        self._lost_folders: dict[int, FolderNotFoundError | PermissionDeniedError] = {}
        self._refused_folders: set[int] = set()  # folders whose jobs ended refused
        # Every folder this watcher has had jobs in, by id: its path (for messages).
        self._folders: dict[int, str] = {}
        # Reads by id wait in a queue, drained by at most this many reader tasks.
        # Readers live as long as the run loop and wait (each on its own event)
        # when the queue is empty: a task spawned per read, or per burst of reads,
        # would cost more than the read's own bookkeeping.
        self._fetch_limit = max(1, fetch_concurrency)
        self._fetch_queue: deque[FetchOne[int]] = deque()
        self._not_found_ids: list[int] = []  # lost since the last warning
        self._not_found_warned = self._clock()
        self._fetchers = 0  # reader tasks running
        self._idle_readers: deque[Wakeup] = deque()  # one per reader waiting
        self._readers_end = False  # the run loop is done: waiting readers return
        self._on_state = on_state
        self._jobs: dict[int, _Watched] = {}
        self._closed = False
        self._wakeup = Wakeup()
        self._sleeping_until = -math.inf  # when the run loop wakes by itself next
        self.pushed_seen = 0  # jobs whose end a webhook event told first

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
        limit = deadline  # the earlier of the two (a comparison: one a job watched)
        if timeout is not None and (limit is None or now + timeout < limit):
            limit = now + timeout
        self._jobs[handle.job_id] = _Watched(handle=handle, state=state)
        self._folders[handle.folder_id] = handle.folder_path
        self._planner.add(handle.job_id, handle.folder_id, now=now, state=state)
        self._deadlines.add(handle.job_id, now=now, deadline=limit, state=state)
        # Wake the loop only if this job needs it sooner than the loop wakes anyway:
        # a thousand starts must not re-plan a thousand times.
        first = now if state in TERMINAL_STATES else now + self._min_interval
        if min(first, self._deadlines.next_due) < self._sleeping_until:
            self._wakeup.set()

    def stop_sent(self, job_id: int) -> str | None:
        """The last stop sent to a job still watched (SoftStop, Kill), else None."""
        return self._deadlines.stop_sent(job_id)

    def forget(self, job_id: int) -> JobHandle | None:
        """Stop watching a job without a :class:`Finished` record (the caller
        reports it); return its handle, None if it was not watched. Any answer
        about the id still in flight is then taken as an answer about whatever
        job is watched under that id next."""
        watched = self._jobs.pop(job_id, None)
        if watched is None:
            return None
        self._deadlines.remove(job_id)
        self._planner.remove(job_id)
        return watched.handle

    def pushed(self, event: JobEvent) -> int | None:
        """A verified webhook event about a job: if this watcher has it (same folder
        when the event names one), an end makes it read the job by id now. Returns
        the job's folder id when watched, else None."""
        watched = self._jobs.get(event.job_id)
        if watched is None:
            return None
        folder = watched.handle.folder_id
        if event.folder_id is not None and event.folder_id != folder:
            return None  # another folder's job under that id: not ours
        key = watched.handle.job_key
        if event.job_key is not None and key is not None and event.job_key != key.lower():
            return None  # another job under that id (a server that forgot its jobs)
        now = self._clock()
        if event.ended:
            watched.heard = True
        if event.ended and self._planner.pushed(event.job_id, now=now):
            self.pushed_seen += 1
            # The signed event is news that it ended, as a list answer would be: the
            # state is known now (on_state), the read by id only brings outputs.
            self._note_state(event.job_id, event.state, now)
            self._wakeup.set()
        return folder

    def close(self) -> None:
        """No more jobs will be added; :meth:`run` ends once every job has left."""
        self._closed = True
        self._wakeup.set()

    async def run(self, on_finished: Callable[[Finished], Awaitable[None]]) -> None:
        """Carry out the planner's actions until every job has finished or timed out."""
        if self._group is not None:
            self._group.join(self)
        try:
            await self._run(on_finished)
        finally:
            self._warn_not_found(force=True)
            if self._group is not None:
                self._group.leave(self)

    async def _run(self, on_finished: Callable[[Finished], Awaitable[None]]) -> None:
        self._readers_end = False
        async with anyio.create_task_group() as tg:
            try:
                await self._plan_loop(tg, on_finished)
            finally:
                # Normal end (no job left) or not (the task group then cancels
                # the readers anyway): waiting readers return.
                self._readers_end = True
                while self._idle_readers:
                    self._idle_readers.popleft().set()

    async def _plan_loop(
        self, tg: TaskGroup, on_finished: Callable[[Finished], Awaitable[None]]
    ) -> None:
        """Carry out the planner's actions, reads by id through the readers of ``tg``,
        until every job has ended."""
        while True:
            now = self._clock()
            pace_change = self._apply_pace(now)
            if self._lost_folders:
                await self._finish_lost_folders(on_finished)
            await self._enforce_deadlines(now, on_finished)
            action = self._planner.next_action(now)
            if isinstance(action, FetchOne):
                self._fetch_queue.append(action)
                if self._idle_readers:
                    self._idle_readers.popleft().set()
                elif self._fetchers < self._fetch_limit:
                    self._fetchers += 1
                    tg.start_soon(self._read_queued, on_finished)
                continue
            if action is not None:
                tg.start_soon(self._execute_list, action)
                continue
            if self._closed and not self._jobs:
                return
            wake = self._planner.next_wake(now)
            until = min(math.inf if wake is None else wake, self._deadlines.next_due, pace_change)
            delay = max(0.0, until - now)
            self._sleeping_until = now + delay
            await self._wakeup.sleep(delay)

    def _apply_pace(self, now: float) -> float:
        """Slow or restore polling per folder as webhook events come and go; return
        when the pace changes next by itself (inf: not without a new event)."""
        pace = self._group.pace if self._group is not None else None
        if pace is None:
            return math.inf
        for folder, factor in pace.factors(now).items():
            self._planner.set_pace(folder, factor, now=now)
        change = pace.next_change(now)
        return math.inf if change is None else change

    # -- actions -----------------------------------------------------------------

    async def _execute_list(self, action: ListBatch[int] | ListUnfinished[int]) -> None:
        try:
            if isinstance(action, ListUnfinished):
                await self._list_unfinished(action)
            else:
                await self._list(action)
        finally:
            self._wakeup.set()

    async def _read_queued(self, on_finished: Callable[[Finished], Awaitable[None]]) -> None:
        """A reader: read queued jobs by id, one after another; wait while the queue
        is empty; return once the run loop is done."""
        idle = Wakeup()
        try:
            while True:
                if not self._fetch_queue:
                    self._warn_not_found()
                    if self._readers_end:
                        return
                    self._idle_readers.append(idle)
                    await idle.sleep()
                    continue
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

    def _warn_not_found(self, *, force: bool = False) -> None:
        """One warning for the jobs found lost (404) since the last one: at the end
        of the run, or meanwhile at most every _NOT_FOUND_WARN_EVERY seconds."""
        now = self._clock()
        if self._not_found_ids and (force or now - self._not_found_warned >= _NOT_FOUND_WARN_EVERY):
            self._not_found_warned = now
            ids, self._not_found_ids = self._not_found_ids, []
            log.warning(
                "async_orch.jobs_not_found",
                count=len(ids),
                job_ids=ids[:_NOT_FOUND_SAMPLE],
                note="the server answers 404 for them: reported lost (per job at debug)",
            )

    async def _list(self, action: ListBatch[int]) -> None:
        folder = self._folder_of(action.job_ids)
        if folder is None:
            return
        # Every watcher's ids, this watcher's first; each hears of its own.
        groups = [(self, action.job_ids)]
        if self._group is not None and self._group.others_running(self):
            room = ListRoom.of(job_states_query, max_values=self._planner.policy.max_batch)
            room.take_ids(action.job_ids)
            groups += self._group.riders(self, action.folder, room=room)
        ids = [job_id for _, own in groups for job_id in own]
        states: Mapping[int, JobState] | None = None
        try:
            states = await self._ask(
                action.folder, groups, lambda: self._api.job_states(folder, ids)
            )
        finally:
            # Failed or cancelled (states None): the jobs are due again.
            for watcher, own in groups:
                watcher.list_answered(own, states)

    async def _list_unfinished(self, action: ListUnfinished[int]) -> None:
        """A range query: the unfinished jobs of a folder within an id range."""
        folder = self._folder_of(action.job_ids)
        if folder is None:
            return
        groups = [(self, action.job_ids)]
        if self._group is not None:
            groups += self._group.range_riders(self, action.folder, action.low, action.high)
        answer: RangeAnswer | None = None
        try:
            answer = await self._ask(
                action.folder,
                groups,
                lambda: self._api.unfinished_jobs(
                    folder, action.low, action.high, top=action.top, also=action.stragglers
                ),
                on_error=lambda exc: self._range_failed(action.folder, exc),
            )
            if answer is not None:
                self._planner.range_worked(action.folder)
        finally:
            for watcher, own in groups:
                watcher.range_answered(own, answer, query=action)

    def _range_failed(self, folder: int, exc: RequestError) -> None:
        """A range query to ``folder`` failed with ``exc``: the planner decides
        whether the folder is watched by id lists now; the first time, a warning."""
        fallback = self._planner.range_failed(
            folder, refused=_refuses_the_query(exc), now=self._clock()
        )
        if fallback is None:
            return
        ids = [w.handle.job_id for w in self._jobs.values() if w.handle.folder_id == folder]
        room = functools.partial(
            ListRoom.of, job_states_query, max_values=self._planner.policy.max_batch
        )
        calls = len(split_ids_to_fit(ids, room))
        again = (
            "for good (the server refused the query)"
            if fallback.refused
            else f"for {RANGE_RETRY_AFTER:.0f} s, then a range query is tried again"
        )
        (log.warning if fallback.first else log.info)(
            "async_orch.range_queries_off",
            folder=folder,
            error=str(exc),
            jobs=len(ids),
            id_list_calls=calls,
            note=f"this folder's jobs are asked about by id lists {again}: about "
            f"{calls} list calls a round for its {len(ids)} jobs instead of one",
        )

    async def _ask(
        self,
        folder: int,
        groups: list[tuple[JobWatcher, tuple[int, ...]]],
        call: Callable[[], Awaitable[_T]],
        *,
        on_error: Callable[[RequestError], None] | None = None,
    ) -> _T | None:
        """Make one list call about ``folder`` (its Id) for ``groups`` (watchers and
        their jobs), taking a slot of the shared budget first; None if it brought no
        answer. ``on_error`` hears of the errors that may be the query's fault
        (not 429s, nor refusals of the token or the folder's access)."""
        shared = self._group.shared if self._group is not None else None
        sent = -math.inf
        try:
            if shared is not None:
                await shared.acquire()
            sent = self._clock()
            answer = await call()
        except _LIST_REFUSED as exc:
            self._count_token_refusal(exc, sent=sent)
            log.info("async_orch.poll_failed", error=str(exc))
            return None
        except FOLDER_REFUSALS as exc:
            # Unassigned from the folder, or it was removed (the API answers 1100); or
            # a scope or a permission in it taken away (403).
            self._count_folder_refusal(folder, exc, sent=sent)
            log.info("async_orch.poll_failed", error=str(exc))
            return None
        except RateLimitedError as exc:
            # A warning: the tenant's list limit is shared with every other client of
            # the tenant, and waiting it out can delay results by a minute.
            log.warning("async_orch.poll_rate_limited", retry_after=exc.retry_after, error=str(exc))
            self._planner.rate_limited(retry_after=exc.retry_after, now=self._clock())
            if shared is not None:
                pause = exc.retry_after
                await shared.throttled(
                    self._planner.policy.rate_limit_pause if pause is None else pause
                )
            return None
        except RequestError as exc:
            # The jobs stay due and are asked about again on the next round (each
            # try charged to the list budget). Info, not a warning: during an outage
            # this fires every round, and the transport's health tracker already
            # warns once per 30 s of outage.
            jobs = sum(len(own) for _, own in groups)
            log.info("async_orch.poll_failed", error=str(exc), jobs=jobs)
            if on_error is not None:
                on_error(exc)
            return None
        self._answered(folder)
        return answer

    def _answered(self, folder: int) -> None:
        """A call about ``folder``'s jobs was answered: no refusal is in a row any more."""
        self._token_refusals = 0
        self._token_refused_at = -math.inf
        self._folder_refusals.pop(folder, None)
        self._folder_refused_at.pop(folder, None)

    def _count_token_refusal(self, exc: RequestError, *, sent: float) -> None:
        """One more call refused for the token; the batch ends with ``exc`` after
        :data:`_REFUSALS_FINAL` in a row (a fatal error surfaces, never a hang),
        counted as for a folder (:meth:`_in_a_row`)."""
        if not self._in_a_row(sent, self._token_refused_at):
            return
        self._token_refused_at = self._clock()
        self._token_refusals += 1
        if self._token_refusals >= _REFUSALS_FINAL:
            raise exc

    def _count_folder_refusal(
        self, folder: int, exc: FolderNotFoundError | PermissionDeniedError, *, sent: float
    ) -> None:
        """One more call refused for ``folder`` (its access, 1100, or a scope or
        permission, 403). After :data:`_REFUSALS_FINAL` in a row its jobs end with
        ``exc`` (each result says so; the other folders' jobs go on); the batch
        ends with ``exc`` when every folder it has had jobs in was refused at its
        last call or has ended refused (every job alike, say a scope taken from the
        credentials: fatal). A folder whose last call was answered keeps the
        others' results coming. Counted by :meth:`_in_a_row`."""
        watched = any(w.handle.folder_id == folder for w in self._jobs.values())
        if folder in self._refused_folders and not watched:
            return  # an answer to a call made before its jobs were ended
        # A folder refused before keeps its count (unless an answer came since): a
        # job of it started later is ended at its first refusal, not polled until
        # the batch timeout (attack h9b).
        if not self._in_a_row(sent, self._folder_refused_at.get(folder, -math.inf)):
            return
        self._folder_refused_at[folder] = self._clock()
        refusals = self._folder_refusals.get(folder, 0) + 1
        self._folder_refusals[folder] = refusals
        if refusals < _REFUSALS_FINAL:
            return
        self._refused_folders.add(folder)
        if all(f in self._refused_folders or self._folder_refusals.get(f) for f in self._folders):
            raise _every_folder_refused(exc, sorted(self._folders.values()))
        self._lost_folders[folder] = exc
        self._wakeup.set()

    def _in_a_row(self, sent: float, counted: float) -> bool:
        """Whether a refusal of a call sent at ``sent`` is one more in a row after the
        last one counted, which arrived at ``counted``: only for a call sent
        ``min_interval`` (the pace of one job's retries) after it. A call sent
        before is news of the same outage moment: 24 reads of jobs ended together,
        refused in 3 waves of the 8 readers (each sending its next as soon as the
        last was refused), made 3 in a row of a 40 ms outage (attack h10b). Refused
        for good, the retries come back refused: a few ``min_interval``, no hang."""
        return sent >= counted + self._min_interval

    async def _finish_lost_folders(
        self, on_finished: Callable[[Finished], Awaitable[None]]
    ) -> None:
        """End the jobs of the folders found lost, each with its folder's error."""
        lost, self._lost_folders = self._lost_folders, {}
        for folder, error in lost.items():
            jobs = [w for w in self._jobs.values() if w.handle.folder_id == folder]
            name = jobs[0].handle.folder_path if jobs else folder
            log.warning("async_orch.folder_lost", folder=name, jobs=len(jobs), error=str(error))
            for watched in jobs:
                await self._finish(watched, on_finished, timed_out=False, error=error)

    def join_range(self, folder: int, low: int, high: int) -> tuple[int, ...]:
        """Ids of this watcher's jobs of ``folder`` within ``low..high``, to be
        settled by another watcher's range query; the caller reports the answer
        with :meth:`range_answered`."""
        return self._planner.join_range(folder, low, high)

    def range_answered(
        self,
        job_ids: Sequence[int],
        answer: RangeAnswer | None,
        *,
        query: ListUnfinished[int],
    ) -> None:
        """``query`` (a range query covering ``job_ids`` of this watcher) was
        answered (the unfinished jobs in the range; None: it failed or was
        cancelled, so they are due again); wakes the run loop to plan what that
        changed."""
        if answer is None:
            self._planner.list_failed(job_ids, now=self._clock())
        else:
            self._apply_unfinished(job_ids, answer, query=query)
        self._wakeup.set()

    def _apply_unfinished(
        self, job_ids: Sequence[int], answer: RangeAnswer, *, query: ListUnfinished[int]
    ) -> None:
        """A range query's answer about ``job_ids`` (the ones this watcher asked for)."""
        now = self._clock()
        asked = set(job_ids)
        rows = answer.rows
        jobs = self._jobs
        # Only the jobs this call asked about: a row about a job of ours in
        # another call (or being read by id) may be older than that answer.
        self._note_states([r for r in rows if r[0] in asked and r[0] in jobs], now)
        # Jobs not in the rows left the unfinished states: the planner has them
        # read by id, and that read tells the deadlines their state.
        ours = [i for i in job_ids if i in jobs]
        if self._planner.observe_range(
            ours,
            rows,
            query=query,
            cut=answer.cut,
            received=answer.received,
            unreadable=answer.unreadable,
            now=now,
        ):
            log.warning(
                "async_orch.range_page_stalled",
                folder=query.folder,
                rows=len(rows),
                low=query.low,
                high=query.high,
                note="a full page without one row the query asked for: its jobs are "
                "asked about again at their usual pace, the next time by id list",
            )

    def join_list(self, folder: int, *, room: ListRoom) -> tuple[int, ...]:
        """Ids of this watcher's jobs of ``folder`` worth listing in another
        watcher's call (due, or not checked lately), as many as ``room`` holds (it
        is filled); the caller reports the answer with :meth:`list_answered`."""
        return self._planner.join_list(folder, room=room, now=self._clock())

    def list_answered(self, job_ids: Sequence[int], states: Mapping[int, JobState] | None) -> None:
        """A list call about ``job_ids`` of this watcher answered ``states`` (None:
        it failed or was cancelled, so they are due again); wakes the run loop to
        plan what that changed."""
        if states is None:
            self._planner.list_failed(job_ids, now=self._clock())
        else:
            self._apply_states(job_ids, states)
        self._wakeup.set()

    def _apply_states(self, job_ids: Sequence[int], states: Mapping[int, JobState]) -> None:
        """A list call's answer about ``job_ids`` (the ones this watcher asked for)."""
        now = self._clock()
        jobs = self._jobs
        # Jobs that left meanwhile (timed out, say) are skipped: the answer is moot.
        answered = [(i, states[i]) for i in job_ids if i in states and i in jobs]
        self._note_states(answered, now)
        self._planner.observe_answer([i for i in job_ids if i in jobs], states, now=now)

    async def _fetch(
        self, action: FetchOne[int], on_finished: Callable[[Finished], Awaitable[None]]
    ) -> bool:
        """Read one job by id; return whether the planner has something new to plan."""
        watched = self._jobs.get(action.job_id)
        if watched is None:
            return False
        sent = self._clock()
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
                # Per job at debug; one warning with the count when the reads end
                # (a restarted server can forget hundreds at once).
                log.debug("async_orch.job_not_found", job_id=action.job_id, error=str(exc))
                self._not_found_ids.append(action.job_id)
                lost = _lost(watched.handle, f"the server answers 404 for it ({exc.message})")
                lost.__cause__ = exc
                await self._finish(watched, on_finished, timed_out=False, error=lost)
                return False
            self._planner.fetch_failed(action.job_id, now=self._clock())
            return True
        except RequestError as exc:
            if isinstance(exc, _TOKEN_REFUSED):
                self._count_token_refusal(exc, sent=sent)
            elif isinstance(exc, PermissionDeniedError):
                self._count_folder_refusal(watched.handle.folder_id, exc, sent=sent)
            log.info("async_orch.fetch_failed", job_id=action.job_id, error=str(exc))
            if self._jobs.get(action.job_id) is watched:
                self._planner.fetch_failed(action.job_id, now=self._clock())
            return True
        self._answered(watched.handle.folder_id)
        if self._jobs.get(action.job_id) is not watched:
            return True  # forgotten meanwhile: the answer is moot
        if job.id != action.job_id:
            return await self._wrong_job_read(watched, job, on_finished)
        now = self._clock()
        watched.not_found = 0
        changed = identity_change(watched.handle, job)
        if changed:
            log.warning("async_orch.job_identity_changed", job_id=job.id, change=changed)
            lost = _lost(watched.handle, f"its id now names another job ({changed})")
            await self._finish(watched, on_finished, timed_out=False, error=lost)
            return False
        self._note_state(job.id, job.state, now)
        watched.job = job
        if job.state in TERMINAL_STATES:
            self._planner.observe_fetched(job.id, now=now)
            group = self._group
            if not watched.heard and group is not None and group.pace is not None:
                # Found by polling while its folder's events arrive: one was lost.
                group.pace.missed(watched.handle.folder_id, group.clock())
            job, missing = await self._read_output_file(watched.handle, job)
            watched.job = job
            await self._finish(watched, on_finished, timed_out=False, error=missing)
            return False
        # A fallback probe of a job that is not final yet.
        folder = watched.handle.folder_id
        cap = self._planner.page_cap(folder)
        self._planner.observe(job.id, job.state, now=now)
        learnt = self._planner.page_cap(folder)
        if learnt is not None and learnt != cap:
            log.info(
                "async_orch.page_cap_learnt",
                folder=folder,
                rows=learnt,
                note=f"range answers of this folder stop at {learnt} rows without saying "
                "more match (no @odata.nextLink, no @odata.count): pages of that many rows "
                "are continued from their last row from now on",
            )
        return True

    async def _wrong_job_read(
        self, watched: _Watched, job: Job, on_finished: Callable[[Finished], Awaitable[None]]
    ) -> bool:
        """A read by id answered another job's record: never believed (its state
        and outputs are that job's). A failed read; after _NOT_FOUND_LIMIT in a
        row the job is reported lost. Returns whether there is something to plan."""
        job_id = watched.handle.job_id
        log.info("async_orch.fetch_wrong_job", job_id=job_id, answered_id=job.id)
        watched.not_found += 1
        if watched.not_found >= _NOT_FOUND_LIMIT:
            why = f"reads by id keep answering another job (Id {job.id}) for it"
            log.warning("async_orch.job_read_wrong_id", job_id=job_id, answered_id=job.id)
            await self._finish(
                watched, on_finished, timed_out=False, error=_lost(watched.handle, why)
            )
            return False
        self._planner.fetch_failed(job_id, now=self._clock())
        return True

    async def _read_output_file(
        self, handle: JobHandle, job: Job
    ) -> tuple[Job, OutputsUnavailableError | None]:
        """Outputs sent as an OutputFile, read in; a failure is the job's error."""
        if job.output_file is None or not self._read_outputs:
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

    async def _enforce_deadlines(
        self, now: float, on_finished: Callable[[Finished], Awaitable[None]]
    ) -> None:
        """Carry out what :class:`~async_orch._deadlines.Deadlines` says is due now."""
        if now < self._deadlines.next_due:
            return
        due = self._deadlines.step(now)
        # The records are taken before any await: a job forgotten meanwhile is then
        # skipped by _finish, and its id's next job is not stopped in its place.
        to_finish = [self._jobs[job_id] for job_id in due.finish]
        to_stop = {
            "SoftStop": [self._jobs[job_id] for job_id in due.soft_stop],
            "Kill": [self._jobs[job_id] for job_id in due.kill],
        }
        to_report_suspended = [self._jobs[job_id] for job_id in due.report_suspended]
        for job_id in due.waited:
            log.info("async_orch.suspended_waited_for", job_id=job_id)
        for watched in to_finish:
            await self._finish(watched, on_finished, timed_out=True)
        for watched in to_report_suspended:
            await self._finish(watched, on_finished, timed_out=True, suspended=True)
        for strategy, jobs in to_stop.items():
            if jobs:
                await self._send_stops(jobs, strategy)

    async def _send_stops(self, jobs: Sequence[_Watched], strategy: str) -> None:
        """Stop jobs with one StopJobs call per folder (and per chunk of ids)."""
        by_folder: dict[int | str, list[_Watched]] = {}
        for watched in jobs:
            handle = watched.handle
            by_folder.setdefault(handle.folder_key or handle.folder_id, []).append(watched)
        for folder, members in by_folder.items():
            for start in range(0, len(members), STOP_JOBS_CHUNK):
                ids = [w.handle.job_id for w in members[start : start + STOP_JOBS_CHUNK]]
                log.info("async_orch.jobs_stopping", strategy=strategy, job_ids=ids)
                try:
                    await self._api.stop_jobs(folder, ids, strategy=strategy)
                    now = self._clock()
                    for job_id in ids:  # see the stop take effect within the grace
                        self._planner.recheck_soon(job_id, now=now)
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
        stop_sent = self._deadlines.stop_sent(job_id)
        stuck_pending_for = self._deadlines.stuck_pending_for(job_id)
        self._deadlines.remove(job_id)
        self._planner.remove(job_id)
        await on_finished(
            _build_finished(  # one a job: _records
                handle=watched.handle,
                job=watched.job,
                state=watched.state,
                timed_out=timed_out,
                detected=datetime.now(UTC),
                error=error,
                stop_sent=stop_sent,
                stuck_pending_for=stuck_pending_for,
                suspended=suspended,
            )
        )

    # -- helpers -----------------------------------------------------------------

    def _note_state(self, job_id: int, state: JobState, now: float) -> None:
        """The server answered ``state`` for the job at ``now``."""
        if job_id in self._jobs:
            self._note_states([(job_id, state)], now)

    def _note_states(self, rows: Sequence[tuple[int, JobState]], now: float) -> None:
        """:meth:`_note_state` of each watched job of a list answer's ``rows``,
        without a call per row while states stay as they were (a list answer is
        up to 1,000 rows)."""
        self._deadlines.seen_many(rows, now=now)
        jobs = self._jobs
        for job_id, state in rows:
            watched = jobs.get(job_id)
            if watched is not None and watched.state != state:
                self._state_changed(watched, state)

    def _state_changed(self, watched: _Watched, state: JobState) -> None:
        old, watched.state = watched.state, state
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
    pairs = (
        ("Key", handle.job_key and handle.job_key.lower(), job.key and job.key.lower()),
        ("Reference", handle.reference, job.reference),
        ("folder Id", handle.folder_id, job.folder_id),
    )
    changes = []  # (a loop, not a generator: one read a job)
    for name, ours, theirs in pairs:
        if ours is not None and theirs is not None and ours != theirs:
            changes.append(f"{name} {theirs!r} instead of {ours!r}")
    return "; ".join(changes)


def _every_folder_refused(
    exc: FolderNotFoundError | PermissionDeniedError, folders: Sequence[str]
) -> RequestError:
    """``exc`` (about the folder refused last) said of the whole batch: the folders
    refused before ended their jobs one by one, and a message naming only the last
    one read as if it alone was lost (new-user review)."""
    if len(folders) < 2:
        return exc
    what = f"every folder of the batch is refused ({', '.join(folders)}); the last: "
    error: RequestError
    if isinstance(exc, PermissionDeniedError):
        error = PermissionDeniedError(
            status=exc.status,
            method=exc.method,
            url=exc.url,
            message=what + exc.message,
            error_code=exc.error_code,
            trace_id=exc.trace_id,
            body=exc.body,
            retry_after=exc.retry_after,
        )
    else:
        error = FolderNotFoundError(what + str(exc), name=exc.name)
    error.__cause__ = exc
    return error


def _refuses_the_query(exc: RequestError) -> bool:
    """Whether ``exc`` says the server will not take the query as sent (a client
    error such as 400 "filter not supported"), rather than that the call failed
    this time (5xx, no answer), or that the token, the folder or the rate limit
    stood in the way (401, 403, 404, 429; 408 is a timeout)."""
    return isinstance(exc, APIError) and 400 <= exc.status < 500 and exc.status not in _NOT_REFUSALS


def _lost(handle: JobHandle, why: str) -> JobLostError:
    reference = f" (Reference {handle.reference!r})" if handle.reference else ""
    return JobLostError(
        f"job {handle.job_id}{reference} is lost: {why}. The server may have restarted "
        "and forgotten its jobs; its outcome is unknown. Look for it by Reference "
        "in Orchestrator before starting it again.",
        job_id=handle.job_id,
        reference=handle.reference,
    )
