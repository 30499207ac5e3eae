"""Progress display: a live line on a terminal, plain periodic lines otherwise.

Never silent: while nothing changes (an outage, a frozen server, jobs all
Pending), :meth:`ProgressDisplay.heartbeat` says at least every
``HEARTBEAT_EVERY`` seconds what the batch is waiting for, from the transport's
health (``Transport.health``) and the time of the last change, and logs a
warning (structlog) every ``STALL_WARNING_EVERY`` seconds without a change.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TextIO

import anyio

from async_orch._jobs import Outcome, Progress
from async_orch._list_budget import ListPace
from async_orch._logs import get_logger
from async_orch._states import JobState
from async_orch._transport_hooks import TransportHealth

__all__ = ["HEARTBEAT_EVERY", "ProgressDisplay", "waiting_text"]

log = get_logger("async_orch.cli.progress")

#: Seconds without a line before a heartbeat line says what is awaited.
HEARTBEAT_EVERY = 10.0
#: Seconds without a change between two "still waiting" warnings in the log.
STALL_WARNING_EVERY = 60.0
#: Seconds the oldest Pending job of a folder waits before the heartbeat says how long.
PENDING_NOTICE_AFTER = 60.0
#: A next list call at least this far off (seconds) means the list budget holds the run.
LIST_HOLD_AFTER = 1.0
#: A failure streak shorter than this is a blip, not "the server is not answering".
_OUTAGE_AFTER = 5.0
_TICK = 1.0

_ORDER = ("queued", "Pending", "Running", "Stopping", "Terminating", "Suspended")
_FINAL = tuple(o.value for o in Outcome)
# A job seen in a final state whose result is not out yet (its outputs are being
# read, or it was stopped as the batch ended): shown as "ending", so the counts
# shown always add up to the total.
_ENDING = frozenset(s.value for s in JobState if s.is_terminal)
_KNOWN = frozenset({*_ORDER, *_FINAL, *_ENDING})
# An outcome shown under another word than its value: "suspended" is also the state
# of the jobs still watched, and "suspended 2 | suspended 1" read as one count twice.
_OUTCOME_LABELS = {Outcome.SUSPENDED.value: "left suspended"}


class ProgressDisplay:
    """Render :class:`Progress` snapshots, throttled so it costs next to nothing.

    Args:
        stream: where to write (stderr, so stdout stays machine-readable).
        live: redraw one line in place (a terminal) instead of printing lines.
        interval: seconds between plain lines (or redraws).
        quiet: print nothing at all (the warnings still go to the log).
        health: reads the transport's health, for the heartbeat.
        clock: monotonic seconds (inject one in tests).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool,
        interval: float = 5.0,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
        health: Callable[[], TransportHealth] | None = None,
        list_pace: Callable[[], ListPace] | None = None,
    ) -> None:
        self._stream = stream
        self._live = live
        self._interval = 0.2 if live else interval
        self._quiet = quiet
        self._clock = clock
        self._started = clock()
        self._last = -1e9
        self._latest: Progress | None = None
        self._health = health
        self._list_pace = list_pace
        self._last_change = self._started  # when update() was last called
        self._last_output = self._started  # when a line was last written
        self._last_warning = self._started
        self._finished = False
        self._drawn: object = None  # the counts last drawn (_counts_of)
        # A wait the run names itself (what, until when on the clock): the heartbeat
        # says it instead of guessing from the counts.
        self._named_wait: tuple[str, float] | None = None

    def set_health(self, health: Callable[[], TransportHealth]) -> None:
        """Read the transport's health from now on (once the client exists)."""
        self._health = health

    def set_list_pace(self, list_pace: Callable[[], ListPace]) -> None:
        """Read what the list budget allows from now on (once the client exists)."""
        self._list_pace = list_pace

    def waiting_for(self, what: str | None, *, until: float = 0.0) -> None:
        """Name what the run waits for until ``until`` (this display's clock), or,
        with None, that the wait is over."""
        self._named_wait = None if what is None else (what, until)

    def update(self, progress: Progress) -> None:
        """Remember the latest snapshot; draw it if the interval has passed."""
        self._latest = progress
        now = self._clock()
        self._last_change = now
        if now - self._last >= self._interval:
            self._last = now
            self._draw(progress, now)

    def finish(self) -> None:
        """Draw the final state (plain lines: unless the last ones drawn say it
        already) and end the live line."""
        self._finished = True
        latest = self._latest
        if latest is not None and (self._live or self._drawn != _counts_of(latest)):
            self._draw(latest, self._clock())
        if self._live and not self._quiet:
            self._stream.write("\n")
            self._stream.flush()

    def line(self, progress: Progress, now: float) -> str:
        """The one-line summary: done/total, counts by state, rate, elapsed, ETA."""
        elapsed = now - self._started
        done = sum(progress.by_state.get(s, 0) for s in _FINAL)
        parts = [f"{done}/{progress.total} done"]
        parts += [f"{label} {count}" for label, count in _shown_counts(progress.by_state)]
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (progress.total - done) / rate if rate > 0 else None
        parts.append(f"{rate:.1f} jobs/s")
        parts.append(f"elapsed {_clock_text(elapsed)}")
        if eta is not None and done < progress.total:
            parts.append(f"eta {_clock_text(eta)}")
        return " | ".join(parts)

    def folder_lines(self, progress: Progress) -> list[str]:
        """One line per folder with its counts (for the plain, non-live output)."""
        lines = []
        for folder, counts in sorted(progress.by_folder.items()):
            shown = ", ".join(f"{label} {count}" for label, count in _shown_counts(counts))
            lines.append(f"  {folder}: {shown}")
        return lines

    def heartbeat(self) -> None:
        """Say what is awaited if nothing was written for a while (call it every second)."""
        now = self._clock()
        health = self._health() if self._health is not None else TransportHealth()
        if self._named_wait is not None:
            what, until = self._named_wait
            waiting = f"waiting for {what}, {_duration(max(0.0, until - now))} left"
        else:
            pace = self._list_pace() if self._list_pace is not None else None
            waiting = waiting_text(
                self._latest, health, now=now, last_change=self._last_change, pace=pace
            )
        if now - self._last_change >= STALL_WARNING_EVERY and (
            now - self._last_warning >= STALL_WARNING_EVERY
        ):
            self._last_warning = now
            log.warning(
                "async_orch.batch_waiting",
                seconds_since_change=round(now - self._last_change),
                waiting_for=waiting,
            )
        if self._quiet or self._finished:
            return
        if self._live:
            # Redraw every tick, so the elapsed time moves; name the wait once it is one.
            stalled = now - self._last_change >= HEARTBEAT_EVERY - _TICK
            if health.failing_for(now) >= _OUTAGE_AFTER:
                stalled = True
            parts = [] if self._latest is None else [self.line(self._latest, now)]
            if stalled or not parts:
                parts.append(waiting)
            self._stream.write("\r\x1b[K" + " | ".join(parts))
            self._stream.flush()
            self._last_output = now
        elif now - self._last_output >= HEARTBEAT_EVERY - _TICK / 2:  # ticks drift a little
            self._stream.write(f"waiting: {waiting}\n")
            self._stream.flush()
            self._last_output = now

    @asynccontextmanager
    async def beating(
        self, *, sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    ) -> AsyncIterator[None]:
        """Call :meth:`heartbeat` every second while the block runs."""

        async def beat() -> None:
            while True:
                await sleep(_TICK)
                self.heartbeat()

        error: Exception | None = None
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(beat)
            try:
                yield
            except Exception as exc:  # re-raised below, not wrapped in an ExceptionGroup
                error = exc
            finally:
                tasks.cancel_scope.cancel()
        if error is not None:
            raise error

    def _draw(self, progress: Progress, now: float) -> None:
        if self._quiet:
            return
        self._drawn = _counts_of(progress)
        text = self.line(progress, now)
        self._last_output = now
        if self._live:
            self._stream.write("\r\x1b[K" + text)
        else:
            self._stream.write(text + "\n")
            for line in self.folder_lines(progress):
                self._stream.write(line + "\n")
        self._stream.flush()


def _counts_of(progress: Progress) -> object:
    """What a drawing of ``progress`` shows, but for the clock: equal, no news."""
    folders = {folder: dict(counts) for folder, counts in progress.by_folder.items()}
    return (progress.total, dict(progress.by_state), folders)


def _shown_counts(counts: Counter[str]) -> list[tuple[str, int]]:
    """(label, count) for every state with jobs: running states first, then
    "ending", then outcomes, then any state this version does not list."""
    ending = sum(counts[s] for s in _ENDING)
    shown = [(s.lower(), counts[s]) for s in _ORDER]
    shown.append(("ending", ending))
    shown += [(_OUTCOME_LABELS.get(s, s), counts[s]) for s in _FINAL]
    shown += [(s.lower(), n) for s, n in sorted(counts.items()) if s not in _KNOWN]
    return [(label, n) for label, n in shown if n > 0]


def waiting_text(
    progress: Progress | None,
    health: TransportHealth,
    *,
    now: float,
    last_change: float,
    pace: ListPace | None = None,
) -> str:
    """What a quiet batch is waiting for, in words.

    "server not answering for 40 s (HTTP 503), retrying", or "waiting on 32 jobs
    Running in Finance; last change 1m20s ago". When the list budget (``pace``)
    holds the next list call back, the states are the last ones seen, and the
    text says when the next call may go: the jobs may have ended since.
    """
    failing, silent = health.failing_for(now), health.silent_for(now)
    if silent >= _OUTAGE_AFTER and silent > failing:  # a frozen server fails nothing yet
        return (
            f"server not answering for {_duration(silent)} "
            f"({_requests(health.waiting)} waiting for an answer)"
        )
    if failing >= _OUTAGE_AFTER:
        if health.last_failure == "HTTP 429":
            return f"rate limited for {_duration(failing)}, waiting as the server asks"
        return (
            f"server not answering for {_duration(failing)} "
            f"({health.last_failure}, {health.failures} tries), retrying"
        )
    since = f"last change {_duration(now - last_change)} ago"
    if progress is None:
        return f"waiting for the server; {since}"
    groups = []
    for folder, counts in sorted(progress.by_folder.items()):
        for state in _ORDER:
            if counts[state] > 0:
                groups.append((counts[state], state, folder))
    if not groups:
        return f"waiting for results; {since}"
    groups.sort(key=lambda g: (-g[0], g[2], g[1]))
    held = pace is not None and pace.per_minute > 0 and pace.next_call - now >= LIST_HOLD_AFTER
    if held:
        shown = [f"{_jobs(n)} last seen {state} in {folder}" for n, state, folder in groups[:3]]
    else:
        shown = [_group_text(progress, n, state, folder, now) for n, state, folder in groups[:3]]
    if len(groups) > 3:
        rest = sum(n for n, _, _ in groups[3:])
        shown.append(f"{_jobs(rest)} elsewhere")
    if held and pace is not None:
        return f"waiting on {', '.join(shown)}; {_list_hold_text(pace, now)}; {since}"
    return f"waiting on {', '.join(shown)}; {since}"


def _list_hold_text(pace: ListPace, now: float) -> str:
    """ "next list call in 8 s at the earliest (list budget 3 a minute, last call 12 s ago)"."""
    budget = f"list budget {pace.per_minute} a minute"
    if pace.rate < pace.per_minute - 0.05:  # cut: the tenant's other callers need calls
        budget += f", slowed to {pace.rate:.1f}"
    if pace.last_call is not None:
        budget += f", last call {_duration(now - pace.last_call)} ago"
    wait = _duration(max(LIST_HOLD_AFTER, pace.next_call - now))
    return f"next list call in {wait} at the earliest ({budget})"


def _group_text(progress: Progress, n: int, state: str, folder: str, now: float) -> str:
    """ "32 jobs Running in Finance", or for Pending jobs waiting a while, how long the
    oldest waits and why: Orchestrator leaves them Pending while no robot is free."""
    oldest = progress.oldest_pending(folder) if state == "Pending" else None
    if oldest is not None and now - oldest >= PENDING_NOTICE_AFTER:
        return f"{_jobs(n)} Pending for {_duration(now - oldest)} in {folder}: no robot free"
    return f"{_jobs(n)} {state} in {folder}"


def _requests(n: int) -> str:
    return "1 request" if n == 1 else f"{n} requests"


def _jobs(n: int) -> str:
    return "1 job" if n == 1 else f"{n} jobs"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


def _clock_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60:d}:{seconds % 60:02d}"
