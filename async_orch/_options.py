"""How a batch behaves, as two option objects shared by every batch method
(``run_jobs``, ``stream_jobs``, ``iter_jobs``, ``wait_jobs``):

- :class:`Hooks`: the functions told of a batch's events (progress, a job
  created, a state seen, jobs left behind);
- :class:`StopPolicy`: what to do with the jobs past a deadline, Pending too
  long, or left by a cancelled batch.

Both are checked when built, so a mistake is one clear error before anything
starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal

from async_orch._errors import InvalidRequestError
from async_orch._jobs import Abandoned, JobHandle, Progress, check_seconds
from async_orch._states import JobState

__all__ = [
    "AbandonedCallback",
    "Hooks",
    "ProgressCallback",
    "StartedCallback",
    "StateCallback",
    "StopPolicy",
]

#: The choices of ``StopPolicy.on_suspended``.
SUSPENDED_POLICIES = ("timeout", "report", "wait")

ProgressCallback = Callable[[Progress], None]
"""Called with the counts, overall and per folder, after every change."""
StartedCallback = Callable[[int, JobHandle], None]
"""Called with (request index, handle) as soon as a job is known to exist."""
StateCallback = Callable[[JobHandle, JobState | None, JobState], None]
"""Called with (handle, old state, new state) when a job is seen in a new state;
``old`` is None when its state was not known before (a job re-attached to)."""
AbandonedCallback = Callable[[Abandoned], None]
"""Called once with what a batch that ended early left behind."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Hooks:
    """The functions a batch calls as things happen (each optional).

    They are plain functions, not coroutines: they run in the event loop before
    anything else happens to the job (so a cancellation cannot lose a handle)
    and must return quickly. One that raises ends the batch like a
    cancellation, and its exception comes out of the batch call.

    Attributes:
        on_progress: called with the counts ([`Progress`][async_orch.Progress],
            overall and per folder) after every change.
        on_started: called with (request index, handle) as soon as each job
            exists; persist handles there to wait for them elsewhere. Not called
            for the jobs of ``handles``, which exist already.
        on_state: called with (handle, old state, new state) each time a job is
            seen in a new state, first with the state StartJobs answered (``old``
            is None when it was not known: at start, or for a job of ``handles``
            seen for the first time), last with the final one, before its result.
        on_abandoned: called once if the batch ends early (cancelled, left, a
            callback raised, or an error raised mid-run) with the jobs stopped,
            those left running, those seen ended without a result and the
            References whose start is uncertain, and from ``run_jobs`` the
            results it had (an [`Abandoned`][async_orch.Abandoned]). Without it
            those jobs are logged as the warning ``async_orch.jobs_left_running``.
    """

    on_progress: ProgressCallback | None = None
    on_started: StartedCallback | None = None
    on_state: StateCallback | None = None
    on_abandoned: AbandonedCallback | None = None

    def __post_init__(self) -> None:
        for option in fields(self):
            value = getattr(self, option.name)
            if value is not None and not callable(value):
                raise InvalidRequestError(
                    f"Hooks.{option.name} must be a function or None, got {value!r}"
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class StopPolicy:
    """What a batch does with the jobs it would otherwise leave running.

    Attributes:
        on_timeout: stop a job past a deadline (the batch ``timeout`` or its
            request's own ``timeout``): SoftStop, then Kill after ``grace``
            seconds. False (the default) leaves it running and reports it
            TIMED_OUT with its last known state.
        on_cancel: stop the jobs a batch started if it is cancelled, left early
            or ended by a callback's exception, before that goes on; None (the
            default) follows ``on_timeout``.
        grace: seconds between SoftStop and Kill, and after Kill before giving
            up (the job is then reported timed out, with the last state seen). A
            job seen ended before its deadline is never stopped; it gets this
            long for its outputs to be read.
        pending_timeout: seconds a job may stay Pending (from when the batch
            watches it) before it is reported ``stuck_pending`` (a
            [`StuckPendingError`][async_orch.StuckPendingError]), and stopped if
            ``on_timeout``. None (the default): no such limit. Orchestrator never
            gives up on a Pending job by itself (no runtime, licence or connected
            machine: it waits; orchestrator-api.md section 8).
        on_suspended: what a deadline does to a job Suspended at it (a
            long-running workflow waiting for a person or an event):
            ``"timeout"`` (the default) treats it like any job past its deadline
            (TIMED_OUT, or stopped with ``on_timeout``); ``"report"`` reports it
            SUSPENDED with state Suspended and never stops it; ``"wait"`` lifts
            its deadline and waits until it ends.
    """

    on_timeout: bool = False
    on_cancel: bool | None = None
    grace: float = 30.0
    pending_timeout: float | None = None
    on_suspended: Literal["timeout", "report", "wait"] = "timeout"

    def __post_init__(self) -> None:
        if not isinstance(self.on_timeout, bool):
            raise InvalidRequestError(
                f"StopPolicy.on_timeout must be True or False, got {self.on_timeout!r}"
            )
        if self.on_cancel is not None and not isinstance(self.on_cancel, bool):
            raise InvalidRequestError(
                f"StopPolicy.on_cancel must be True, False or None, got {self.on_cancel!r}"
            )
        check_seconds(self.grace, "StopPolicy.grace", allow_zero=True)
        if self.pending_timeout is not None:
            check_seconds(self.pending_timeout, "StopPolicy.pending_timeout")
        if self.on_suspended not in SUSPENDED_POLICIES:
            raise InvalidRequestError(
                "StopPolicy.on_suspended must be one of "
                f"{', '.join(map(repr, SUSPENDED_POLICIES))}, got {self.on_suspended!r}"
            )

    @property
    def stops_on_cancel(self) -> bool:
        """Whether the jobs of a batch ended early are stopped."""
        return self.on_timeout if self.on_cancel is None else self.on_cancel
