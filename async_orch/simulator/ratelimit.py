"""A rolling-window request limit, as Orchestrator applies to ``GET /odata/Jobs``.

Per the "Orchestrator API Limits" doc: 100 requests per minute per tenant for
non-automation callers, a rolling window counted to the second (not clock minutes),
shared by every such caller of the tenant: the web UI, integrations, other
scripts (orchestrator-api.md §4, and §8 "Rate-limited list budget is tenant-wide").
A refused call gets 429 with ``Retry-After`` (seconds) and
``X-RateLimit-Remaining``, which reports 0 once fewer than 10 calls remain.
Refused calls do not use up the window (UNCONFIRMED: the doc only says retries
inside the window also get 429, which holds either way).

Other callers' load: ``other_per_minute`` calls a minute from elsewhere,
evenly spaced, charged to the same window (a refused one is dropped, as a
caller that gives up would). ASSUMPTION: real load is burstier; even spacing
makes runs repeatable. The window starts full of a minute of that load, as if
the others had been calling before we came.

Time is passed in (real seconds), so tests need not wait.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["RateDecision", "RollingWindowLimiter"]

_LOW_WATER = 10  # below this many calls left, the header says 0


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Outcome of one call: allowed or not, and the header values to send."""

    allowed: bool
    remaining: int  # X-RateLimit-Remaining as sent
    retry_after: int | None  # Retry-After (seconds), set when refused


class RollingWindowLimiter:
    """At most *limit* calls in any *window* seconds, *other_per_minute* of them
    (if there is room) made by other callers of the tenant."""

    def __init__(self, limit: int, window: float, *, other_per_minute: float = 0.0) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        if not (0 <= other_per_minute < math.inf):
            raise ValueError("other_per_minute must be >= 0")
        self.limit = limit
        self.window = window
        self.other_per_minute = other_per_minute
        self.other_calls = 0  # other callers' calls counted
        self.other_refused = 0  # ... and refused (429)
        self._calls: deque[float] = deque()
        self._next_other: float | None = None  # when the others call next

    def acquire(self, now: float) -> RateDecision:
        """Count a call at *now* if a slot is free."""
        self._others_until(now)
        self._expire(now)
        if len(self._calls) >= self.limit:
            wait = self._calls[0] + self.window - now
            return RateDecision(False, 0, max(1, math.ceil(wait)))
        self._calls.append(now)
        left = self.limit - len(self._calls)
        return RateDecision(True, left if left >= _LOW_WATER else 0, None)

    def reset(self) -> None:
        self._calls.clear()
        self._next_other = None

    def _expire(self, now: float) -> None:
        while self._calls and self._calls[0] <= now - self.window:
            self._calls.popleft()

    def _others_until(self, now: float) -> None:
        """Charge the other callers' calls made up to *now*."""
        if not self.other_per_minute:
            return
        spacing = 60.0 / self.other_per_minute
        if self._next_other is None:
            self._next_other = now - self.window + spacing
        while self._next_other <= now:
            at = self._next_other
            self._next_other += spacing
            self._expire(at)
            if len(self._calls) < self.limit:
                self._calls.append(at)
                self.other_calls += 1
            else:
                self.other_refused += 1
