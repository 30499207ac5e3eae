"""One batch of :class:`~async_orch.dispatcher.Dispatcher`: resolve, start, watch
and report every job of it, and leave nothing behind silently if it ends early.

The theory of operation is in ``dispatcher.py``; this module carries it out.
Progress and results are plain bookkeeping, done here from three kinds of
events: a request's jobs exist (from the :class:`~async_orch.starting.Starter`),
a job changes state and a job leaves the watcher (from the
:class:`~async_orch.poller.JobWatcher`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from async_orch.batch import (
    Abandoned,
    JobHandle,
    JobRequest,
    JobResult,
    Outcome,
    Progress,
    check_seconds,
    checked_items,
    checked_requests,
)
from async_orch.cancellation import (
    AbandonedCallback,
    StartShield,
    reason_of,
    report_abandoned,
    reraise,
    run_guarded,
    stop_and_wait,
)
from async_orch.errors import InvalidRequestError, JobLostError, UncertainStartError
from async_orch.logs import get_logger
from async_orch.models import Job, StartStrategy
from async_orch.planner import PollPolicy
from async_orch.poller import Finished, JobWatcher, StateCallback, StopPolicy, WatcherGroup
from async_orch.resources import OrchestratorAPI
from async_orch.starting import Starter, StartFailure, Target, batch_references, resolve_targets
from async_orch.states import JobState

__all__ = ["BatchRun", "Hooks", "ProgressCallback", "StartedCallback"]

log = get_logger("async_orch.batch_run")

ProgressCallback = Callable[[Progress], None]
#: Called with (request index, handle) as soon as a job is known to exist.
StartedCallback = Callable[[int, JobHandle], None]

_QUEUED = "queued"  # progress state of a request not started yet


@dataclass(frozen=True, slots=True, kw_only=True)
class Hooks:
    """The caller's callbacks for one batch (see ``Dispatcher.iter_results``)."""

    on_progress: ProgressCallback | None = None
    on_started: StartedCallback | None = None
    on_state: StateCallback | None = None
    on_abandoned: AbandonedCallback | None = None


@dataclass(slots=True)
class _Tracked:
    """A job started (or re-attached to) and not reported yet."""

    index: int  # of its result
    request: JobRequest
    attempts: int  # StartJobs attempts it took
    handle: JobHandle
    state: JobState | None  # the last state seen


class BatchRun:
    """Start ``requests``, watch them and ``handles``, and hand results to ``emit``."""

    def __init__(
        self,
        api: OrchestratorAPI,
        starter: Starter,
        *,
        requests: Sequence[JobRequest],
        handles: Sequence[JobHandle],
        emit: Callable[[JobResult], Awaitable[None]],
        timeout: float | None,
        stop_policy: StopPolicy | None,
        stop_on_cancel: bool | None,
        poll: PollPolicy,
        watchers: WatcherGroup | None = None,
        clock: Callable[[], float],
        hooks: Hooks,
    ) -> None:
        self._api = api
        self._starter = starter
        self._requests = checked_requests(requests)  # all or nothing
        self._handles = checked_items(handles, JobHandle, "handles")
        self._references = batch_references(self._requests)
        _check_handles(self._handles)
        if timeout is not None:
            check_seconds(timeout, "timeout")
        self._emit = emit
        self._stop_policy = stop_policy or StopPolicy()
        self._stop_on_cancel = self._stop_policy.stop if stop_on_cancel is None else stop_on_cancel
        self._poll = poll
        self._clock = clock
        self._deadline = clock() + timeout if timeout is not None else None
        self._hooks = hooks
        self.progress = Progress(
            total=sum(_expected_jobs(r) for r in self._requests) + len(self._handles)
        )
        self._jobs: dict[int, _Tracked] = {}
        # Jobs whose id the server gave to another job of the batch since: they
        # can no longer be followed, and are reported as lost (see _track).
        self._displaced: list[tuple[_Tracked, JobLostError]] = []
        self._shield = StartShield()
        self._retries = starter.batch_retries(len(self._requests))
        self._watcher = JobWatcher(
            api,
            policy=poll,
            stop_policy=self._stop_policy,
            clock=clock,
            on_state=self._on_state,
            group=watchers,
        )

    async def run(self) -> None:
        """Run the batch; on any abnormal end, stop or report the jobs left
        running (``dispatcher.py``'s docstring), then re-raise."""

        async def start_and_watch() -> None:
            async with anyio.create_task_group() as tg:
                for position, handle in enumerate(self._handles, start=len(self._requests)):
                    self._adopt(position, handle)
                self._report()
                await self._report_displaced()
                tg.start_soon(self._start_all)
                await self._watcher.run(self._finished)

        try:
            await run_guarded(start_and_watch, self._shield)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._abandon(reason=reason_of(exc))
            reraise(exc)

    # -- starting ------------------------------------------------------------------

    async def _start_all(self) -> None:
        try:
            if not self._requests:
                return
            targets = await resolve_targets(self._api, self._requests)
            for request, target in zip(self._requests, targets, strict=True):
                self.progress.move(_label(request, target), None, _QUEUED, _expected_jobs(request))
            self._report()
            async with anyio.create_task_group() as tg:
                for index, target in enumerate(targets):
                    tg.start_soon(self._start, index, target)
                    if index % 100 == 99:
                        # Spawning thousands of tasks in one step stalls the loop
                        # (~350 ms for 5,000): every 100, let other tasks run.
                        await anyio.lowlevel.checkpoint()
        finally:
            self._watcher.close()

    async def _start(self, index: int, target: Target) -> None:
        request = self._requests[index]
        label = _label(request, target)
        expected = _expected_jobs(request)

        def on_jobs(pairs: list[tuple[JobHandle, Job]], attempts: int) -> None:
            # Runs inside the StartJobs shield, before any other await, so a
            # cancellation cannot lose these jobs.
            self.progress.forget(label, _QUEUED, expected)
            self.progress.total += len(pairs) - expected
            for handle, job in pairs:
                self._track(_Tracked(index, request, attempts, handle, job.state))
                self.progress.move(handle.folder_path, None, job.state.value)
                self._watcher.watch(
                    handle, timeout=request.timeout, deadline=self._deadline, state=job.state
                )
            if self._hooks.on_started is not None:
                for handle, _ in pairs:
                    self._hooks.on_started(index, handle)
            if self._hooks.on_state is not None:
                # The first state seen is the one StartJobs answered (Pending, as a rule).
                for handle, job in pairs:
                    self._hooks.on_state(handle, None, job.state)
            self._report()

        try:
            started = await self._starter.start(
                index,
                request,
                self._references[index],
                target,
                shield=self._shield,
                on_jobs=on_jobs,
                deadline=self._deadline,
                retries=self._retries,
            )
        finally:
            await self._report_displaced()
        if isinstance(started, StartFailure):
            outcome = (
                Outcome.UNCERTAIN
                if isinstance(started.error, UncertainStartError)
                else Outcome.NOT_STARTED
            )
            self.progress.move(label, _QUEUED, outcome.value, expected)
            self._report()
            for _ in range(expected):
                await self._emit(
                    JobResult(
                        index=index,
                        request=request,
                        outcome=outcome,
                        error=started.error,
                        attempts=started.attempts,
                        detected=datetime.now(UTC),
                    )
                )

    def _adopt(self, position: int, handle: JobHandle) -> None:
        """Watch a job started earlier (wait-only)."""
        self._track(_Tracked(position, _request_of(handle), 0, handle, None))
        self.progress.move(handle.folder_path, None, JobState.PENDING.value)
        self._watcher.watch(handle, deadline=self._deadline)

    def _track(self, tracked: _Tracked) -> None:
        """Take a job into the batch. If another job of the batch has its id, the
        server gave that id out twice (it restarted and forgot the first job): the
        latest answer is the server's truth, so the newcomer is watched and the
        earlier job is reported lost (by :meth:`_report_displaced`)."""
        handle = tracked.handle
        earlier = self._jobs.pop(handle.job_id, None)
        if earlier is not None:
            self._watcher.forget(handle.job_id)
            error = JobLostError(
                f"job {handle.job_id} (Reference {earlier.handle.reference!r}) is lost: the "
                f"server gave its id to another job (Reference {handle.reference!r}) since, "
                "so it may have restarted and forgotten it; its outcome is unknown. Look for "
                "it by Reference in Orchestrator before starting it again.",
                job_id=handle.job_id,
                reference=earlier.handle.reference,
            )
            log.warning("async_orch.job_id_reused", job_id=handle.job_id)
            self._displaced.append((earlier, error))
            state = (earlier.state or JobState.PENDING).value
            self.progress.move(earlier.handle.folder_path, state, Outcome.UNKNOWN.value)
        self._jobs[handle.job_id] = tracked

    async def _report_displaced(self) -> None:
        while self._displaced:
            tracked, error = self._displaced.pop(0)
            self._report()
            await self._emit(
                JobResult(
                    index=tracked.index,
                    request=tracked.request,
                    outcome=Outcome.UNKNOWN,
                    handle=tracked.handle,
                    error=error,
                    attempts=tracked.attempts,
                    detected=datetime.now(UTC),
                    last_state=tracked.state,
                )
            )

    # -- watching --------------------------------------------------------------------

    def _on_state(self, handle: JobHandle, _old: JobState | None, new: JobState) -> None:
        # The old state comes from our own record: the watcher that stops jobs
        # after a cancellation never saw their earlier states.
        tracked = self._jobs[handle.job_id]
        old, tracked.state = tracked.state, new
        if old is new:
            return
        self.progress.move(handle.folder_path, (old or JobState.PENDING).value, new.value)
        self._report()
        if self._hooks.on_state is not None:
            self._hooks.on_state(handle, old, new)

    async def _finished(self, item: Finished) -> None:
        tracked = self._jobs.pop(item.handle.job_id)
        result = _result_of(tracked, item)
        last = item.state.value if item.state else JobState.PENDING.value
        self.progress.move(item.handle.folder_path, last, result.outcome.value)
        self._report()
        await self._emit(result)

    def _report(self) -> None:
        if self._hooks.on_progress is not None:
            self._hooks.on_progress(self.progress)

    # -- ending early ------------------------------------------------------------------

    async def _abandon(self, *, reason: str) -> None:
        """The batch ends early: stop what it started if asked, report what is left."""
        live = [tracked.handle for tracked in self._jobs.values()]
        stopped: list[JobHandle] = []
        if live and self._stop_on_cancel:
            log.info("async_orch.jobs_stopping_on_cancel", count=len(live), reason=reason)
            left = await stop_and_wait(
                self._api,
                live,
                grace=self._stop_policy.grace,
                poll=self._poll,
                clock=self._clock,
                on_state=self._on_state_while_ending,
            )
            still = {h.job_id for h in left}
            stopped = [h for h in live if h.job_id not in still]
            log.info("async_orch.jobs_stopped", count=len(stopped))
            live = left
            self._count_ended(stopped)
        abandoned = Abandoned(
            reason=reason,
            stopped=tuple(stopped),
            left_running=tuple(live),
            uncertain_references=tuple(self._shield.uncertain),
        )
        report_abandoned(abandoned, self._hooks.on_abandoned)

    def _count_ended(self, handles: list[JobHandle]) -> None:
        """Progress counts jobs that ended while the batch was ending under their
        outcome (no result is emitted for them; ``Abandoned.stopped`` lists them)."""
        for handle in handles:
            state = self._jobs[handle.job_id].state
            if state is not None and (outcome := Outcome.of_final(state)) is not None:
                self.progress.move(handle.folder_path, state.value, outcome.value)
        try:
            self._report()
        except Exception as exc:  # as in _on_state_while_ending
            log.warning("async_orch.callback_failed", callback="on_progress", error=repr(exc))

    def _on_state_while_ending(
        self, handle: JobHandle, old: JobState | None, new: JobState
    ) -> None:
        # A callback failing now must not stop the stopping, nor replace the
        # cancellation (or error) that is ending the batch: it is logged instead.
        try:
            self._on_state(handle, old, new)
        except Exception as exc:
            log.warning(
                "async_orch.callback_failed",
                callback="on_state",
                job_id=handle.job_id,
                error=repr(exc),
            )


# -- pure helpers ---------------------------------------------------------------------


def _check_handles(handles: Sequence[JobHandle]) -> None:
    """Refuse a job given twice. Two handles with one id but another Key or
    Reference are two jobs a forgetful server gave the same id: both are taken
    (the later one is watched, the earlier reported lost; see BatchRun._track)."""
    seen: dict[tuple[int, str | None, str | None], int] = {}
    for position, handle in enumerate(handles):
        identity = (handle.job_id, handle.job_key, handle.reference)
        if identity in seen:
            raise InvalidRequestError(
                f"handles {seen[identity]} and {position} are the same job "
                f"({handle.job_id}); give each job once"
            )
        seen[identity] = position


def _expected_jobs(request: JobRequest) -> int:
    """How many jobs a request should create (the results it will give)."""
    if request.strategy == StartStrategy.SPECIFIC.value and request.robot_ids:
        return len(request.robot_ids)
    return max(1, request.jobs_count)


def _label(request: JobRequest, target: Target) -> str:
    """The progress label of a request's folder: its full path once resolved."""
    if isinstance(target, tuple):
        return target[0].fully_qualified_name
    return str(request.folder)


def _request_of(handle: JobHandle) -> JobRequest:
    """A stand-in request for a job we only watch (started elsewhere)."""
    return JobRequest(
        process="", folder=handle.folder_path or handle.folder_id, reference=handle.reference
    )


def _result_of(tracked: _Tracked, item: Finished) -> JobResult:
    state = item.job.state if item.job is not None else item.state
    if item.timed_out:
        outcome = Outcome.STOPPED if state is JobState.STOPPED else Outcome.TIMED_OUT
    elif item.job is None:
        outcome = Outcome.UNKNOWN
    else:
        outcome = Outcome.of_final(item.job.state) or Outcome.UNKNOWN
    return JobResult(
        index=tracked.index,
        request=tracked.request,
        outcome=outcome,
        handle=item.handle,
        job=item.job,
        error=item.error,
        attempts=tracked.attempts,
        detected=item.detected,
        timed_out=item.timed_out or item.stop_sent is not None,
        last_state=item.state,
        stop_sent=item.stop_sent,
    )
