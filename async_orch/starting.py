"""Start each request exactly once: one StartJobs, never a blind retry.

Every request carries a Reference (the user's, or one generated per batch by
:func:`batch_references`). A failed StartJobs is posted again only when it
certainly created nothing (:func:`may_have_started` is False: a 429, a 503 with
Retry-After, a connection refused). When it may have reached the server (a
reset connection, a timeout, any other 5xx), the folder's jobs with that
Reference are listed first: found, they are adopted; not found, the request
is posted again. If that lookup keeps failing the request is reported as not
started and never posted again: a duplicate job is worse than a reported failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from async_orch.backoff import compute_delay
from async_orch.batch import JobHandle, JobRequest
from async_orch.cancellation import StartShield
from async_orch.config import RetryPolicy
from async_orch.errors import (
    ClientClosedError,
    InvalidRequestError,
    OrchestratorError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from async_orch.limits import StartLimiter
from async_orch.logs import get_logger
from async_orch.models import Folder, Job, Release, StartRequest
from async_orch.resources import OrchestratorAPI

__all__ = [
    "JobsCallback",
    "StartFailure",
    "Started",
    "Starter",
    "Target",
    "batch_references",
    "may_have_started",
    "resolve_targets",
]

log = get_logger("async_orch.starting")

#: Where a request goes: its folder and release, or why they did not resolve.
Target = tuple[Folder, Release] | OrchestratorError
#: Called with (handle, job) pairs and the attempts so far as soon as jobs exist.
JobsCallback = Callable[[list[tuple[JobHandle, Job]], int], None]

_RESOLVE_CONCURRENCY = 8  # folder/process lookups at once at the start of a batch
_MAX_REFERENCE = 128  # characters; Orchestrator refuses longer References


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


class Starter:
    """Starts one request at a time under a :class:`StartLimiter` (module docstring)."""

    def __init__(
        self,
        api: OrchestratorAPI,
        limiter: StartLimiter,
        *,
        retry: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._api = api
        self._limiter = limiter
        self._retry = retry
        self._sleep = sleep

    async def start(
        self,
        index: int,
        request: JobRequest,
        reference: str,
        target: Target,
        *,
        shield: StartShield,
        on_jobs: JobsCallback,
        deadline: float | None = None,
    ) -> Started | StartFailure:
        """Start ``request`` when its turn comes (a failure is returned, not raised).

        ``on_jobs`` hears of its jobs as soon as they are known, before any other
        await, so a cancellation cannot lose them. ``deadline`` (limiter clock):
        give up if no turn came by then.
        """
        tries = _Tries()
        try:
            if isinstance(target, OrchestratorError):
                raise target
            folder, release = target
            # Built before waiting for a turn: building checks the inputs.
            body = _start_request(request, release.key, reference)
            handles: list[JobHandle] = []

            def on_created(jobs: list[Job], attempts: int) -> None:
                pairs = [(JobHandle.of(job, folder, reference=reference), job) for job in jobs]
                handles.extend(handle for handle, _ in pairs)
                on_jobs(pairs, attempts)

            async with self._limiter.turn(folder.id, deadline=deadline):
                await self._post_exactly_once(
                    folder, body, tries=tries, shield=shield, on_created=on_created
                )
        except ClientClosedError:
            raise  # the client is gone: nothing to retry or report per job
        except OrchestratorError as exc:
            log.info(
                "async_orch.start_failed",
                index=index,
                folder=str(request.folder),
                process=request.process,
                reference=reference,
                error=str(exc),
            )
            return StartFailure(index=index, request=request, error=exc, attempts=tries.count)
        log.debug(
            "async_orch.job_started",
            index=index,
            folder=folder.fully_qualified_name,
            job_ids=[h.job_id for h in handles],
            reference=reference,
            attempts=tries.count,
        )
        return Started(index=index, request=request, handles=handles, attempts=tries.count)

    async def _post_exactly_once(
        self,
        folder: Folder,
        body: StartRequest,
        *,
        tries: _Tries,
        shield: StartShield,
        on_created: Callable[[list[Job], int], None],
    ) -> None:
        """Post StartJobs until it is answered, reconciling by Reference whenever the
        previous post may have created jobs; ``tries`` counts the attempts."""
        reference = body.reference or ""
        last_error: OrchestratorError | None = None
        while tries.count < self._limiter.limits.start_attempts:
            tries.count += 1
            with shield.protect() as scope:
                try:
                    jobs = await self._api.start_jobs(folder, body)
                except (TransportError, ServerError, RateLimitedError) as exc:
                    last_error = exc
                    ambiguous = may_have_started(exc)
                    log.info(
                        "async_orch.start_uncertain" if ambiguous else "async_orch.start_retry",
                        reference=reference,
                        folder=folder.fully_qualified_name,
                        attempt=tries.count,
                        error=str(exc),
                    )
                    if ambiguous:
                        found = await self._find_by_reference(folder, reference)
                        if found:
                            log.info(
                                "async_orch.start_reconciled", reference=reference, jobs=len(found)
                            )
                            on_created(found, tries.count)
                            return
                else:
                    on_created(jobs, tries.count)
                    return
            if scope.cancelled_caught:
                # The batch was cancelled and this call outlived ABANDON_START_WAIT.
                shield.uncertain.append(reference)
                await anyio.lowlevel.checkpoint()  # delivers the pending cancellation
                raise OrchestratorError(f"StartJobs for Reference {reference!r} was abandoned")
            await self._sleep(compute_delay(tries.count, policy=self._retry))
        assert last_error is not None
        raise last_error

    async def _find_by_reference(self, folder: Folder, reference: str) -> list[Job]:
        """The jobs a possibly-lost StartJobs created, found by their Reference."""
        last: OrchestratorError | None = None
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return await self._api.list_jobs(folder, reference=reference)
            except ClientClosedError:
                raise  # the client is gone: nothing to retry or report per job
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


@dataclass(slots=True)
class _Tries:
    """StartJobs attempts so far (read after the loop, however it ended)."""

    count: int = 0


async def resolve_targets(api: OrchestratorAPI, requests: Sequence[JobRequest]) -> list[Target]:
    """Each request's folder and release, looking each distinct pair up once."""
    found: dict[tuple[int | str, str], Target] = {}
    limiter = anyio.CapacityLimiter(_RESOLVE_CONCURRENCY)

    async def resolve(key: tuple[int | str, str]) -> None:
        folder, process = key
        async with limiter:
            try:
                resolved = await api.resolve_folder(folder)
                found[key] = (resolved, await api.resolve_release(resolved, process))
            except ClientClosedError:
                raise  # the client is gone: nothing to retry or report per job
            except OrchestratorError as exc:
                found[key] = exc

    async with anyio.create_task_group() as tg:
        for key in dict.fromkeys((r.folder, r.process) for r in requests):
            tg.start_soon(resolve, key)
    return [found[(r.folder, r.process)] for r in requests]


def batch_references(requests: Sequence[JobRequest], *, prefix: str | None = None) -> list[str]:
    """The Reference of each request: the user's, or ``<prefix>-<index>`` (by
    default a prefix unique to this call).

    Raises:
        InvalidRequestError: a Reference is too long, or two requests share one.
    """
    prefix = prefix or f"async-orch-{uuid.uuid4().hex[:12]}"
    references = [r.reference or f"{prefix}-{i}" for i, r in enumerate(requests)]
    seen: dict[str, int] = {}
    for index, reference in enumerate(references):
        if len(reference) > _MAX_REFERENCE:
            raise InvalidRequestError(
                f"request {index}: reference {reference[:20]!r}... is {len(reference)} "
                f"characters; Orchestrator accepts at most {_MAX_REFERENCE}"
            )
        if reference in seen:
            raise InvalidRequestError(
                f"requests {seen[reference]} and {index} share the reference {reference!r}; "
                "references must be unique in a batch so a lost start can be found again"
            )
        seen[reference] = index
    return references


def may_have_started(exc: OrchestratorError) -> bool:
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
    return request.start_request(release_key=release_key, reference=reference)
