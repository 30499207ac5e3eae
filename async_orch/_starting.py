"""Start each request exactly once: one StartJobs, never a blind retry.

Every request carries a Reference (the user's, or one generated per batch by
:func:`batch_references`). What to do after each answer is decided by the pure
:class:`~async_orch._retries.StartProtocol` (its docstring has the state
diagram); the :class:`Starter` only carries the decisions out: it posts
StartJobs under a :class:`StartLimiter` turn, looks References up through
:class:`~async_orch._reference_lookups.ReferenceLookups` (batched per folder,
charged to the list budget) and waits. In short: a refused start is posted
again after a backoff; an ambiguous one (no clear answer, so it may exist) is
looked up at once and again after the reconcile window, adopted if found,
posted again only if every lookup answered and found nothing, and otherwise
reported as uncertain (:class:`~async_orch._errors.UncertainStartError`): a
duplicate job is worse than a reported doubt.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
import anyio.lowlevel

from async_orch._cancellation import StartShield
from async_orch._config import RequestTimeouts, RetryPolicy
from async_orch._errors import (
    ClientClosedError,
    ConfigurationError,
    InvalidRequestError,
    RequestError,
)
from async_orch._jobs import JobHandle, JobRequest, folder_of, start_body
from async_orch._limits import StartLimiter
from async_orch._logs import get_logger
from async_orch._models import CreatedJob, Folder, Job, Release, StartRequest, reference_problem
from async_orch._planner import ListBudget, PollPolicy
from async_orch._records import record_builder
from async_orch._reference_lookups import ReferenceLookups
from async_orch._retries import (
    Adopted,
    BatchRetries,
    Created,
    Failed,
    LookUp,
    Post,
    StartProtocol,
    Uncertain,
    Wait,
    may_have_started,
)
from async_orch._seams import JobsAPI
from async_orch._server_clock import UNKNOWN_OFFSET_MARGIN
from async_orch._shared_budget import SharedListBudget
from async_orch._start_refusals import explain_start_refusal

__all__ = [
    "BatchRetries",
    "CreatedPairs",
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
Target = tuple[Folder, Release] | RequestError
#: Called with (handle, job) pairs and the attempts so far as soon as jobs exist.
#: The jobs a start created, each with its handle (what ``on_jobs`` hears).
CreatedPairs = list[tuple[JobHandle, CreatedJob | Job]]
JobsCallback = Callable[[CreatedPairs, int], None]

_RESOLVE_CONCURRENCY = 8  # folder/process lookups at once at the start of a batch


@dataclass(frozen=True, slots=True)
class Started:
    """A request that started one job or more (``jobs_count``)."""

    index: int
    request: JobRequest
    handles: list[JobHandle]
    attempts: int


_build_started = record_builder(Started)  # one a request (_records)


@dataclass(frozen=True, slots=True)
class StartFailure:
    """A request that started no job."""

    index: int
    request: JobRequest
    error: RequestError
    attempts: int


class Starter:
    """Starts one request at a time under a :class:`StartLimiter` (module docstring).

    Args:
        api: the resource API.
        limiter: turns to post; its ``start_attempts`` bounds POSTs per request.
        retry: backoff waits, ``reconcile_window`` and ``batch_retries``.
        sleep: awaited for every wait.
        budget: the client's list budget, which Reference lookups spend (the
            job watchers' one); by default a budget of its own.
        shared: the budget shared beyond this client, which each lookup also
            draws on (the job watchers' one), if any.
        clock: monotonic seconds, the budget's clock.
        server_now: the earliest the server's clock may read now (the transport's
            :class:`~async_orch._server_clock.ServerClock`; by default this
            machine's less its margin): when a first StartJobs is sent, so a job
            found by its Reference that is older is not adopted.
    """

    def __init__(
        self,
        api: JobsAPI,
        limiter: StartLimiter,
        *,
        retry: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]],
        budget: ListBudget | None = None,
        shared: SharedListBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
        server_now: Callable[[], datetime] = lambda: datetime.now(UTC) - UNKNOWN_OFFSET_MARGIN,
    ) -> None:
        self._api = api
        self._server_now = server_now
        self._limiter = limiter
        self._retry = retry
        self._window = retry.window_after(RequestTimeouts().total)
        self._sleep = sleep
        self._clock = clock
        budget = budget or ListBudget(PollPolicy().list_budget_per_minute)
        self.lookups = ReferenceLookups(api, budget, shared=shared, clock=clock, sleep=sleep)

    def batch_retries(self, requests: int) -> BatchRetries:
        """The re-post allowance of a batch of ``requests`` (``RetryPolicy.batch_retries``)."""
        return BatchRetries.for_batch(requests, self._retry)

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
        retries: BatchRetries | None = None,
        on_window: Callable[[], None] | None = None,
        inputs_json: str | None = None,
        checked: bool = False,
    ) -> Started | StartFailure:
        """Start ``request`` when its turn comes (a failure is returned, not raised).

        ``on_jobs`` hears of its jobs as soon as they are known, before any other
        await, so a cancellation cannot lose them. ``deadline`` (limiter clock):
        give up if no turn came by then. ``retries``: the batch's re-post
        allowance (by default one of this request's own). ``on_window`` is called
        when the start lets go of its turn to wait out the reconcile window.
        ``inputs_json``: the inputs as checking the batch encoded them (None:
        encode them here). ``checked``: the request and ``reference`` passed the
        batch's checks (``checked_requests``, ``batch_references``), ``inputs_json``
        being its entry there: they are not checked again (``start_body``).
        """
        attempts = 0
        try:
            if isinstance(target, RequestError):
                raise target
            folder, release = target
            # Built before waiting for a turn: building checks the inputs.
            body = start_body(
                request,
                release_key=release.key,
                reference=reference,
                inputs_json=inputs_json,
                checked=checked,
            )
            protocol = StartProtocol(
                reference,
                folder=folder.fully_qualified_name,
                max_posts=self._limiter.limits.start_attempts,
                window=self._window,
                policy=self._retry,
                batch=retries or BatchRetries.for_batch(1, self._retry),
                process=release.name,
            )
            try:
                jobs = await self._drive(
                    protocol, folder, body, shield=shield, deadline=deadline, on_window=on_window
                )
            finally:
                attempts = protocol.posts
            handles = [JobHandle.of(job, folder, reference=reference) for job in jobs]
            on_jobs(list(zip(handles, jobs, strict=True)), attempts)
        except RequestError as exc:
            where = target[0].fully_qualified_name if isinstance(target, tuple) else None
            exc = explain_start_refusal(exc, where or str(request.folder))
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
        return _build_started(index=index, request=request, handles=handles, attempts=attempts)

    async def _drive(
        self,
        protocol: StartProtocol,
        folder: Folder,
        body: StartRequest,
        *,
        shield: StartShield,
        deadline: float | None,
        on_window: Callable[[], None] | None,
    ) -> Sequence[CreatedJob | Job]:
        """Carry out the protocol's steps until it ends; return the jobs, or raise
        why there are none."""
        reference = protocol.reference
        expected = _expected_jobs(body)
        release: Callable[[], None] | None = None  # the turn, held from a POST until reconciling
        slept_until = -math.inf  # a sleep is trusted to have lasted (tests inject one)
        try:
            while True:
                step = protocol.next_step(max(self._clock(), slept_until))
                if isinstance(step, Created | Adopted):
                    if isinstance(step, Adopted):
                        log.info(
                            "async_orch.start_reconciled",
                            reference=reference,
                            jobs=len(step.jobs),
                        )
                    return step.jobs
                if isinstance(step, Failed):
                    raise step.error
                if isinstance(step, Uncertain):
                    log.warning(
                        "async_orch.start_uncertain",
                        reference=reference,
                        folder=folder.fully_qualified_name,
                    )
                    raise step.error
                if protocol.reconciling and release is not None:
                    held, release = release, None
                    held()  # no slot is held through the window
                    if on_window is not None:
                        on_window()  # nor a worker of the batch's pool
                if isinstance(step, Wait):
                    await self._sleep(max(0.0, step.until - self._clock()))
                    slept_until = step.until
                elif isinstance(step, LookUp):
                    answer = await self.lookups.find(folder, reference, expected_jobs=expected)
                    if answer.error is not None:
                        log.info(
                            "async_orch.reconcile_failed",
                            reference=reference,
                            error=str(answer.error),
                        )
                        protocol.lookup_failed(answer.error, sent_at=answer.sent_at)
                    else:
                        protocol.looked_up(answer.jobs, sent_at=answer.sent_at)
                else:
                    if release is None:
                        release = await self._limiter.take_turn(folder.id, deadline=deadline)
                    await self._post(protocol, step, folder, body, shield=shield)
        except BaseException:
            if protocol.reconciling:
                # Ended before the lookups could tell (cancelled, or an error that is
                # no answer, such as the client closed under it): its jobs may exist.
                shield.uncertain.append(reference)
            raise
        finally:
            if release is not None:
                release()

    async def _post(
        self,
        protocol: StartProtocol,
        step: Post,
        folder: Folder,
        body: StartRequest,
        *,
        shield: StartShield,
    ) -> None:
        """Send one StartJobs and report its outcome to ``protocol``."""
        reference = protocol.reference
        if protocol.first_post_at is None:
            # On the server's clock, as the CreationTime it is compared with.
            protocol.first_post_at = self._server_now()
        with shield.protect() as scope:
            try:
                jobs = await self._api.create_jobs(folder, body)
            except RequestError as exc:
                log.info(
                    "async_orch.start_ambiguous"
                    if may_have_started(exc)
                    else "async_orch.start_refused",
                    reference=reference,
                    folder=folder.fully_qualified_name,
                    attempt=step.attempt,
                    error=str(exc),
                )
                protocol.post_failed(exc, self._clock())
            except Exception:
                # Neither an answer nor a refusal (the client closed under the call,
                # say): the POST may be on the server, so the start is in doubt.
                shield.uncertain.append(reference)
                raise
            else:
                protocol.posted(jobs)
        if scope.cancelled_caught:
            # The batch was cancelled and this call outlived ABANDON_START_WAIT.
            shield.uncertain.append(reference)
            await anyio.lowlevel.checkpoint()  # delivers the pending cancellation
            # Only a batch that is ending (cancelled, or failed and so cancelling its
            # tasks) cuts a StartJobs off, so that cancellation is always pending.
            raise AssertionError(f"StartJobs for Reference {reference!r} cut off, not cancelled")


async def resolve_targets(api: JobsAPI, requests: Sequence[JobRequest]) -> list[Target]:
    """Each request's folder and release, looking each distinct pair up once."""
    found: dict[tuple[int | str, str], Target] = {}
    limiter = anyio.CapacityLimiter(_RESOLVE_CONCURRENCY)
    fatal: list[ClientClosedError | ConfigurationError] = []

    async def resolve(key: tuple[int | str, str]) -> None:
        folder, process = key
        async with limiter:
            try:
                resolved = await api.resolve_folder(folder)
                found[key] = (resolved, await api.resolve_release(resolved, process))
            except RequestError as exc:
                found[key] = exc
            except (ClientClosedError, ConfigurationError) as exc:
                # Closed under the batch, or no API at the URL (_fatal.no_api_here):
                # every other lookup would fail alike; one error comes out, not a
                # group of one copy per lookup in flight.
                fatal.append(exc)
                tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        for key in dict.fromkeys((folder_of(r), r.process) for r in requests):
            tg.start_soon(resolve, key)
    if fatal:
        raise fatal[0]
    return [found[(folder_of(r), r.process)] for r in requests]


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
        if (problem := reference_problem(reference)) is not None:
            raise InvalidRequestError(f"request {index}: reference {problem}")
        if reference in seen:
            raise InvalidRequestError(
                f"requests {seen[reference]} and {index} share the reference {reference!r}; "
                "references must be unique in a batch so a lost start can be found again"
            )
        seen[reference] = index
    return references


def _expected_jobs(body: StartRequest) -> int:
    """The jobs a StartJobs body asks for (for sizing lookups)."""
    if body.robot_ids:
        return len(body.robot_ids)
    return max(1, body.jobs_count or 1)
