"""Start many jobs across folders, exactly once each, and wait for all of them.

Theory of operation:

1. **Resolve** each distinct (folder, process) of a batch once (the resource API
   caches them), so 500 jobs in 4 folders cost a handful of lookups. A request
   whose folder or process does not resolve, or whose inputs are malformed, is
   reported NOT_STARTED and no StartJobs is sent for it.
2. **Start** each request under three limits: StartJobs calls in flight per
   folder, in flight overall, and a start rate (token bucket). All three can
   be resized while a batch runs. A request still waiting for its turn when
   the batch timeout passes is not started (NOT_STARTED).
3. **Exactly once**: every request carries a Reference (the user's, or one we
   generate). StartJobs is never retried blindly: when a POST may have reached
   the server (a reset connection, a timeout, a 5xx other than a 503 with
   Retry-After) we first list the folder's jobs with that Reference; if they
   exist we adopt them, otherwise we post again. If that lookup keeps failing
   the request is reported NOT_STARTED and never posted again: a duplicate job
   is worse than a reported failure.
4. **Watch** every started job with the :class:`~async_orch.poller.JobWatcher`
   (batched list polls under a budget, one ``Jobs({id})`` per final job for its
   OutputArguments).
5. **Report** one :class:`~async_orch.batch.JobResult` per job (a request with
   ``jobs_count`` N gives N results, started or not). Failures do not raise
   out of the batch; a job that was started is always reported, even on
   timeout (as still running, or stopped if asked).

Cancellation. A batch cancelled from outside (a cancel scope, a timeout of the
caller's, leaving ``iter_results`` early) never leaves jobs behind silently:

- a StartJobs call in flight is allowed up to ``ABANDON_START_WAIT`` seconds
  to finish, so its outcome is known; the jobs it created are included below;
- if ``stop_on_cancel`` is set, every started job not yet reported is stopped
  (SoftStop, then Kill after the grace period) before the cancellation goes on;
- whatever is still running (or might be) is logged as a warning,
  ``async_orch.jobs_left_running``, with the job ids and References.

Pass ``on_started`` to persist handles as jobs start, so they can be waited
for (or stopped) later with :meth:`Dispatcher.run` and ``handles=``.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import NoReturn

import anyio
import anyio.lowlevel

from async_orch.backoff import compute_delay
from async_orch.batch import JobHandle, JobRequest, JobResult, Outcome, Progress
from async_orch.config import RetryPolicy
from async_orch.errors import (
    ConfigurationError,
    InvalidRequestError,
    OrchestratorError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from async_orch.logs import get_logger
from async_orch.models import Folder, Job, Release, StartRequest, StartStrategy
from async_orch.planner import PollPolicy
from async_orch.poller import Finished, JobWatcher, StopPolicy
from async_orch.resources import OrchestratorAPI
from async_orch.states import JobState
from async_orch.throttle import TokenBucket

__all__ = [
    "ABANDON_START_WAIT",
    "DispatchLimits",
    "Dispatcher",
    "ProgressCallback",
    "StartFailure",
    "Started",
    "StartedCallback",
]

log = get_logger("async_orch.dispatcher")

ProgressCallback = Callable[[Progress], None]
#: Called with (request index, handle) as soon as a job is known to exist.
StartedCallback = Callable[[int, JobHandle], None]

#: Seconds a StartJobs call in flight may still take once its batch is cancelled.
#: Long enough for a normal answer; past it, its Reference is logged as uncertain.
ABANDON_START_WAIT = 10.0

_QUEUED = "queued"  # progress state of a request not started yet
_RESOLVE_CONCURRENCY = 8  # folder/process lookups at once at the start of a batch
_STOP_SLACK = 10.0  # seconds of polling allowed after the stop grace periods


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchLimits:
    """Limits on starting jobs.

    Attributes:
        max_in_flight: StartJobs requests in flight at once, over all folders.
        per_folder: StartJobs requests in flight at once in one folder (None: no limit).
        starts_per_second: average StartJobs rate (None: no limit). StartJobs is
            not rate limited by Orchestrator, but a tenant's robots are finite.
        start_attempts: StartJobs attempts per request (reconciliations included).
    """

    max_in_flight: int = 16
    per_folder: int | None = None
    starts_per_second: float | None = None
    start_attempts: int = 4

    def __post_init__(self) -> None:
        _check_limits(self.max_in_flight, self.per_folder, self.starts_per_second)
        if self.start_attempts < 1:
            raise ConfigurationError(
                f"DispatchLimits.start_attempts must be at least 1, got {self.start_attempts}"
            )


def _check_limits(
    max_in_flight: int | None, per_folder: int | None, starts_per_second: float | None
) -> None:
    if max_in_flight is not None and max_in_flight < 1:
        raise ConfigurationError(f"max_in_flight must be at least 1, got {max_in_flight}")
    if per_folder is not None and per_folder < 1:
        raise ConfigurationError(
            f"per_folder must be at least 1 (or None for no limit), got {per_folder}"
        )
    if starts_per_second is not None and not (0 < starts_per_second < math.inf):
        raise ConfigurationError(
            f"starts_per_second must be positive (or None for no limit), got {starts_per_second}"
        )


@dataclass(frozen=True, slots=True)
class Started:
    """A request that started one job or more (``jobs_count``)."""

    index: int
    request: JobRequest
    handles: list[JobHandle]
    attempts: int


@dataclass(frozen=True, slots=True)
class StartFailure:
    """A request that started no job."""

    index: int
    request: JobRequest
    error: OrchestratorError
    attempts: int


class Dispatcher:
    """Start, watch and report; see the module docstring. Use it through
    :class:`~async_orch.client.OrchestratorClient` unless you build your own client.
    """

    def __init__(
        self,
        api: OrchestratorAPI,
        *,
        limits: DispatchLimits | None = None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._api = api
        self._limits = limits or DispatchLimits()
        self._poll = poll or PollPolicy()
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._in_flight = anyio.CapacityLimiter(self._limits.max_in_flight)
        self._per_folder: dict[int, anyio.CapacityLimiter] = {}
        self._bucket = TokenBucket(self._limits.starts_per_second, now=clock())
        self._bucket_lock = anyio.Lock()

    # -- limits, resizable while running ------------------------------------------

    @property
    def limits(self) -> DispatchLimits:
        return self._limits

    def set_limits(
        self,
        *,
        max_in_flight: int | None = None,
        per_folder: int | None = None,
        starts_per_second: float | None = None,
    ) -> None:
        """Change limits while a batch runs (a value left as None is unchanged).

        A lower limit does not interrupt calls already in flight; it applies as
        they finish.
        """
        _check_limits(max_in_flight, per_folder, starts_per_second)
        if max_in_flight is not None:
            self._in_flight.total_tokens = max_in_flight
            self._limits = replace(self._limits, max_in_flight=max_in_flight)
        if per_folder is not None:
            for limiter in self._per_folder.values():
                limiter.total_tokens = per_folder
            self._limits = replace(self._limits, per_folder=per_folder)
        if starts_per_second is not None:
            self._bucket.set_rate(starts_per_second, now=self._clock())
            self._limits = replace(self._limits, starts_per_second=starts_per_second)

    # -- public entry points ---------------------------------------------------------

    async def start(
        self,
        requests: Sequence[JobRequest],
        *,
        on_started: StartedCallback | None = None,
    ) -> list[Started | StartFailure]:
        """Start every request; return, per request in order, what it started or why not.

        Jobs are not watched. If this is cancelled, the jobs already started are
        logged (``async_orch.jobs_left_running``); ``on_started`` hears of each
        job as soon as it exists, so nothing is lost.
        """
        references = _references(requests)
        resolver = _Resolver(self._api)
        shield = _StartShield()
        outcome: list[Started | StartFailure | None] = [None] * len(requests)
        live: dict[int, JobHandle] = {}

        async def start_one(index: int) -> None:
            request = requests[index]

            def on_jobs(pairs: list[tuple[JobHandle, Job]], attempts: int) -> None:
                for handle, _ in pairs:
                    live[handle.job_id] = handle
                    if on_started is not None:
                        on_started(index, handle)

            target = await resolver.resolve(request.folder, request.process)
            outcome[index] = await self._start_one(
                index, request, references[index], target, shield=shield, on_jobs=on_jobs
            )

        async def start_all() -> None:
            async with anyio.create_task_group() as tg:
                for index in range(len(requests)):
                    tg.start_soon(start_one, index)

        try:
            await _guarded(start_all, shield)
        except BaseException as exc:
            _log_left_running(list(live.values()), shield.uncertain, reason=type(exc).__name__)
            _reraise(exc)
        return [r for r in outcome if r is not None]

    async def run(
        self,
        requests: Sequence[JobRequest] | None = None,
        *,
        handles: Sequence[JobHandle] | None = None,
        timeout: float | None = None,
        stop_on_timeout: StopPolicy | None = None,
        stop_on_cancel: bool | None = None,
        on_progress: ProgressCallback | None = None,
        on_started: StartedCallback | None = None,
    ) -> list[JobResult]:
        """Start ``requests`` (and/or watch ``handles``), wait for every job, and
        return results in request order (then in ``handles`` order).

        A request with ``jobs_count`` N contributes N results, consecutively.
        Arguments are those of :meth:`iter_results`.
        """
        results: list[JobResult] = []

        async def collect(result: JobResult) -> None:
            results.append(result)

        batch = _Batch(
            self,
            requests or [],
            handles or [],
            timeout=timeout,
            stop_policy=stop_on_timeout,
            stop_on_cancel=stop_on_cancel,
            on_progress=on_progress,
            on_started=on_started,
        )
        await batch.run(collect)
        results.sort(key=lambda r: (r.index, r.job_id or 0))
        return results

    async def iter_results(
        self,
        requests: Sequence[JobRequest] | None = None,
        *,
        handles: Sequence[JobHandle] | None = None,
        timeout: float | None = None,
        stop_on_timeout: StopPolicy | None = None,
        stop_on_cancel: bool | None = None,
        on_progress: ProgressCallback | None = None,
        on_started: StartedCallback | None = None,
    ) -> AsyncGenerator[JobResult, None]:
        """Start ``requests`` (and/or watch existing ``handles``) and yield results
        as jobs end, in completion order.

        Args:
            requests: what to start.
            handles: jobs started earlier (maybe elsewhere) to wait for as well;
                their results have ``index`` = ``len(requests)`` + position in
                ``handles`` (so with no requests, the position).
            timeout: seconds for the whole batch. Requests not started by then
                are not started; jobs still running then are timed out.
            stop_on_timeout: what to do with jobs past a deadline (the batch
                timeout or a request's own ``timeout``): stop them or leave them
                running (the default).
            stop_on_cancel: stop the started jobs if the batch is cancelled or
                left early; None follows ``stop_on_timeout.stop``.
            on_progress: called with the counts after every change.
            on_started: called with (index, handle) as soon as each job exists.

        Leaving the loop early counts as a cancellation (see the module
        docstring); wrap the iterator in ``contextlib.aclosing`` so that it
        happens at once rather than when the iterator is garbage collected.
        """
        send, receive = anyio.create_memory_object_stream[JobResult](math.inf)
        batch = _Batch(
            self,
            requests or [],
            handles or [],
            timeout=timeout,
            stop_policy=stop_on_timeout,
            stop_on_cancel=stop_on_cancel,
            on_progress=on_progress,
            on_started=on_started,
        )

        async def produce() -> None:
            async with send:
                await batch.run(send.send)

        # The batch runs in a task of its own: a generator must not yield from
        # inside a task group or cancel scope (the consumer runs between yields).
        runner = asyncio.get_running_loop().create_task(produce())
        try:
            async with receive:
                async for result in receive:
                    yield result
            await runner  # raises what ended the batch, if anything did
        finally:
            if not runner.done():
                runner.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait([runner])
            if not runner.cancelled():
                runner.exception()  # retrieved: it was raised above, or is moot now

    # -- starting, exactly once ------------------------------------------------------

    async def _start_one(
        self,
        index: int,
        request: JobRequest,
        reference: str,
        target: tuple[Folder, Release] | OrchestratorError,
        *,
        shield: _StartShield,
        on_jobs: Callable[[list[tuple[JobHandle, Job]], int], None],
        deadline: float | None = None,
    ) -> Started | StartFailure:
        """Start one request under the limits; ``on_jobs`` hears of its jobs as soon
        as they are known (before any other await, so a cancellation cannot lose them).
        """
        attempts = 0
        try:
            if isinstance(target, OrchestratorError):
                raise target
            folder, release = target
            # Built here, before waiting for a turn: building checks the inputs.
            start_request = _start_request(request, release.key, reference)
            limiter = self._folder_limiter(folder)
            if not await self._acquire_turn(limiter, deadline):
                raise OrchestratorError(
                    "not started: the batch timeout passed while this request waited for its "
                    "turn (raise the timeout, or the max_in_flight / per_folder limits)"
                )
            handles: list[JobHandle] = []

            def on_created(jobs: list[Job], tries: int) -> None:
                pairs = [(_handle(job, folder, reference), job) for job in jobs]
                handles.extend(handle for handle, _ in pairs)
                on_jobs(pairs, tries)

            tries = _Tries()
            try:
                await self._start_exactly_once(
                    folder, start_request, tries=tries, shield=shield, on_created=on_created
                )
            finally:
                attempts = tries.count
                limiter.release()
                self._in_flight.release()
        except OrchestratorError as exc:
            log.info(
                "async_orch.start_failed",
                index=index,
                folder=str(request.folder),
                process=request.process,
                reference=reference,
                error=str(exc),
            )
            return StartFailure(index=index, request=request, error=exc, attempts=attempts)
        log.debug(
            "async_orch.job_started",
            index=index,
            folder=folder.fully_qualified_name,
            job_ids=[h.job_id for h in handles],
            reference=reference,
            attempts=attempts,
        )
        return Started(index=index, request=request, handles=handles, attempts=attempts)

    async def _acquire_turn(self, limiter: anyio.CapacityLimiter, deadline: float | None) -> bool:
        """Take a folder slot, a global slot and a start token; False if the deadline
        passed first (nothing is held then)."""
        wait = math.inf if deadline is None else max(0.0, deadline - self._clock())
        with anyio.move_on_after(wait):
            # Folder first: a request waiting for its busy folder must not hold
            # a global slot that requests of other folders could use.
            await limiter.acquire()
            try:
                await self._in_flight.acquire()
                try:
                    await self._take_start_token()
                except BaseException:
                    self._in_flight.release()
                    raise
            except BaseException:
                limiter.release()
                raise
            return True
        return False

    async def _start_exactly_once(
        self,
        folder: Folder,
        start_request: StartRequest,
        *,
        tries: _Tries,
        shield: _StartShield,
        on_created: Callable[[list[Job], int], None],
    ) -> None:
        """Post StartJobs until it is answered, reconciling by Reference whenever the
        previous post may have created jobs; ``tries`` counts the attempts."""
        reference = start_request.reference or ""
        attempts = 0
        last_error: OrchestratorError | None = None
        while attempts < self._limits.start_attempts:
            attempts += 1
            tries.count = attempts
            with shield.protect() as scope:
                try:
                    jobs = await self._api.start_jobs(folder, start_request)
                except (TransportError, ServerError, RateLimitedError) as exc:
                    last_error = exc
                    ambiguous = _may_have_started(exc)
                    log.info(
                        "async_orch.start_uncertain" if ambiguous else "async_orch.start_retry",
                        reference=reference,
                        folder=folder.fully_qualified_name,
                        attempt=attempts,
                        error=str(exc),
                    )
                    if ambiguous:
                        found = await self._find_by_reference(folder, reference)
                        if found:
                            log.info(
                                "async_orch.start_reconciled", reference=reference, jobs=len(found)
                            )
                            on_created(found, attempts)
                            return
                else:
                    on_created(jobs, attempts)
                    return
            if scope.cancelled_caught:
                # The batch was cancelled and this call outlived ABANDON_START_WAIT.
                shield.uncertain.append(reference)
                await anyio.lowlevel.checkpoint()  # delivers the pending cancellation
                raise OrchestratorError(f"StartJobs for Reference {reference!r} was abandoned")
            await self._sleep(compute_delay(attempts, policy=self._retry))
        assert last_error is not None
        raise last_error

    async def _find_by_reference(self, folder: Folder, reference: str) -> list[Job]:
        """The jobs a possibly-lost StartJobs created, found by their Reference."""
        last: OrchestratorError | None = None
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return await self._api.list_jobs(folder, reference=reference)
            except OrchestratorError as exc:
                last = exc
                log.info("async_orch.reconcile_retry", reference=reference, error=str(exc))
                if attempt < self._retry.attempts:
                    await self._sleep(compute_delay(attempt, policy=self._retry))
        # We could not tell whether the jobs exist: refuse to post again, since a
        # duplicate is worse than a reported failure.
        raise InvalidRequestError(
            f"StartJobs with Reference {reference!r} got no answer, and looking that Reference "
            f"up in folder {folder.fully_qualified_name!r} failed {self._retry.attempts} times "
            f"(last error: {last}); it was not posted again, so it may or may not have started: "
            "look for that Reference in Orchestrator before starting it again"
        )

    async def _take_start_token(self) -> None:
        async with self._bucket_lock:
            while (wait := self._bucket.try_take(self._clock())) > 0:
                await self._sleep(wait)

    def _folder_limiter(self, folder: Folder) -> anyio.CapacityLimiter:
        limiter = self._per_folder.get(folder.id)
        if limiter is None:
            tokens = self._limits.per_folder or 1_000_000
            limiter = self._per_folder[folder.id] = anyio.CapacityLimiter(tokens)
        return limiter

    # -- stopping ----------------------------------------------------------------------

    async def _stop_and_wait(self, handles: Sequence[JobHandle], grace: float) -> list[JobHandle]:
        """SoftStop ``handles`` now, Kill those still running after ``grace``; return
        the jobs not seen ended once that is over (or after a bounded wait)."""
        watcher = JobWatcher(
            self._api,
            policy=self._poll,
            stop_policy=StopPolicy(stop=True, grace=grace),
            clock=self._clock,
        )
        now = self._clock()
        for handle in handles:
            watcher.watch(handle, deadline=now)
        watcher.close()
        ended: set[int] = set()

        async def on_finished(item: Finished) -> None:
            if item.state is not None and item.state.is_terminal:
                ended.add(item.handle.job_id)

        with anyio.move_on_after(2 * grace + _STOP_SLACK):
            await watcher.run(on_finished)
        return [h for h in handles if h.job_id not in ended]


class _Batch:
    """One run of :meth:`Dispatcher.run` / :meth:`Dispatcher.iter_results`."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        requests: Sequence[JobRequest],
        handles: Sequence[JobHandle],
        *,
        timeout: float | None,
        stop_policy: StopPolicy | None,
        stop_on_cancel: bool | None,
        on_progress: ProgressCallback | None,
        on_started: StartedCallback | None,
    ) -> None:
        self._d = dispatcher
        self._requests = list(requests)
        self._handles = list(handles)
        self._references = _references(self._requests)
        _check_handles(self._handles)
        self._stop_policy = stop_policy or StopPolicy()
        self._stop_on_cancel = self._stop_policy.stop if stop_on_cancel is None else stop_on_cancel
        self._deadline = dispatcher._clock() + timeout if timeout is not None else None
        self._on_progress = on_progress
        self._on_started = on_started
        self.progress = Progress(
            total=sum(_expected_jobs(r) for r in self._requests) + len(self._handles)
        )
        # job id -> (result index, request, StartJobs attempts)
        self._origin: dict[int, tuple[int, JobRequest, int]] = {}
        self._live: dict[int, JobHandle] = {}  # started, not reported yet
        self._shield = _StartShield()
        self._emit: Callable[[JobResult], Awaitable[None]] | None = None
        self._watcher = JobWatcher(
            dispatcher._api,
            policy=dispatcher._poll,
            stop_policy=self._stop_policy,
            clock=dispatcher._clock,
            on_state=self._on_state,
        )

    async def run(self, emit: Callable[[JobResult], Awaitable[None]]) -> None:
        """Run the batch, handing each result to ``emit``; on any abnormal end,
        stop or log the jobs left running (module docstring), then re-raise."""
        self._emit = emit
        try:
            async with anyio.create_task_group() as tg:
                for position, handle in enumerate(self._handles, start=len(self._requests)):
                    self._adopt(position, handle)
                self._report()
                tg.start_soon(self._start_all)
                try:
                    await self._watcher.run(self._finished)
                except BaseException:
                    self._shield.abandon()
                    raise
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._abandon(reason=type(_sole(exc)).__name__)
            _reraise(exc)

    # -- starting ------------------------------------------------------------------

    async def _start_all(self) -> None:
        try:
            if not self._requests:
                return
            resolver = _Resolver(self._d._api)
            await resolver.resolve_all((r.folder, r.process) for r in self._requests)
            targets = [resolver.get(r.folder, r.process) for r in self._requests]
            for request, target in zip(self._requests, targets, strict=True):
                self.progress.move(_label(request, target), None, _QUEUED, _expected_jobs(request))
            self._report()
            async with anyio.create_task_group() as tg:
                for index, target in enumerate(targets):
                    tg.start_soon(self._start_request, index, target)
        finally:
            self._watcher.close()

    async def _start_request(
        self, index: int, target: tuple[Folder, Release] | OrchestratorError
    ) -> None:
        request = self._requests[index]
        label = _label(request, target)
        expected = _expected_jobs(request)

        def on_jobs(pairs: list[tuple[JobHandle, Job]], attempts: int) -> None:
            # Runs inside the StartJobs shield, before any other await, so a
            # cancellation cannot lose these jobs.
            self.progress.forget(label, _QUEUED, expected)
            self.progress.total += len(pairs) - expected
            for handle, job in pairs:
                self._origin[handle.job_id] = (index, request, attempts)
                self._live[handle.job_id] = handle
                self.progress.move(handle.folder_path, None, job.state.value)
                self._watcher.watch(
                    handle, timeout=request.timeout, deadline=self._deadline, state=job.state
                )
            if self._on_started is not None:
                for handle, _ in pairs:
                    self._on_started(index, handle)
            self._report()

        started = await self._d._start_one(
            index,
            request,
            self._references[index],
            target,
            shield=self._shield,
            on_jobs=on_jobs,
            deadline=self._deadline,
        )
        if isinstance(started, StartFailure):
            self.progress.move(label, _QUEUED, Outcome.NOT_STARTED.value, expected)
            self._report()
            for _ in range(expected):
                await self._send(
                    JobResult(
                        index=index,
                        request=request,
                        outcome=Outcome.NOT_STARTED,
                        error=started.error,
                        attempts=started.attempts,
                        detected=datetime.now(UTC),
                    )
                )

    def _adopt(self, position: int, handle: JobHandle) -> None:
        """Watch a job started earlier (wait-only)."""
        self._origin[handle.job_id] = (position, _request_of(handle), 0)
        self._live[handle.job_id] = handle
        self.progress.move(handle.folder_path, None, JobState.PENDING.value)
        self._watcher.watch(handle, deadline=self._deadline)

    # -- watching --------------------------------------------------------------------

    def _on_state(self, handle: JobHandle, old: JobState | None, new: JobState) -> None:
        self.progress.move(
            handle.folder_path, old.value if old else JobState.PENDING.value, new.value
        )
        self._report()

    async def _finished(self, item: Finished) -> None:
        job_id = item.handle.job_id
        index, request, attempts = self._origin[job_id]
        self._live.pop(job_id, None)
        result = _result_of(index, request, attempts, item)
        last = item.state.value if item.state else JobState.PENDING.value
        self.progress.move(item.handle.folder_path, last, result.outcome.value)
        self._report()
        await self._send(result)

    async def _send(self, result: JobResult) -> None:
        assert self._emit is not None
        await self._emit(result)

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.progress)

    # -- cancellation ----------------------------------------------------------------

    async def _abandon(self, *, reason: str) -> None:
        """The batch ends early: stop what it started if asked, log what is left."""
        live = list(self._live.values())
        if live and self._stop_on_cancel:
            log.info("async_orch.jobs_stopping_on_cancel", count=len(live), reason=reason)
            left = await self._d._stop_and_wait(live, self._stop_policy.grace)
            log.info("async_orch.jobs_stopped", count=len(live) - len(left))
            live = left
        _log_left_running(live, self._shield.uncertain, reason=reason)


# -- helpers with I/O ---------------------------------------------------------------


@dataclass(slots=True)
class _Tries:
    count: int = 0


class _StartShield:
    """Protects StartJobs calls from cancellation so their outcome is known; once
    :meth:`abandon` is called they get at most ``ABANDON_START_WAIT`` more seconds."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._deadline: float | None = None
        self.uncertain: list[str] = []  # References of calls cut off that way

    @contextmanager
    def protect(self) -> Iterator[anyio.CancelScope]:
        scope = anyio.CancelScope(shield=True)
        if self._deadline is not None:
            scope.deadline = self._deadline
        self._scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.discard(scope)

    def abandon(self) -> None:
        if self._deadline is None:
            self._deadline = anyio.current_time() + ABANDON_START_WAIT
        for scope in self._scopes:
            scope.deadline = min(scope.deadline, self._deadline)


async def _guarded(work: Callable[[], Awaitable[None]], shield: _StartShield) -> None:
    """Run ``work``; if it is cancelled, bound the StartJobs calls it has in flight."""
    done = anyio.Event()

    async def run_work() -> None:
        try:
            await work()
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_work)
        try:
            await done.wait()
        except BaseException:
            shield.abandon()
            raise


class _Resolver:
    """Resolves each (folder, process) of a batch once, failures included."""

    def __init__(self, api: OrchestratorAPI) -> None:
        self._api = api
        self._found: dict[tuple[int | str, str], tuple[Folder, Release] | OrchestratorError] = {}
        self._locks: dict[tuple[int | str, str], anyio.Lock] = {}

    async def resolve(
        self, folder: int | str, process: str
    ) -> tuple[Folder, Release] | OrchestratorError:
        key = (folder, process)
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            if key not in self._found:
                try:
                    resolved = await self._api.resolve_folder(folder)
                    release = await self._api.resolve_release(resolved, process)
                    self._found[key] = (resolved, release)
                except OrchestratorError as exc:
                    self._found[key] = exc
        return self._found[key]

    async def resolve_all(
        self, keys: Iterator[tuple[int | str, str]] | Sequence[tuple[int | str, str]]
    ) -> None:
        limiter = anyio.CapacityLimiter(_RESOLVE_CONCURRENCY)

        async def one(folder: int | str, process: str) -> None:
            async with limiter:
                await self.resolve(folder, process)

        async with anyio.create_task_group() as tg:
            for folder, process in dict.fromkeys(keys):
                tg.start_soon(one, folder, process)

    def get(self, folder: int | str, process: str) -> tuple[Folder, Release] | OrchestratorError:
        return self._found[(folder, process)]


def _log_left_running(
    handles: Sequence[JobHandle], uncertain: Sequence[str], *, reason: str
) -> None:
    if not handles and not uncertain:
        return
    log.warning(
        "async_orch.jobs_left_running",
        reason=reason,
        count=len(handles),
        job_ids=[h.job_id for h in handles],
        references=[h.reference for h in handles],
        uncertain_references=list(uncertain),
        hint="these jobs were started and may still be running; wait for them with "
        "wait_jobs(handles) or stop them in Orchestrator (uncertain_references: a "
        "StartJobs whose answer never came; look these References up)",
    )


# -- pure helpers ---------------------------------------------------------------------


def _reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc``, or the one exception a task group wrapped it into, so callers
    see a callback's ``ValueError`` rather than an ExceptionGroup of one."""
    inner = _sole(exc)
    if inner is not exc:
        inner.__suppress_context__ = True  # its own __cause__ is still shown
    raise inner


def _sole(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _references(requests: Sequence[JobRequest]) -> list[str]:
    """The Reference of each request: the user's, or a generated unique one."""
    batch = uuid.uuid4().hex[:12]
    references = [r.reference or f"async-orch-{batch}-{i}" for i, r in enumerate(requests)]
    seen: dict[str, int] = {}
    for index, reference in enumerate(references):
        if len(reference) > 128:
            raise InvalidRequestError(
                f"request {index}: reference is {len(reference)} characters; "
                "Orchestrator accepts at most 128"
            )
        if reference in seen:
            raise InvalidRequestError(
                f"requests {seen[reference]} and {index} share the reference {reference!r}; "
                "references must be unique in a batch so a lost start can be found again"
            )
        seen[reference] = index
    return references


def _check_handles(handles: Sequence[JobHandle]) -> None:
    seen: dict[int, int] = {}
    for position, handle in enumerate(handles):
        if handle.job_id in seen:
            raise InvalidRequestError(
                f"handles {seen[handle.job_id]} and {position} are the same job "
                f"({handle.job_id}); give each job once"
            )
        seen[handle.job_id] = position


def _expected_jobs(request: JobRequest) -> int:
    """How many jobs a request should create (the results it will give)."""
    if request.strategy == StartStrategy.SPECIFIC.value and request.robot_ids:
        return len(request.robot_ids)
    return max(1, request.jobs_count)


def _label(request: JobRequest, target: tuple[Folder, Release] | OrchestratorError) -> str:
    """The progress label of a request's folder: its full path once resolved."""
    if isinstance(target, OrchestratorError):
        return str(request.folder)
    return target[0].fully_qualified_name


def _may_have_started(exc: OrchestratorError) -> bool:
    """Whether a failed StartJobs may still have created jobs (see backoff.py's table)."""
    if isinstance(exc, TransportError):
        return exc.may_have_reached_server
    if isinstance(exc, RateLimitedError):
        return False  # a 429 is a refusal
    if isinstance(exc, ServerError):
        # Only a 503 with Retry-After is a deliberate "not now"; a proxy also
        # answers 503 after forwarding, and 500/502/504 say nothing either.
        return not (exc.status == 503 and exc.retry_after is not None)
    return False


def _start_request(request: JobRequest, release_key: str, reference: str) -> StartRequest:
    return StartRequest(
        release_key=release_key,
        strategy=request.strategy,  # type: ignore[arg-type]
        jobs_count=request.jobs_count,
        robot_ids=list(request.robot_ids) if request.robot_ids else None,
        machine_session_ids=list(request.machine_session_ids)
        if request.machine_session_ids
        else None,
        job_priority=request.priority,  # type: ignore[arg-type]
        specific_priority_value=request.specific_priority,
        runtime_type=request.runtime_type,
        reference=reference,
        input_arguments=dict(request.inputs) if request.inputs is not None else None,
    )


def _handle(job: Job, folder: Folder, reference: str) -> JobHandle:
    return JobHandle(
        job_id=job.id,
        job_key=job.key,
        folder_id=folder.id,
        folder_key=folder.key,
        folder_path=folder.fully_qualified_name,
        reference=job.reference or reference,
        created=job.creation_time,
    )


def _request_of(handle: JobHandle) -> JobRequest:
    """A stand-in request for a job we only watch (started elsewhere)."""
    return JobRequest(
        process="", folder=handle.folder_path or handle.folder_id, reference=handle.reference
    )


def _result_of(index: int, request: JobRequest, attempts: int, item: Finished) -> JobResult:
    state = item.job.state if item.job is not None else item.state
    if item.timed_out:
        outcome = Outcome.STOPPED if state is JobState.STOPPED else Outcome.TIMED_OUT
    elif item.job is None:
        outcome = Outcome.UNKNOWN
    else:
        outcome = {
            JobState.SUCCESSFUL: Outcome.SUCCESSFUL,
            JobState.FAULTED: Outcome.FAULTED,
            JobState.STOPPED: Outcome.STOPPED,
        }.get(item.job.state, Outcome.UNKNOWN)
    return JobResult(
        index=index,
        request=request,
        outcome=outcome,
        handle=item.handle,
        job=item.job,
        error=item.error,
        attempts=attempts,
        detected=item.detected,
        timed_out=item.timed_out or item.stop_sent is not None,
        last_state=item.state,
    )
