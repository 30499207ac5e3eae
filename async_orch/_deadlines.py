"""Deadline escalation as a pure state machine: SoftStop, then Kill, then give up.

No I/O, no clock reads: time comes in as an argument, and :meth:`Deadlines.step`
says what to do now as a :class:`Escalation`, which the I/O shell
(:class:`~async_orch._poller.JobWatcher`) carries out. The same machine serves
a batch's deadlines and the stop of a cancelled batch (``_cancellation.py``
watches its jobs with a deadline of "now").

A watched job with a limit moves like this (``grace`` is ``StopPolicy.grace``)::

    deadline passed ──on_timeout──> SOFTSTOP sent ──grace──> KILL sent ──grace──> finish
          │                             (a job seen ended meanwhile is finished at once)
          └──not on_timeout──> finish (reported timed out, left running)

    Pending past pending_timeout, seen Pending by an answer from after it
        ──> stuck (stuck_pending_for), then as a passed deadline
    seen ended before its deadline ──> grace for its outputs read, then finish
    Suspended at its own deadline, StopPolicy.on_suspended:
        "timeout" ──> as a passed deadline; "report" ──> report_suspended (never
        stopped); "wait" ──> its deadline lifted (waited for until it ends)

A SoftStop that the workflow ignores changes nothing: Kill follows after the
grace period all the same, and a job still running after that is finished as
timed out with the last state seen.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from async_orch._options import StopPolicy
from async_orch._states import JobState

__all__ = ["Deadlines", "Escalation"]

K = TypeVar("K", bound=Hashable)

SOFT_STOP = "SoftStop"
KILL = "Kill"


@dataclass(frozen=True, slots=True)
class Escalation(Generic[K]):
    """What to do now: jobs to report as timed out, to SoftStop, to Kill (the stops
    count as sent from the moment they are returned)."""

    finish: list[K] = field(default_factory=list)
    soft_stop: list[K] = field(default_factory=list)
    kill: list[K] = field(default_factory=list)
    report_suspended: list[K] = field(default_factory=list)  # on_suspended="report"
    # A decision waits on a fresher state than the last seen (Pending past its limit,
    # or running before its deadline and maybe Suspended since): read it.
    recheck: list[K] = field(default_factory=list)
    waited: list[K] = field(default_factory=list)  # on_suspended="wait": deadline lifted


@dataclass(slots=True)
class _Limits:
    deadline: float | None
    state: JobState | None
    pending_deadline: float | None = None  # while Pending: when it counts as stuck
    pending_since: float | None = None
    stuck_pending_for: float | None = None
    seen_at: float = -math.inf  # when the server last told its state
    stop_sent: str | None = None  # SOFT_STOP / KILL once sent
    stop_at: float | None = None  # when the last stop was sent

    def due_at(self, grace: float) -> float | None:
        """When its limits need attention next (None: it has none)."""
        if self.stop_at is not None:
            return self.stop_at + grace
        limits = [d for d in (self.deadline, self.pending_deadline) if d is not None]
        return min(limits) if limits else None


class Deadlines(Generic[K]):
    """The deadlines of the jobs of one watcher, keyed by job id.

    Args:
        policy: whether to stop jobs past a deadline, the grace, the pending limit.
        recheck: seconds after which to look again at a job Pending past its
            pending limit as last seen, but maybe picked up since.
        fresh_within: how long past a job's deadline to wait for a fresher state
            when it was last seen running before it (it may be Suspended by now),
            for ``on_suspended`` other than "timeout".
    """

    def __init__(
        self, policy: StopPolicy, *, recheck: float, fresh_within: float = math.inf
    ) -> None:
        self._policy = policy
        self._recheck = recheck
        self._fresh_within = fresh_within
        self._jobs: dict[K, _Limits] = {}  # every job with a limit, in the order added
        self._next_due = math.inf  # a lower bound of every job's due time

    @property
    def next_due(self) -> float:
        """Before this time :meth:`step` has nothing to do (inf: never)."""
        return self._next_due

    def add(self, key: K, *, now: float, deadline: float | None, state: JobState | None) -> None:
        """Take a job with an absolute ``deadline`` (None: none) and its state if known."""
        pending_timeout = self._policy.pending_timeout
        pending_deadline = (
            now + pending_timeout
            if pending_timeout is not None and state in (None, JobState.PENDING)
            else None
        )
        if deadline is None and pending_deadline is None:
            return  # no limit to keep (as _track would find): most jobs of most batches
        limits = _Limits(deadline=deadline, state=state, pending_deadline=pending_deadline)
        if pending_deadline is not None:
            limits.pending_since = now
        self._track(key, limits)

    def seen(self, key: K, state: JobState, *, now: float) -> None:
        """The server answered ``state`` for the job at ``now``."""
        self.seen_many([(key, state)], now=now)

    def seen_many(self, answers: Iterable[tuple[K, JobState]], *, now: float) -> None:
        """:meth:`seen` for each (key, state) of a list answer, in one loop (a list
        answer is up to 1,000 rows, every second)."""
        jobs = self._jobs
        if not jobs:
            return
        for key, state in answers:
            limits = jobs.get(key)
            if limits is not None:
                limits.seen_at, limits.state = now, state
                if state is not JobState.PENDING:
                    limits.pending_deadline = None  # picked up: the pending limit is met

    def remove(self, key: K) -> None:
        """The job left the watcher."""
        self._jobs.pop(key, None)

    def stop_sent(self, key: K) -> str | None:
        """The last stop sent to the job ("SoftStop" / "Kill"), if any."""
        limits = self._jobs.get(key)
        return limits.stop_sent if limits is not None else None

    def stuck_pending_for(self, key: K) -> float | None:
        """Seconds the job had been Pending when found stuck (None: it was not)."""
        limits = self._jobs.get(key)
        return limits.stuck_pending_for if limits is not None else None

    def step(self, now: float) -> Escalation[K]:
        """What is due at ``now``; stops returned count as sent at ``now``."""
        escalation: Escalation[K] = Escalation()
        if now < self._next_due:
            return escalation
        grace = self._policy.grace
        next_due = math.inf
        for key, limits in list(self._jobs.items()):
            due = limits.due_at(grace)
            if due is None:  # its only limit was a pending one, and it left Pending
                del self._jobs[key]
                continue
            ended = limits.state is not None and limits.state.is_terminal
            if (
                limits.pending_deadline is not None
                and limits.pending_since is not None
                and limits.stop_sent is None
                and now >= due == limits.pending_deadline
            ):
                if limits.seen_at < limits.pending_deadline:
                    if limits.deadline is None or now < limits.deadline:
                        # Pending as last seen, but maybe picked up since: stuck only
                        # once an answer from after the limit still says Pending. Its
                        # deadline, if sooner, is not put off by the wait.
                        deadline = math.inf if limits.deadline is None else limits.deadline
                        next_due = min(next_due, now + self._recheck, deadline)
                        escalation.recheck.append(key)
                        continue
                    # Its deadline passed while that answer was awaited: timed out.
                else:
                    limits.stuck_pending_for = now - limits.pending_since
            if ended and limits.stop_sent is None:
                # It ended in time and only its outputs read is left: give that
                # the grace period rather than report a finished job as timed out.
                due += grace
            if now < due:
                next_due = min(next_due, due)
            elif (suspended := self._suspended_at_deadline(limits, due, now)) is not None:
                if suspended == "later":
                    next_due = min(next_due, now + self._recheck)
                    escalation.recheck.append(key)
                elif suspended == "wait":
                    limits.deadline = None  # waited for until it ends
                    escalation.waited.append(key)
                    left = limits.due_at(grace)
                    if left is None:
                        del self._jobs[key]
                    else:
                        next_due = min(next_due, left)
                else:
                    escalation.report_suspended.append(key)
            elif ended or not self._policy.on_timeout or limits.stop_sent == KILL:
                escalation.finish.append(key)
            elif limits.stop_sent is None:
                escalation.soft_stop.append(key)
            else:  # SoftStop sent, ignored or not yet acted on: the grace is over
                escalation.kill.append(key)
        self._next_due = next_due
        for strategy, keys in ((SOFT_STOP, escalation.soft_stop), (KILL, escalation.kill)):
            for key in keys:
                limits = self._jobs[key]
                limits.stop_sent, limits.stop_at = strategy, now
                self._next_due = min(self._next_due, now + grace)
        return escalation

    def _suspended_at_deadline(self, limits: _Limits, due: float, now: float) -> str | None:
        """What ``StopPolicy.on_suspended`` makes of a job at its own deadline:
        "wait", "report", "later" (seen running before the deadline: decide on a
        fresher state), or None (not Suspended, or the policy is "timeout")."""
        if (
            self._policy.on_suspended == "timeout"
            or limits.stop_sent is not None
            or limits.deadline is None
            or due != limits.deadline
            or (limits.state is not None and limits.state.is_terminal)
        ):
            return None
        if limits.state is JobState.SUSPENDED:
            # Suspended is slow to change (and polled seldom): as last seen, it stands.
            return self._policy.on_suspended
        if limits.seen_at < limits.deadline and now < limits.deadline + self._fresh_within:
            # Seen running before the deadline, it may be Suspended by now: a poll comes
            # within the job's interval (if polls keep failing, the last state seen
            # decides after ``fresh_within``).
            return "later"
        return None

    def _track(self, key: K, limits: _Limits) -> None:
        due = limits.due_at(self._policy.grace)
        if due is None:
            return
        self._jobs[key] = limits
        self._next_due = min(self._next_due, due)
