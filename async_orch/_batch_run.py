"""One batch of :class:`~async_orch._dispatcher.Dispatcher`: resolve, start, watch
and report every job of it, and leave nothing behind silently if it ends early.

The theory of operation is in ``dispatcher.py``; this module carries it out.
Progress and results are plain bookkeeping, done here from three kinds of
events: a request's jobs exist (from the :class:`~async_orch._starting.Starter`),
a job changes state and a job leaves the watcher (from the
:class:`~async_orch._poller.JobWatcher`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import anyio

from async_orch._cancellation import (
    StartShield,
    reason_of,
    report_abandoned,
    reraise,
    run_guarded,
    stop_and_wait,
)
from async_orch._errors import (
    InvalidRequestError,
    JobLostError,
    StuckPendingError,
    UncertainStartError,
)
from async_orch._fatal import fatal_error, probe_handles
from async_orch._jobs import (
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
from async_orch._logs import get_logger
from async_orch._models import StartStrategy
from async_orch._options import Hooks, StopPolicy
from async_orch._planner import PollPolicy
from async_orch._poller import Finished, JobWatcher, WatcherGroup
from async_orch._records import record_builder
from async_orch._seams import JobsAPI
from async_orch._start_pool import StartPool
from async_orch._starting import (
    CreatedPairs,
    Starter,
    StartFailure,
    Target,
    batch_references,
    resolve_targets,
)
from async_orch._states import JobState

__all__ = ["BatchParts", "BatchRun"]

log = get_logger("async_orch.batch_run")

_QUEUED = "queued"  # progress state of a request not started yet


@dataclass(frozen=True, slots=True)
class BatchParts:
    """What every batch of one dispatcher shares: its API, starter, start pool,
    poll policy, watcher group (one list budget) and clock."""

    api: JobsAPI
    starter: Starter
    pool: StartPool
    poll: PollPolicy
    watchers: WatcherGroup
    clock: Callable[[], float]


@dataclass(slots=True)
class _Tracked:
    """A job started (or re-attached to) and not reported yet."""

    index: int  # of its result
    request: JobRequest | None  # None for a job given by handle
    attempts: int  # StartJobs attempts it took
    handle: JobHandle
    state: JobState | None  # the last state seen


class BatchRun:
    """Start ``requests``, watch them and ``handles``, and hand results to ``emit``."""

    def __init__(
        self,
        parts: BatchParts,
        *,
        requests: Sequence[JobRequest],
        handles: Sequence[JobHandle],
        timeout: float | None,
        stop: StopPolicy | None,
        hooks: Hooks | None,
        emit: Callable[[JobResult], Awaitable[None]],
        on_attempts: Callable[[JobHandle, int], None] | None = None,
        on_left: Callable[[Abandoned], None] | None = None,
    ) -> None:
        # Every argument is checked here, before anything starts: all or nothing.
        self._requests = checked_requests(requests)
        self._handles = checked_items(handles, JobHandle, "handles")
        self._references = batch_references(self._requests)
        _check_handles(self._handles)
        if timeout is not None:
            check_seconds(timeout, "timeout")
        self._stop_policy = _checked_option(stop, StopPolicy, "stop", "StopPolicy(on_timeout=True)")
        self._hooks = _checked_option(hooks, Hooks, "hooks", "Hooks(on_progress=print)")
        self._api = parts.api
        self._starter = parts.starter
        self._pool = parts.pool
        self._poll = parts.poll
        self._clock = parts.clock
        self._emit = emit
        # Told the StartJobs attempts of each job as it exists, before on_started
        # (a journal keeps them, for jobs it reports without seeing them end).
        self._on_attempts = on_attempts
        # Told what an early end left behind once no StartJobs of the batch can be in
        # flight, before hooks.on_abandoned (a journal records the starts in doubt).
        self._on_left = on_left
        self._timeout = timeout
        self._deadline = self._clock() + timeout if timeout is not None else None
        # Each request's expected jobs, counted once (read three times a request).
        self._expected = [_expected_jobs(r) for r in self._requests]
        self.progress = Progress(total=sum(self._expected) + len(self._handles))
        self._targets: list[Target] | None = None  # set by preflight()
        self._jobs: dict[int, _Tracked] = {}
        # Jobs whose id the server gave to another job of the batch since: they
        # can no longer be followed, and are reported as lost (see _track).
        self._displaced: list[tuple[_Tracked, JobLostError]] = []
        self._shield = StartShield()
        #: Why the batch is being cancelled from outside, when the caller knows
        #: better than "CancelledError" (a ``stream_jobs`` block left early).
        self.cancel_reason: str | None = None
        self._hook_failed = False  # a caller's hook raised: the batch is ending on it
        self._retries = self._starter.batch_retries(len(self._requests))
        self._watcher = JobWatcher(
            self._api,
            policy=self._poll,
            stop_policy=self._stop_policy,
            clock=self._clock,
            on_state=self._on_state,
            group=parts.watchers,
        )

    async def preflight(self) -> None:
        """Look every folder and process up (or, waiting only, read the first job),
        before anything is started or reported.

        Raises:
            RequestError: one that no job of the batch can survive (``_fatal.py``):
                credentials refused, host unreachable, unknown tenant, a scope missing.
        """
        if self._targets is not None:
            return
        targets = await resolve_targets(self._api, self._requests) if self._requests else []
        if (fatal := fatal_error(targets)) is not None:
            raise fatal
        if not self._requests:
            await probe_handles(self._api, self._handles)
        self._targets = targets

    async def run(self) -> None:
        """Run the batch; on any abnormal end, stop or report the jobs left
        running (``dispatcher.py``'s docstring), then re-raise."""
        await self.preflight()

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
            reason = reason_of(exc)
            if self.cancel_reason is not None and isinstance(exc, anyio.get_cancelled_exc_class()):
                reason = self.cancel_reason
            with anyio.CancelScope(shield=True):
                await self._abandon(reason=reason)
            reraise(exc)

    # -- starting ------------------------------------------------------------------

    async def _start_all(self) -> None:
        try:
            if not self._requests:
                return
            targets = self._targets or []
            queued: Counter[str] = Counter()
            for index, (request, target) in enumerate(zip(self._requests, targets, strict=True)):
                queued[_label(request, target)] += self._expected[index]
            for label, count in queued.items():
                self.progress.move(label, None, _QUEUED, count)
            self._report()

            async def start(index: int, step_aside: Callable[[], None]) -> None:
                await self._start(index, targets[index], step_aside)

            await self._pool.start_every(targets, start)
        finally:
            self._watcher.close()

    async def _start(self, index: int, target: Target, step_aside: Callable[[], None]) -> None:
        request = self._requests[index]
        label = _label(request, target)
        expected = self._expected[index]

        def on_jobs(pairs: CreatedPairs, attempts: int) -> None:
            # Runs inside the StartJobs shield, before any other await, so a
            # cancellation cannot lose these jobs.
            self.progress.forget(label, _QUEUED, expected)
            self.progress.total += len(pairs) - expected
            for handle, job in pairs:
                self._track(_Tracked(index, request, attempts, handle, job.state))
                # _value_: the member's text without Enum.value's two Python calls.
                self.progress.move(handle.folder_path, None, job.state._value_)
                self.progress.note_pending(  # (the age of Pending jobs, for displays)
                    handle.folder_path, handle.job_id, job.state is JobState.PENDING, self._clock()
                )
                self._watcher.watch(
                    handle, timeout=request.timeout, deadline=self._deadline, state=job.state
                )
            # (Each hook tested once here: most batches have none.)
            if self._on_attempts is not None or self._hooks.on_started is not None:
                for handle, _ in pairs:
                    if self._on_attempts is not None:
                        self._on_attempts(handle, attempts)
                    self._call_hook("on_started", index, handle)
            if self._hooks.on_state is not None:
                # The first state seen is the one StartJobs answered (Pending, as a rule).
                for handle, job in pairs:
                    self._call_hook("on_state", handle, None, job.state)
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
                on_window=step_aside,
                inputs_json=self._requests.inputs_json[index],
                checked=True,
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
        self._track(_Tracked(position, None, 0, handle, None))
        self.progress.move(handle.folder_path, None, JobState.PENDING.value)
        self.progress.note_pending(handle.folder_path, handle.job_id, True, self._clock())
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
            result = JobResult(
                index=tracked.index,
                request=tracked.request,
                outcome=Outcome.UNKNOWN,
                handle=tracked.handle,
                error=error,
                attempts=tracked.attempts,
                detected=datetime.now(UTC),
                last_state=tracked.state,
            )
            await self._report_then_emit(result)

    # -- watching --------------------------------------------------------------------

    def _on_state(self, handle: JobHandle, _old: JobState | None, new: JobState) -> None:
        # The old state comes from our own record: the watcher that stops jobs
        # after a cancellation never saw their earlier states.
        tracked = self._jobs[handle.job_id]
        old, tracked.state = tracked.state, new
        if old is new:
            return
        # Every change of every job comes here: the text of each state as _value_
        # (Enum.value is two Python calls), and _report inlined.
        progress = self.progress
        progress.move(handle.folder_path, (old or JobState.PENDING)._value_, new._value_)
        progress.note_pending(
            handle.folder_path, handle.job_id, new is JobState.PENDING, self._clock()
        )
        if self._hooks.on_progress is not None:
            self._call_hook("on_progress", progress)
        if self._hooks.on_state is not None:
            self._call_hook("on_state", handle, old, new)

    async def _finished(self, item: Finished) -> None:
        tracked = self._jobs.pop(item.handle.job_id)
        result = _result_of(tracked, item, batch_timeout=self._timeout)
        last = (item.state or JobState.PENDING)._value_  # (as in _on_state)
        progress = self.progress
        progress.move(item.handle.folder_path, last, result.outcome._value_)
        progress.note_pending(item.handle.folder_path, item.handle.job_id, False, self._clock())
        await self._report_then_emit(result)

    async def _report_then_emit(self, result: JobResult) -> None:
        """Report progress, then hand ``result`` on, even if ``on_progress`` raises:
        its job has left ``_jobs``, so a result lost with that error named the job
        nowhere (not in the results, nor in ``Abandoned``: attack h10b)."""
        try:
            self._report()
        finally:
            await self._emit(result)

    def _report(self) -> None:
        if self._hooks.on_progress is not None:  # (a call saved at every change)
            self._call_hook("on_progress", self.progress)

    def _call_hook(self, name: str, *args: object) -> None:
        """Call the caller's hook ``name``, if given. The first to raise ends the
        batch and comes out of it as it is; one raising after it (another start,
        or the watcher, met the same broken hook before the batch could end) is
        logged, else they would all come out together in an exception group."""
        hook = getattr(self._hooks, name)
        if hook is None:
            return
        try:
            hook(*args)
        except Exception as exc:
            if not self._hook_failed:
                self._hook_failed = True
                raise
            log.warning("async_orch.callback_failed", callback=name, error=repr(exc))

    # -- ending early ------------------------------------------------------------------

    async def _abandon(self, *, reason: str) -> None:
        """The batch ends early: stop what it started if asked, report what is left."""
        # A job seen ended (its outputs were being read) is neither stopped nor left
        # running: a SoftStop to it, and "left running", were wrong (attack h9). It
        # is reported as ended: every started job without a result is named.
        ended: list[JobHandle] = []
        live: list[JobHandle] = []
        for tracked in self._jobs.values():
            seen_ended = tracked.state is not None and tracked.state.is_terminal
            (ended if seen_ended else live).append(tracked.handle)
        if ended:
            self._count_ended(ended)
        stopped: list[JobHandle] = []
        stop_sent: dict[int, str] = {}
        try:
            if live and self._stop_policy.stops_on_cancel:
                log.info("async_orch.jobs_stopping_on_cancel", count=len(live), reason=reason)
                left, stop_sent = await stop_and_wait(
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
        finally:
            # Reported even if the stop is cut short (then its jobs are left running):
            # asyncio's task.cancel() goes through the caller's shield, and a second
            # cancel while stopping left every job named nowhere (attack h10b).
            abandoned = Abandoned(
                reason=reason,
                stopped=tuple(stopped),
                left_running=tuple(live),
                uncertain_references=tuple(self._shield.uncertain),
                stop_sent=stop_sent,
                ended=tuple(ended),
            )
            if self._on_left is not None:
                try:
                    self._on_left(abandoned)
                except Exception as exc:  # the batch is ending already: said, not raised
                    log.warning("async_orch.callback_failed", callback="on_left", error=repr(exc))
            report_abandoned(abandoned, self._hooks.on_abandoned)

    def _count_ended(self, handles: list[JobHandle]) -> None:
        """Progress counts jobs that ended while the batch was ending under their
        outcome (no result is emitted for them; ``Abandoned.stopped`` lists those
        stopped, and those seen ended before are in neither list)."""
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


_Option = TypeVar("_Option", StopPolicy, Hooks)


def _checked_option(value: _Option | None, kind: type[_Option], name: str, example: str) -> _Option:
    """``value``, or the default ``kind()`` for None; refused unless it is a ``kind``."""
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InvalidRequestError(
            f"{name} must be a {kind.__name__} (e.g. {name}={example}), got {value!r}"
        )
    return value


def _expected_jobs(request: JobRequest) -> int:
    """How many jobs a request should create (the results it will give)."""
    if request.strategy is StartStrategy.SPECIFIC and request.robot_ids:
        return len(request.robot_ids)
    return max(1, request.jobs_count)


def _label(request: JobRequest, target: Target) -> str:
    """The progress label of a request's folder: its full path once resolved."""
    if isinstance(target, tuple):
        return target[0].fully_qualified_name
    return str(request.folder)


def timed_out_note(
    state: JobState | None, *, job_timeout: float | None, batch_timeout: float | None
) -> str:
    """Why a job was reported without ending: the limit that passed, its last state."""
    seen = f"still {state.value}" if state is not None else "not seen to end"
    return f"{seen} when {_limit_text(job_timeout, batch_timeout)} passed; it may still run"


def suspended_note(*, job_timeout: float | None, batch_timeout: float | None) -> str:
    """Why a job was reported suspended (on_suspended="report"), as for timed_out."""
    return (
        f"still Suspended when {_limit_text(job_timeout, batch_timeout)} passed; left "
        "suspended, not stopped, as on_suspended asks: it may still resume and run"
    )


def _limit_text(job_timeout: float | None, batch_timeout: float | None) -> str:
    if job_timeout is not None and batch_timeout is not None:
        return f"its deadline (job timeout {job_timeout:g} s, batch timeout {batch_timeout:g} s)"
    if job_timeout is not None:
        return f"the job timeout ({job_timeout:g} s)"
    if batch_timeout is not None:
        return f"the batch timeout ({batch_timeout:g} s)"
    return "its deadline"


def _result_of(tracked: _Tracked, item: Finished, *, batch_timeout: float | None) -> JobResult:
    state = item.job.state if item.job is not None else item.state
    error = item.error
    note = None
    if item.stuck_pending_for is not None and state not in (
        JobState.SUCCESSFUL,
        JobState.FAULTED,
    ):
        # Picked up by nobody in time (a job that ran and ended meanwhile keeps its outcome).
        outcome = Outcome.STUCK_PENDING
        error = error or StuckPendingError(
            job_id=item.handle.job_id,
            folder=item.handle.folder_path or str(item.handle.folder_id),
            seconds=item.stuck_pending_for,
            stopped=state is JobState.STOPPED,
        )
    elif item.suspended:
        outcome = Outcome.SUSPENDED  # left suspended at its deadline (on_suspended="report")
        job_timeout = tracked.request.timeout if tracked.request else None
        note = suspended_note(job_timeout=job_timeout, batch_timeout=batch_timeout)
    elif item.timed_out:
        outcome = Outcome.STOPPED if state is JobState.STOPPED else Outcome.TIMED_OUT
        if outcome is Outcome.TIMED_OUT:
            job_timeout = tracked.request.timeout if tracked.request else None
            note = timed_out_note(item.state, job_timeout=job_timeout, batch_timeout=batch_timeout)
    elif item.job is None:
        outcome = Outcome.UNKNOWN
    else:
        outcome = Outcome.of_final(item.job.state) or Outcome.UNKNOWN
    return _build_result(  # one a job: _records
        index=tracked.index,
        request=tracked.request,
        outcome=outcome,
        handle=item.handle,
        job=item.job,
        error=error,
        attempts=tracked.attempts,
        detected=item.detected,
        timed_out=item.timed_out or item.stop_sent is not None,
        last_state=item.state,
        stop_sent=item.stop_sent,
        note=note,
    )


_build_result = record_builder(JobResult)
