"""When push (webhook events) may slow polling down, and when polling must take over again.

Orchestrator's webhooks are not stored or retried: a failed delivery is lost
(docs.uipath.com orchestrator about-webhooks; orchestrator-api.md §8). So events
may only make detection faster, never stand in for polling. The rules, per folder:

- While signed events for the folder keep arriving (the last one less than
  ``quiet_after`` seconds ago), its jobs are re-checked ``slow_factor`` times
  less often than usual (a bounded factor: a job whose event was lost is still
  seen, at most ``slow_factor`` times later than without push).
- Once ``quiet_after`` seconds pass without an event for the folder, the
  factor is 1 again at once, and the planner pulls every stretched check back
  to its usual time (:meth:`~async_orch._planner.PollPlanner.set_pace`).
- A job of the folder found ended by polling without its event (:meth:`PushPace.missed`)
  shows that events there are being lost: the factor is 1 for ``quiet_after``
  seconds from then, so that the other lost ones are found at polling's own pace
  rather than at the slowed one (measured: 200 jobs over 4 folders at 20 list
  calls a minute with 10 % of events lost ended 1.4x later than polling alone).

Pure: no I/O, no clock reads; times are passed in (monotonic seconds).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Generic, TypeVar

from async_orch._errors import ConfigurationError

__all__ = ["MAX_SLOW_FACTOR", "PushPace"]

FolderT = TypeVar("FolderT", bound=Hashable)

#: The most polling may be slowed by push: beyond this a lost event costs too much.
MAX_SLOW_FACTOR = 10.0


class PushPace(Generic[FolderT]):
    """Per folder: the factor to stretch re-check intervals by, from event times."""

    def __init__(self, *, slow_factor: float = 4.0, quiet_after: float = 30.0) -> None:
        if not (1.0 <= slow_factor <= MAX_SLOW_FACTOR):
            raise ConfigurationError(
                f"slow_factor must be between 1 and {MAX_SLOW_FACTOR:g}, got {slow_factor}"
            )
        if not (0 < quiet_after < math.inf):
            raise ConfigurationError(f"quiet_after must be > 0 seconds, got {quiet_after}")
        self.slow_factor = slow_factor
        self.quiet_after = quiet_after
        self._last_event: dict[FolderT, float] = {}
        self._last_miss: dict[FolderT, float] = {}

    def event(self, folder: FolderT, now: float) -> None:
        """A signed, fresh event about ``folder`` arrived at ``now``."""
        last = self._last_event.get(folder, -math.inf)
        self._last_event[folder] = max(last, now)

    def missed(self, folder: FolderT, now: float) -> None:
        """Polling found a job of ``folder`` ended whose event never came, at ``now``."""
        if folder in self._last_event:
            last = self._last_miss.get(folder, -math.inf)
            self._last_miss[folder] = max(last, now)

    def factor(self, folder: FolderT, now: float) -> float:
        """How many times less often to check ``folder``'s jobs (1: as usual)."""
        last = self._last_event.get(folder)
        if last is None or now - last >= self.quiet_after:
            return 1.0
        if now - self._last_miss.get(folder, -math.inf) < self.quiet_after:
            return 1.0  # events there are being lost
        return self.slow_factor

    def factors(self, now: float) -> dict[FolderT, float]:
        """The factor of every folder an event was ever seen for."""
        return {folder: self.factor(folder, now) for folder in self._last_event}

    def next_change(self, now: float) -> float | None:
        """When a folder's factor next falls back to 1 (None: no change is coming)."""
        times = [*self._last_event.values(), *self._last_miss.values()]
        ends = [t + self.quiet_after for t in times if t + self.quiet_after > now]
        return min(ends, default=None)
