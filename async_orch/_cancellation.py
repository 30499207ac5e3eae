"""What a batch does when it ends early, so no job is left behind silently.

- :class:`StartShield` protects StartJobs calls from cancellation, so their
  outcome (the jobs they created) is known; once the batch is abandoned they
  get at most :data:`ABANDON_START_WAIT` more seconds, after which their
  References are reported as uncertain.
- :func:`run_guarded` runs the starting work and abandons the shield the
  moment that work is cancelled or fails.
- :func:`stop_and_wait` stops the jobs a batch started (SoftStop, then Kill).
- :func:`report_abandoned` hands what is left to the caller's ``on_abandoned``,
  else logs it as the warning ``async_orch.jobs_left_running``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import NoReturn

import anyio

from async_orch._errors import ClientClosedError, OrchestratorError, RequestError
from async_orch._jobs import Abandoned, JobHandle, JobResult
from async_orch._logs import get_logger
from async_orch._options import AbandonedCallback, StateCallback, StopPolicy
from async_orch._planner import PollPolicy
from async_orch._poller import Finished, JobWatcher
from async_orch._seams import JobsAPI

__all__ = [
    "ABANDON_START_WAIT",
    "StartShield",
    "reason_of",
    "report_abandoned",
    "reraise",
    "run_guarded",
    "stop_and_wait",
]

log = get_logger("async_orch.cancellation")

#: Seconds a StartJobs call in flight may still take once its batch is cancelled.
#: Long enough for a normal answer; past it, its Reference is reported as uncertain.
ABANDON_START_WAIT = 10.0

_STOP_SLACK = 10.0  # seconds of polling allowed after the stop grace periods


class StartShield:
    """Protects StartJobs calls from cancellation (module docstring)."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._deadline: float | None = None
        self.uncertain: list[str] = []  # References of calls cut off after the wait
        # The running backend's CancelScope class, learnt from the first scope:
        # ``anyio.CancelScope(...)`` looks the backend up on every call, which
        # costs more than the scope itself (one a StartJobs).
        self._scope_class: type[anyio.CancelScope] | None = None

    def new_scope(self) -> anyio.CancelScope:
        """A shielded cancel scope, made from the backend's class once it is known."""
        if self._scope_class is None:
            scope = anyio.CancelScope(shield=True)
            self._scope_class = type(scope)
            return scope
        return self._scope_class(shield=True)

    def protect(self) -> _Protected:
        """A context manager: a shielded cancel scope around one StartJobs call,
        given at most the abandon deadline (a class, not a generator: one a start)."""
        return _Protected(self)

    def abandon(self) -> None:
        """From now on, calls in flight (and new ones) have ``ABANDON_START_WAIT`` left."""
        if self._deadline is None:
            self._deadline = anyio.current_time() + ABANDON_START_WAIT
        for scope in self._scopes:
            scope.deadline = min(scope.deadline, self._deadline)


class _Protected:
    """:meth:`StartShield.protect`'s context manager; it gives the scope."""

    __slots__ = ("_scope", "_shield")

    def __init__(self, shield: StartShield) -> None:
        self._shield = shield
        self._scope = shield.new_scope()

    def __enter__(self) -> anyio.CancelScope:
        scope, shield = self._scope, self._shield
        if shield._deadline is not None:
            scope.deadline = shield._deadline
        shield._scopes.add(scope)
        try:
            return scope.__enter__()
        except BaseException:
            shield._scopes.discard(scope)
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> bool:
        try:
            return bool(self._scope.__exit__(kind, error, trace))
        finally:
            self._shield._scopes.discard(self._scope)


async def run_guarded(work: Callable[[], Awaitable[None]], shield: StartShield) -> None:
    """Run ``work``; if it is cancelled or fails, abandon ``shield`` at once."""
    done = anyio.Event()

    async def run_work() -> None:
        try:
            await work()
        finally:
            done.set()

    # ``work`` runs in a task of its own so that this task, which only waits,
    # hears of a cancellation at once even while ``work`` sits in a shield.
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_work)
        try:
            await done.wait()
        except BaseException:
            shield.abandon()
            raise


async def stop_and_wait(
    api: JobsAPI,
    handles: Sequence[JobHandle],
    *,
    grace: float,
    poll: PollPolicy,
    clock: Callable[[], float] = time.monotonic,
    on_state: StateCallback | None = None,
) -> tuple[list[JobHandle], dict[int, str]]:
    """SoftStop ``handles`` now, Kill those still running after ``grace``; return
    the jobs not seen ended once that is over (or after a bounded wait), and the
    last stop sent to each job (by id; SoftStop or Kill).

    The escalation is the one of every deadline (``_deadlines.Deadlines``), run by
    a watcher whose jobs are all due now."""
    stop_now = StopPolicy(on_timeout=True, grace=grace)
    watcher = JobWatcher(
        api, policy=poll, stop_policy=stop_now, clock=clock, on_state=on_state, read_outputs=False
    )
    now = clock()
    for handle in handles:
        watcher.watch(handle, deadline=now)
    watcher.close()
    ended: set[int] = set()
    stop_sent: dict[int, str] = {}

    async def on_finished(item: Finished) -> None:
        if item.stop_sent is not None:
            stop_sent[item.handle.job_id] = item.stop_sent
        if item.state is not None and item.state.is_terminal:
            ended.add(item.handle.job_id)

    with anyio.move_on_after(2 * grace + _STOP_SLACK):
        try:
            await watcher.run(on_finished)
        except* RequestError as failed:
            # The token or the folders refused (3 in a row): the jobs not seen ended
            # are reported left running. Raised, it replaced what ends the batch (a
            # cancelled run_jobs raised an ExceptionGroup, not CancelledError: h10b).
            log.warning("async_orch.stop_wait_failed", error=str(failed.exceptions[0]))
    for handle in handles:  # still watched when the wait ran out
        if (sent := watcher.stop_sent(handle.job_id)) is not None:
            stop_sent[handle.job_id] = sent
    return [h for h in handles if h.job_id not in ended], stop_sent


def report_abandoned(abandoned: Abandoned, on_abandoned: AbandonedCallback | None) -> None:
    """Give ``abandoned`` to the caller, and log it as ``async_orch.jobs_left_running``:
    a warning, or only info when the caller took the report.

    The batch is ending already (cancelled, or failed): a failing callback is
    logged, not raised, so that what ends the batch still comes out of it.
    """
    reported = False
    if on_abandoned is not None:
        try:
            on_abandoned(abandoned)
            reported = True
        except Exception as exc:
            log.warning("async_orch.callback_failed", callback="on_abandoned", error=repr(exc))
    if abandoned.left_running or abandoned.uncertain_references or abandoned.ended:
        emit = log.info if reported else log.warning
        emit(
            "async_orch.jobs_left_running",
            reason=abandoned.reason,
            count=len(abandoned.left_running),
            job_ids=[h.job_id for h in abandoned.left_running],
            references=[h.reference for h in abandoned.left_running],
            uncertain_references=list(abandoned.uncertain_references),
            # Seen ended, no result given: named too, so no started job goes unsaid.
            ended_job_ids=[h.job_id for h in abandoned.ended],
            hint="these jobs were started and may still be running; wait for them with "
            "wait_jobs(handles) or stop them in Orchestrator (uncertain_references: a "
            "StartJobs whose answer never came; look these References up)",
        )


_NOT_RETURNED = "their results are not returned"


def report_unreturned_results(exc: BaseException, results: Sequence[JobResult]) -> None:
    """A batch that would have returned ``results`` raises ``exc`` instead, and its
    caller gave no ``on_abandoned`` to take them (:class:`Abandoned`'s ``results``):
    say so, in a warning naming the jobs and on ``exc`` itself (a note, shown
    with its traceback), so that no ended job goes unsaid."""
    counts = Counter(r.outcome.value for r in results)
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    hint = "pass hooks=Hooks(on_abandoned=...) to receive them as Abandoned.results"
    log.warning(
        "async_orch.results_not_returned",
        reason=reason_of(exc),
        count=len(results),
        by_outcome=dict(counts),
        job_ids=[r.job_id for r in results],
        hint=hint,
    )
    # Not on a cancellation (the caller's own), nor twice on one error: a token
    # refused ends every batch of the client with the same exception object.
    said = any(_NOT_RETURNED in note for note in getattr(exc, "__notes__", ()))
    if isinstance(exc, Exception) and not said:
        exc.add_note(
            f"{len(results)} job(s) of the batch had ended before this error "
            f"({outcomes}); {_NOT_RETURNED}: {hint}"
        )


def reason_of(exc: BaseException) -> str:
    """The name of what ended a batch, seen through single-member exception groups."""
    return type(_sole(exc)).__name__


def reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc``, or the one exception a task group wrapped it into, so callers
    see a callback's ``ValueError`` rather than an ExceptionGroup of one. A group
    of nothing but ClientClosedError (the client closed under calls in flight:
    each fails alike) is raised as its first one."""
    inner = _sole(exc)
    if inner is not exc:
        inner.__suppress_context__ = True  # its own __cause__ is still shown
    raise inner


def _sole(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups, or the
    first of a group of ClientClosedError only, or of one async-orch error type
    only (a fatal error met by several tasks at once: a token refused under
    concurrent calls is one failure, not a group), else ``exc``."""
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
            continue
        _closed, rest = exc.split(ClientClosedError)
        if rest is not None:
            first = _first_leaf(rest)
            if not isinstance(first, OrchestratorError) or not _all_of(rest, type(first)):
                break
            return first
        exc = exc.exceptions[0]
    return exc


def _all_of(group: BaseExceptionGroup[BaseException], kind: type[BaseException]) -> bool:
    """Whether every exception in (nested) ``group`` is exactly of type ``kind``."""
    return all(
        _all_of(exc, kind) if isinstance(exc, BaseExceptionGroup) else type(exc) is kind
        for exc in group.exceptions
    )


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception of ``group`` that is not itself a group."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
