"""A rolling-window request limit, as Orchestrator applies to ``GET /odata/Jobs``.

Per the "Orchestrator API Limits" doc: 100 requests per minute per tenant for
non-automation callers, a rolling window counted to the second (not clock minutes).
A refused call gets 429 with ``Retry-After`` (seconds) and
``X-RateLimit-Remaining``, which reports 0 once fewer than 10 calls remain.
Refused calls do not use up the window (UNCONFIRMED: the doc only says retries
inside the window also get 429, which holds either way).

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
    """At most *limit* calls in any *window* seconds."""

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._calls: deque[float] = deque()

    def acquire(self, now: float) -> RateDecision:
        """Count a call at *now* if a slot is free."""
        while self._calls and self._calls[0] <= now - self.window:
            self._calls.popleft()
        if len(self._calls) >= self.limit:
            wait = self._calls[0] + self.window - now
            return RateDecision(False, 0, max(1, math.ceil(wait)))
        self._calls.append(now)
        left = self.limit - len(self._calls)
        return RateDecision(True, left if left >= _LOW_WATER else 0, None)

    def reset(self) -> None:
        self._calls.clear()
