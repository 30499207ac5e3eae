"""The tenant's list budget as one client sees it: an adaptive pacer (pure logic).

``GET /odata/Jobs`` is limited per tenant (100 calls a minute for every
non-automation caller together, a rolling window; orchestrator-api.md §4 and §8).
A client does not know how much of that the others use, so it adapts, the way
TCP shares a link (additive increase, multiplicative decrease, AIMD):

- It starts at its ceiling (``per_minute``) and paces calls evenly at its
  current ``rate`` (calls per window), never more than the ceiling in any window.
- Every list answer carries ``X-RateLimit-Remaining`` (§4: calls left in the
  window; it reads 0 once fewer than 10 are left). Below ``low_remaining`` the
  rate is cut by ``LOW_CUT``, at 0 by ``THROTTLE_CUT``. These cuts are made at
  most once per ``cooldown`` (a sixth of the window): the count stays low while
  old calls age out of the rolling window, and reacting to each answer would
  cut the rate to nothing.
- A 429 always cuts it by ``THROTTLE_CUT`` and pauses list calls for its
  ``Retry-After``: retries into a full window only fill it more.
- Otherwise the rate grows by ``ceiling / 10`` per window, linearly.

Since every client of the tenant sees the same remaining count, they cut
together and grow alike; AIMD then converges on equal shares of what the
others leave, with the remaining count, not 429s, as the usual signal.

Time is passed in (monotonic seconds), so tests need no event loop.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["LIST_WINDOW", "ListBudget"]

LIST_WINDOW = 60.0  # the list limit's window, seconds (orchestrator-api.md §4)
LOW_CUT = 0.75  # the rate after a low remaining count, as a fraction of before
THROTTLE_CUT = 0.5  # the rate after a 429
START_FRACTION = 1.0  # the first rate, as a fraction of the ceiling
GROWTH_FRACTION = 0.1  # growth per window, as a fraction of the ceiling
# Below this many calls left in the tenant's window, slow down. The real service
# reports 0 below 10 (§4); 20 gives several clients room to slow down before 429s.
LOW_REMAINING = 20


class ListBudget:
    """The list-call budget of one client: calls paced evenly at an adaptive rate,
    at most ``per_minute`` in any window, none while paused after a 429.

    One budget serves every planner and Reference lookup of a client, so that
    together they stay within the tenant's limit.

    Args:
        per_minute: the ceiling, list calls per window (0: list calls off).
        window: the limit's window in seconds (60 for Orchestrator; a test or a
            benchmark on a sped-up simulator uses less).
        low_remaining: slow down when the server says fewer calls are left.
    """

    def __init__(
        self, per_minute: float, *, window: float = LIST_WINDOW, low_remaining: int = LOW_REMAINING
    ) -> None:
        if not window > 0:
            raise ValueError(f"window must be > 0, got {window}")
        self.capacity = int(per_minute)
        self.window = window
        self.low_remaining = low_remaining
        self.floor = min(1.0, float(self.capacity))
        self.rate = max(self.floor, self.capacity * START_FRACTION)
        self.cooldown = window / 6
        self.cuts = 0  # how often the rate was cut (for stats and tests)
        self._times: deque[float] = deque(maxlen=max(1, self.capacity))
        self._paused_until = -math.inf
        self._last_cut = -math.inf
        self._grown_at: float | None = None  # when the rate last grew

    @property
    def spacing(self) -> float:
        """Seconds between two list calls at the current rate."""
        return self.window / self.rate if self.capacity else math.inf

    def ready_at(self) -> float:
        """The earliest time a list call is allowed (inf when list calls are off)."""
        if not self.capacity:
            return math.inf
        ready = self._paused_until
        if self._times:
            ready = max(ready, self._times[-1] + self.spacing)
            if len(self._times) >= self.capacity:
                # A slot frees when the oldest of the last `capacity` calls leaves the window.
                ready = max(ready, self._times[0] + self.window)
        return ready

    def window_ready_at(self) -> float:
        """Like :meth:`ready_at`, without the even pacing: only the 60 s window
        and a pause after a 429 hold the call back (for a range query's next page)."""
        if not self.capacity:
            return math.inf
        ready = self._paused_until
        if len(self._times) >= self.capacity:
            ready = max(ready, self._times[0] + self.window)
        return ready

    def spend(self, now: float) -> None:
        """A list call is made at ``now``."""
        self._times.append(now)

    def pause_until(self, until: float) -> None:
        """No list call before ``until``."""
        self._paused_until = max(self._paused_until, until)

    def observe(self, remaining: int | None, *, now: float) -> None:
        """A list call was answered; ``remaining`` is its X-RateLimit-Remaining
        (None when the answer had none: on-premises Orchestrator has no limit)."""
        if remaining == 0:  # fewer than 10 left (§4): a 429 is next
            self._cut(THROTTLE_CUT, now)
        elif remaining is not None and remaining < self.low_remaining:
            self._cut(LOW_CUT, now)
        else:
            self._grow(now)

    def throttled(self, *, retry_after: float, now: float) -> None:
        """A list call got 429: pause ``retry_after`` seconds and slow down."""
        self.pause_until(now + max(0.0, retry_after))
        self._cut(THROTTLE_CUT, now, always=True)

    def _cut(self, factor: float, now: float, *, always: bool = False) -> None:
        self._grown_at = now  # growth restarts from the cut
        if not always and now - self._last_cut < self.cooldown:
            return
        self._last_cut = now
        self.rate = max(self.floor, self.rate * factor)
        self.cuts += 1

    def _grow(self, now: float) -> None:
        if self._grown_at is not None:
            step = self.capacity * GROWTH_FRACTION * (now - self._grown_at) / self.window
            self.rate = min(float(self.capacity), self.rate + max(0.0, step))
        self._grown_at = now
