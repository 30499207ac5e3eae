"""Start many jobs across folders, exactly once each, and wait for all of them.

Theory of operation:

1. **Resolve** each request's folder and process once (the resource API caches
   them), so 500 jobs in 4 folders cost a handful of lookups.
2. **Start** each request under three limits: requests in flight overall, in
   flight per folder, and a start rate (token bucket). All three can be resized
   while a batch runs.
3. **Exactly once**: every request carries a Reference (the user's, or one we
   generate). StartJobs is never retried blindly: when a POST may have reached
   the server (timeout, reset connection, 5xx) we first list the folder's jobs
   with that Reference; if they exist we adopt them, otherwise we post again.
4. **Watch** every started job with the :class:`~async_orch.poller.JobWatcher`
   (batched list polls under a budget, one ``Jobs({id})`` per final job for its
   OutputArguments).
5. **Report** one :class:`~async_orch.batch.JobResult` per job. Failures do not
   raise out of the batch; a job that was started is always reported, even on
   timeout (as still running, or stopped if asked).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import anyio

from async_orch.backoff import compute_delay
from async_orch.batch import JobHandle, JobRequest, JobResult, Outcome, Progress
from async_orch.config import RetryPolicy
from async_orch.errors import (
    InvalidRequestError,
    OrchestratorError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from async_orch.logs import get_logger
from async_orch.models import Folder, Job, StartRequest
from async_orch.planner import PollPolicy
from async_orch.poller import Finished, JobWatcher, StopPolicy
from async_orch.resources import OrchestratorAPI
from async_orch.states import JobState
from async_orch.throttle import TokenBucket

__all__ = ["DispatchLimits", "Dispatcher", "ProgressCallback", "StartFailure", "Started"]

log = get_logger("async_orch.dispatcher")

ProgressCallback = Callable[[Progress], None]

_QUEUED = "queued"  # progress state of a request not started yet


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
        """Change limits while a batch runs (a value left as None is unchanged)."""
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
        on_started: Callable[[int, JobHandle], None] | None = None,
    ) -> list[Started | StartFailure]:
        """Start every request; return, per request in order, what it started or why not."""
        references = _references(requests)
        outcome: list[Started | StartFailure | None] = [None] * len(requests)

        async def start_one(index: int) -> None:
            result = await self._start_one(index, requests[index], references[index])
            outcome[index] = result
            if on_started is not None and isinstance(result, Started):
                for handle in result.handles:
                    on_started(index, handle)

        async with anyio.create_task_group() as tg:
            for index in range(len(requests)):
                tg.start_soon(start_one, index)
        return [r for r in outcome if r is not None]

    async def iter_results(
        self,
        requests: Sequence[JobRequest] | None = None,
        *,
        handles: Sequence[JobHandle] | None = None,
        timeout: float | None = None,
        stop_on_timeout: StopPolicy | None = None,
        on_progress: ProgressCallback | None = None,
        on_started: Callable[[int, JobHandle], None] | None = None,
    ) -> AsyncIterator[JobResult]:
        """Start ``requests`` (and/or watch existing ``handles``) and yield results
        as jobs end, in completion order.

        Args:
            timeout: seconds for the whole batch; jobs still running then are
                timed out (stopped if ``stop_on_timeout.stop``).
        """
        requests = list(requests or [])
        handles = list(handles or [])
        references = _references(requests)
        progress = Progress(total=len(requests) + len(handles))
        send, receive = anyio.create_memory_object_stream[JobResult](max_buffer_size=1_000_000)
        deadline = self._clock() + timeout if timeout is not None else None

        origin: dict[int, tuple[int, JobRequest, int]] = {}  # job id -> index, request, attempts

        def report() -> None:
            if on_progress is not None:
                on_progress(progress)

        def on_state(handle: JobHandle, old: JobState | None, new: JobState) -> None:
            progress.move(
                handle.folder_path, old.value if old else JobState.PENDING.value, new.value
            )
            report()

        watcher = JobWatcher(
            self._api,
            policy=self._poll,
            stop_policy=stop_on_timeout,
            clock=self._clock,
            on_state=on_state,
        )

        async def finished(item: Finished) -> None:
            index, request, attempts = origin[item.handle.job_id]
            result = _result_of(index, request, attempts, item)
            last = item.state.value if item.state else JobState.PENDING.value
            progress.move(item.handle.folder_path, last, result.outcome.value)
            report()
            await send.send(result)

        async def start_one(index: int, request: JobRequest) -> None:
            folder_label = str(request.folder)
            progress.move(folder_label, None, _QUEUED)
            started = await self._start_one(index, request, references[index])
            if isinstance(started, StartFailure):
                progress.move(folder_label, _QUEUED, Outcome.NOT_STARTED.value)
                report()
                await send.send(
                    JobResult(
                        index=index,
                        request=request,
                        outcome=Outcome.NOT_STARTED,
                        error=started.error,
                        attempts=started.attempts,
                        detected=datetime.now(UTC),
                    )
                )
                return
            progress.forget(folder_label, _QUEUED)
            for handle in started.handles:
                origin[handle.job_id] = (index, request, started.attempts)
                progress.move(handle.folder_path, None, JobState.PENDING.value)
                if on_started is not None:
                    on_started(index, handle)
                watcher.watch(handle, timeout=request.timeout)
                if deadline is not None:
                    watcher.set_deadline(deadline)
            report()

        async def start_all() -> None:
            try:
                async with anyio.create_task_group() as tg:
                    for index, request in enumerate(requests):
                        tg.start_soon(start_one, index, request)
            finally:
                watcher.close()

        async def run_all() -> None:
            async with send, anyio.create_task_group() as tg:
                tg.start_soon(watcher.run, finished)
                for handle in handles:
                    origin[handle.job_id] = (len(origin), _request_of(handle), 0)
                    watcher.watch(handle)
                    progress.move(handle.folder_path, None, JobState.PENDING.value)
                if deadline is not None:
                    watcher.set_deadline(deadline)
                tg.start_soon(start_all)

        async with anyio.create_task_group() as tg, receive:
            tg.start_soon(run_all)
            async for result in receive:
                yield result

    async def run(self, requests: Sequence[JobRequest], **kwargs: object) -> list[JobResult]:
        """Start every request, wait for every job, return results in request order.

        A request with ``jobs_count`` N contributes N results, consecutively.
        """
        results: list[JobResult] = [r async for r in self.iter_results(requests, **kwargs)]  # type: ignore[arg-type]
        results.sort(key=lambda r: (r.index, r.job_id or 0))
        return results

    # -- starting, exactly once ------------------------------------------------------

    async def _start_one(
        self, index: int, request: JobRequest, reference: str
    ) -> Started | StartFailure:
        attempts = 0
        try:
            folder = await self._api.resolve_folder(request.folder)
            release = await self._api.resolve_release(folder, request.process)
            start_request = _start_request(request, release.key, reference)
            start_request.to_api()  # validate inputs before any StartJobs
            limiter = self._folder_limiter(folder)
            async with self._in_flight, limiter:
                await self._take_start_token()
                jobs, attempts = await self._start_exactly_once(folder, start_request, request)
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
        handles = [_handle(job, folder, reference) for job in jobs]
        log.debug(
            "async_orch.job_started",
            index=index,
            folder=folder.fully_qualified_name,
            job_ids=[h.job_id for h in handles],
            reference=reference,
            attempts=attempts,
        )
        return Started(index=index, request=request, handles=handles, attempts=attempts)

    async def _start_exactly_once(
        self, folder: Folder, start_request: StartRequest, request: JobRequest
    ) -> tuple[list[Job], int]:
        reference = start_request.reference or ""
        attempts = 0
        last_error: OrchestratorError | None = None
        while attempts < self._limits.start_attempts:
            attempts += 1
            try:
                return await self._api.start_jobs(folder, start_request), attempts
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
                found = await self._find_by_reference(folder, reference, request.jobs_count)
                if found:
                    log.info("async_orch.start_reconciled", reference=reference, jobs=len(found))
                    return found, attempts
            await self._sleep(compute_delay(attempts, policy=self._retry))
        assert last_error is not None
        raise last_error

    async def _find_by_reference(self, folder: Folder, reference: str, expected: int) -> list[Job]:
        """The jobs a possibly-lost StartJobs created, found by their Reference."""
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return await self._api.list_jobs(folder, reference=reference)
            except OrchestratorError as exc:
                log.info("async_orch.reconcile_retry", reference=reference, error=str(exc))
                await self._sleep(compute_delay(attempt, policy=self._retry))
        # We could not tell whether the jobs exist: refuse to post again, since a
        # duplicate is worse than a reported failure.
        raise InvalidRequestError(
            f"could not tell whether StartJobs with Reference {reference!r} created jobs "
            f"in folder {folder.fully_qualified_name!r}; look for that Reference in "
            "Orchestrator before starting it again"
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


# -- pure helpers ---------------------------------------------------------------------


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


def _may_have_started(exc: OrchestratorError) -> bool:
    """Whether a failed StartJobs may still have created jobs."""
    if isinstance(exc, TransportError):
        return exc.may_have_reached_server
    if isinstance(exc, RateLimitedError):
        return False  # a 429 is a refusal
    if isinstance(exc, ServerError):
        return exc.status != 503  # 503: not processed; 500/502/504: unknown
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
    if item.timed_out:
        outcome = Outcome.TIMED_OUT
        if item.job is not None and item.job.state is JobState.STOPPED:
            outcome = Outcome.STOPPED
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
    )
