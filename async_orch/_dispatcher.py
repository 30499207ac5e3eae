"""Start many jobs across folders, exactly once each, and wait for all of them.

Theory of operation:

1. **Resolve** each distinct (folder, process) of a batch once (the resource API
   caches them), so 500 jobs in 4 folders cost a handful of lookups. A request
   whose folder or process does not resolve is reported NOT_STARTED and no
   StartJobs is sent for it. A malformed request (inputs, priority, ...) refuses
   the whole batch before anything is resolved (``batch.checked_requests``).
2. **Start** each request under three limits (``limits.py``): StartJobs calls
   in flight per folder, in flight overall, and a start rate (token bucket).
   All three can be resized while a batch runs. A request still waiting for its
   turn when the batch timeout passes is not started (NOT_STARTED).
3. **Exactly once** (``starting.py``, decisions in ``retries.py``): every
   request carries a Reference (the user's, or one we generate). StartJobs is
   never retried blindly: when a POST may have reached the server (a reset
   connection, a timeout, a 5xx other than a 503 with Retry-After) we list the
   folder's jobs with that Reference at once and again after the reconcile
   window; if they exist we adopt them; if a lookup after the window answered
   and found none, we post again. If every lookup after the window failed the
   request is never posted again: it is reported UNCERTAIN with its Reference:
   a duplicate job is worse than a reported doubt.
4. **Watch** every started job with the :class:`~async_orch._poller.JobWatcher`
   (batched list polls under a budget, one ``Jobs({id})`` per final job for its
   OutputArguments); ``on_state`` hears of every state seen. Batches run at once
   on one dispatcher share one list budget, and each list call carries the other
   batches' jobs of its folder (:class:`~async_orch._poller.WatcherGroup`).
5. **Report** one :class:`~async_orch._jobs.JobResult` per job (a request with
   ``jobs_count`` N gives N results, started or not). Failures do not raise
   out of the batch; a job that was started is always reported, even on
   timeout (as still running, or stopped if asked).

Cancellation (``cancellation.py``). A batch cancelled from outside (a cancel
scope, a timeout of the caller's, leaving ``stream_results`` early) or ended by a
callback's exception never leaves jobs behind silently:

- a StartJobs call in flight is allowed up to ``ABANDON_START_WAIT`` seconds
  to finish, so its outcome is known; the jobs it created are included below;
- if ``StopPolicy.stops_on_cancel``, every started job not yet reported is stopped
  (SoftStop, then Kill after the grace period) before the cancellation goes on;
  their last states go to ``on_state``;
- what was stopped, what is still running (or might be) and the References
  whose StartJobs never answered go to ``on_abandoned`` as an
  :class:`~async_orch._jobs.Abandoned`; without that callback they are logged
  as the warning ``async_orch.jobs_left_running``. The same happens when an
  error ends the batch mid-run (every folder refused, the token revoked), and
  :meth:`Dispatcher.run`, which then raises, gives its results so far with it.

Pass ``on_started`` to persist handles as jobs start, so they can be waited
for (or stopped) later with :meth:`Dispatcher.run` and ``handles=``.

The work is split by job: ``batch_run.py`` runs one batch, ``start_pool.py``
hands its requests to a fixed pool of workers (memory flat in the batch size),
``starting.py`` starts one request, ``limits.py`` hands out turns,
``cancellation.py`` ends early; this module is the entry point.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from async_orch._batch_run import BatchParts, BatchRun
from async_orch._cancellation import (
    StartShield,
    reason_of,
    report_abandoned,
    report_unreturned_results,
    reraise,
    run_guarded,
)
from async_orch._config import RetryPolicy
from async_orch._jobs import Abandoned, JobHandle, JobRequest, JobResult, checked_requests
from async_orch._limits import DispatchLimits, StartLimiter
from async_orch._list_budget import ListPace
from async_orch._models import Folder
from async_orch._options import Hooks, StartedCallback, StopPolicy
from async_orch._planner import PollPolicy
from async_orch._poller import WatcherGroup
from async_orch._reference_lookups import LookupAnswer
from async_orch._seams import JobsAPI
from async_orch._server_clock import UNKNOWN_OFFSET_MARGIN
from async_orch._shared_budget import InProcessListBudget, SharedListBudget
from async_orch._start_pool import StartPool
from async_orch._starting import (
    CreatedPairs,
    Started,
    Starter,
    StartFailure,
    Target,
    batch_references,
    resolve_targets,
)
from async_orch._webhooks import WebhookReceiver

__all__ = ["DispatchLimits", "Dispatcher", "StartFailure", "Started"]


class Dispatcher:
    """Start, watch and report; see the module docstring. Use it through
    :class:`~async_orch._client.OrchestratorClient` unless you build your own client.
    """

    def __init__(
        self,
        api: JobsAPI,
        *,
        limits: DispatchLimits | None = None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        webhooks: WebhookReceiver | None = None,
        list_budget: SharedListBudget | None = None,
        server_now: Callable[[], datetime] = lambda: datetime.now(UTC) - UNKNOWN_OFFSET_MARGIN,
    ) -> None:
        # server_now: now on the server's clock as far as known (the client passes
        # its transport's ServerClock reading); jobs found by Reference are judged by it.
        self._api = api
        poll = poll or PollPolicy()
        # One list budget for every batch of this dispatcher, run at once or not (the
        # tenant's limit on GET /odata/Jobs is one for all), and list calls shared;
        # webhook events, if any, reach every batch's watcher; by default the shared
        # budget is this dispatcher's own.
        if list_budget is None and poll.list_budget_per_minute:
            list_budget = InProcessListBudget(
                int(poll.list_budget_per_minute), clock=clock, sleep=sleep
            )
        watchers = WatcherGroup(poll, webhooks=webhooks, shared=list_budget, clock=clock)
        self.list_budget = list_budget
        self._watchers = watchers
        limiter = StartLimiter(limits or DispatchLimits(), clock=clock, sleep=sleep)
        self._pool = StartPool(limiter)
        self._starter = Starter(
            api,
            limiter,
            retry=retry or RetryPolicy(),
            sleep=sleep,
            budget=watchers.budget,  # Reference lookups are list calls too
            shared=list_budget,
            clock=clock,
            server_now=server_now,
        )
        self._parts = BatchParts(api, self._starter, self._pool, poll, watchers, clock)

    def list_pace(self) -> ListPace:
        """What the list budget allows now: a heartbeat says so when it holds the run."""
        return self._watchers.budget.pace()

    async def jobs_with_references(
        self, folder: Folder, references: Sequence[str]
    ) -> dict[str, LookupAnswer]:
        """What a lookup of each of ``references`` in ``folder`` found, in shared
        ``Reference in (...)`` calls charged to the list budget (as a lost start's
        lookups are): to check References are new before starting anything."""
        return await self._starter.lookups.find_all(folder, list(dict.fromkeys(references)))

    def observe_list_answer(self, remaining: int | None) -> None:
        """A GET Jobs answer said ``remaining`` calls are left in the tenant's window
        (None: it did not say); the list budget adapts to it."""
        self._watchers.observe(remaining)

    # -- limits, resizable while running ------------------------------------------

    @property
    def limits(self) -> DispatchLimits:
        return self._pool.limiter.limits

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
        self._pool.limiter.resize(
            max_in_flight=max_in_flight, per_folder=per_folder, starts_per_second=starts_per_second
        )
        self._pool.limits_changed()

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
        requests = checked_requests(requests)  # all or nothing
        references = batch_references(requests)
        shield = StartShield()
        retries = self._starter.batch_retries(len(requests))
        outcome: list[Started | StartFailure | None] = [None] * len(requests)
        live: list[JobHandle] = []

        async def start_one(index: int, target: Target, step_aside: Callable[[], None]) -> None:
            def on_jobs(pairs: CreatedPairs, attempts: int) -> None:
                for handle, _ in pairs:
                    live.append(handle)
                    if on_started is not None:
                        on_started(index, handle)

            outcome[index] = await self._starter.start(
                index,
                requests[index],
                references[index],
                target,
                shield=shield,
                on_jobs=on_jobs,
                retries=retries,
                on_window=step_aside,
                inputs_json=requests.inputs_json[index],
                checked=True,
            )

        async def start_all() -> None:
            targets = await resolve_targets(self._api, requests)

            async def start(index: int, step_aside: Callable[[], None]) -> None:
                await start_one(index, targets[index], step_aside)

            await self._pool.start_every(targets, start)

        try:
            await run_guarded(start_all, shield)
        except BaseException as exc:
            abandoned = Abandoned(
                reason=reason_of(exc),
                left_running=tuple(live),
                uncertain_references=tuple(shield.uncertain),
            )
            report_abandoned(abandoned, None)
            reraise(exc)
        return [r for r in outcome if r is not None]

    async def run(
        self,
        requests: Sequence[JobRequest] | None = None,
        *,
        handles: Sequence[JobHandle] | None = None,
        timeout: float | None = None,
        stop: StopPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> list[JobResult]:
        """Start ``requests`` (and/or watch ``handles``), wait for every job, and
        return results in request order (then in ``handles`` order).

        A request with ``jobs_count`` N contributes N results, consecutively.
        Arguments are those of :meth:`stream_results`.
        """
        results: list[JobResult] = []

        async def collect(result: JobResult) -> None:
            results.append(result)

        given: list[bool] = []  # [True] once on_abandoned took the results (and returned)
        # Not stream_results() collected: its stream costs a loop turn per result.
        batch = self._batch(
            requests,
            handles,
            emit=collect,
            timeout=timeout,
            stop=stop,
            hooks=with_results(hooks, lambda: results, lambda: given.append(True)),
        )
        try:
            await batch.run()
        except BaseException as exc:
            if results and not given:
                report_unreturned_results(exc, sorted(results, key=_request_order))
            raise
        results.sort(key=_request_order)
        return results

    @asynccontextmanager
    async def stream_results(
        self,
        requests: Sequence[JobRequest] | None = None,
        *,
        handles: Sequence[JobHandle] | None = None,
        timeout: float | None = None,
        stop: StopPolicy | None = None,
        hooks: Hooks | None = None,
        on_attempts: Callable[[JobHandle, int], None] | None = None,
        on_left: Callable[[Abandoned], None] | None = None,
    ) -> AsyncIterator[AsyncIterator[JobResult]]:
        """Start ``requests`` (and/or watch existing ``handles``) in a task group of
        this ``async with`` block, which gives the results as jobs end, in
        completion order::

            async with dispatcher.stream_results(requests) as results:
                async for result in results:
                    ...

        Args:
            requests: what to start.
            handles: jobs started earlier (maybe elsewhere) to wait for as well;
                their results have ``index`` = ``len(requests)`` + position in
                ``handles`` (so with no requests, the position).
            timeout: seconds for the whole batch. Requests not started by then
                are not started; jobs still running then are timed out.
            stop: what to do with jobs past a deadline (the batch timeout or a
                request's own ``timeout``) and with those of a batch cancelled
                or left early (:class:`~async_orch._options.StopPolicy`; by
                default they are left running and reported).
            hooks: the functions told of the batch's events
                (:class:`~async_orch._options.Hooks`). Given ``on_abandoned``,
                the caller reports the jobs left behind, so the event
                ``async_orch.jobs_left_running`` is logged at info level
                instead of as a warning.
            on_attempts: told the StartJobs attempts of each job as it exists,
                just before ``hooks.on_started`` (a journaled batch keeps them).
            on_left: told what an early end left behind (the :class:`Abandoned`,
                without results) once no StartJobs of the batch can still be in
                flight, before ``hooks.on_abandoned`` (a journaled batch records
                which starts are in doubt, so its resume waits only for those).

        Callbacks run in the event loop and must not block. One that raises ends
        the batch like a cancellation, and its exception comes out of the
        iteration (or, if the loop was left before, out of the block), as it is.

        Leaving the block before the last result (a ``break``, an exception, a
        cancellation) ends the batch there, as a cancellation (see the module
        docstring), before the block is left; an exception of the block comes
        out as it is, not in an exception group.
        """
        send, receive = anyio.create_memory_object_stream[JobResult](math.inf)

        def unread() -> list[JobResult]:
            """The results the block left without reading (none if it did not leave
            early: the batch ended by an error, the block reads them still)."""
            if batch.cancel_reason is None:
                return []
            left: list[JobResult] = []
            with suppress(anyio.WouldBlock, anyio.EndOfStream):
                while True:
                    left.append(receive.receive_nowait())
            return left

        async def emit(result: JobResult) -> None:
            # No checkpoint (send() has one): cancelled there, as the block left
            # while jobs ended, a result was lost, its job already out of the
            # batch's table and named nowhere (attack h10b). The buffer is unbounded.
            send.send_nowait(result)

        try:
            batch = self._batch(
                requests,
                handles,
                emit=emit,
                timeout=timeout,
                stop=stop,
                hooks=with_results(hooks, unread),
                on_attempts=on_attempts,
                on_left=on_left,
            )
            await batch.preflight()  # an error no job can survive comes out of `async with`
        except BaseException:  # refused before it began (two equal References, bad secret)
            send.close()
            receive.close()
            raise
        stream = _ResultStream(receive)

        async def produce() -> None:
            async with send:
                try:
                    await batch.run()
                except Exception as exc:
                    # Handed to the consumer by the stream, as it is: raised into
                    # the task group it would cancel the block and come out grouped.
                    stream.failed = exc

        left_with: BaseException | None = None
        with receive:
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce)
                try:
                    yield stream
                except BaseException as exc:  # re-raised once the batch has ended
                    left_with = exc
                # Left early: end the batch, naming why (else a no-op).
                batch.cancel_reason = "break" if left_with is None else reason_of(left_with)
                tg.cancel_scope.cancel()
        if left_with is not None:
            raise left_with
        stream.raise_failure()

    def _batch(
        self,
        requests: Sequence[JobRequest] | None,
        handles: Sequence[JobHandle] | None,
        *,
        emit: Callable[[JobResult], Awaitable[None]],
        timeout: float | None,
        stop: StopPolicy | None,
        hooks: Hooks | None,
        on_attempts: Callable[[JobHandle, int], None] | None = None,
        on_left: Callable[[Abandoned], None] | None = None,
    ) -> BatchRun:
        """The one place a batch is built (and checked, before anything starts)."""
        return BatchRun(
            self._parts,
            requests=requests or [],
            handles=handles or [],
            timeout=timeout,
            stop=stop,
            hooks=hooks,
            emit=emit,
            on_attempts=on_attempts,
            on_left=on_left,
        )


def with_results(
    hooks: Hooks | None,
    results: Callable[[], Sequence[JobResult]],
    given: Callable[[], object] | None = None,
) -> Hooks | None:
    """``hooks`` whose ``on_abandoned`` is given ``results()`` too (taken when it is
    called): for :meth:`Dispatcher.run`, which raises instead of returning them
    when the batch ends early, every result the batch gave; for a stream left
    early, those its block did not read (11 jobs ended with their results unread
    were named nowhere: attack h10b). A caller that hears of the jobs left behind
    hears of those that ended before, and no started job is lost. ``given`` is
    called once ``on_abandoned`` returned (not when it raised)."""
    if not isinstance(hooks, Hooks) or hooks.on_abandoned is None:
        return hooks  # (a wrong type is refused by the batch, naming it)
    told = hooks.on_abandoned

    def on_abandoned(abandoned: Abandoned) -> None:
        told(replace(abandoned, results=tuple(sorted(results(), key=_request_order))))
        if given is not None:
            given()

    return replace(hooks, on_abandoned=on_abandoned)


def _request_order(result: JobResult) -> tuple[int, int]:
    return (result.index, result.job_id or 0)


class _ResultStream:
    """The results of :meth:`Dispatcher.stream_results`, then the batch's error if
    it ended with one."""

    def __init__(self, receive: MemoryObjectReceiveStream[JobResult]) -> None:
        self._receive = receive
        self.failed: Exception | None = None

    def __aiter__(self) -> _ResultStream:
        return self

    async def __anext__(self) -> JobResult:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self.raise_failure()
            raise StopAsyncIteration from None

    def raise_failure(self) -> None:
        """Raise what ended the batch, once."""
        failed, self.failed = self.failed, None
        if failed is not None:
            raise failed
