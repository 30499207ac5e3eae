"""Progress display: a live line on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TextIO

from async_orch.batch import Outcome, Progress
from async_orch.states import JobState

__all__ = ["ProgressDisplay"]

_ORDER = ("queued", "Pending", "Running", "Stopping", "Terminating", "Suspended")
_FINAL = tuple(o.value for o in Outcome)
# A job seen in a final state whose result is not out yet (its outputs are being
# read, or it was stopped as the batch ended): shown as "ending", so the counts
# shown always add up to the total.
_ENDING = frozenset(s.value for s in JobState if s.is_terminal)
_KNOWN = frozenset({*_ORDER, *_FINAL, *_ENDING})


class ProgressDisplay:
    """Render :class:`Progress` snapshots, throttled so it costs next to nothing.

    Args:
        stream: where to write (stderr, so stdout stays machine-readable).
        live: redraw one line in place (a terminal) instead of printing lines.
        interval: seconds between plain lines (or redraws).
        quiet: print nothing at all.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool,
        interval: float = 5.0,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._live = live
        self._interval = 0.2 if live else interval
        self._quiet = quiet
        self._clock = clock
        self._started = clock()
        self._last = -1e9
        self._latest: Progress | None = None

    def update(self, progress: Progress) -> None:
        """Remember the latest snapshot; draw it if the interval has passed."""
        self._latest = progress
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._draw(progress, now)

    def finish(self) -> None:
        """Draw the final state and end the live line."""
        if self._latest is not None:
            self._draw(self._latest, self._clock())
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

    def _draw(self, progress: Progress, now: float) -> None:
        if self._quiet:
            return
        text = self.line(progress, now)
        if self._live:
            self._stream.write("\r\x1b[K" + text)
        else:
            self._stream.write(text + "\n")
            for line in self.folder_lines(progress):
                self._stream.write(line + "\n")
        self._stream.flush()


def _shown_counts(counts: Counter[str]) -> list[tuple[str, int]]:
    """(label, count) for every state with jobs: running states first, then
    "ending", then outcomes, then any state this version does not list."""
    ending = sum(counts[s] for s in _ENDING)
    shown = [(s.lower(), counts[s]) for s in _ORDER]
    shown.append(("ending", ending))
    shown += [(s, counts[s]) for s in _FINAL]
    shown += [(s.lower(), n) for s, n in sorted(counts.items()) if s not in _KNOWN]
    return [(label, n) for label, n in shown if n > 0]


def _clock_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60:d}:{seconds % 60:02d}"
