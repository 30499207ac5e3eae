"""The list budget shared beyond one client: a small protocol and its in-process default.

Each client paces its own list calls (:class:`~async_orch._list_budget.ListBudget`,
adaptive). Before a list call goes out, it also takes a slot of a
:class:`SharedListBudget`: the limit of everything that shares it, say several
clients in one process (:class:`InProcessListBudget`) or a fleet of worker
processes on many hosts (:class:`~async_orch._redis_budget.RedisListBudget`).
Both count a rolling window, as Orchestrator does (orchestrator-api.md §4), so
"60 a minute" holds in every 60 seconds, not per clock minute.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio

from async_orch._errors import ConfigurationError
from async_orch._list_budget import LIST_WINDOW

__all__ = ["InProcessListBudget", "SharedListBudget", "check_budget", "window_wait"]


@runtime_checkable
class SharedListBudget(Protocol):
    """A list-call budget several clients draw on (structural: no need to inherit)."""

    async def acquire(self) -> None:
        """Wait until one more list call fits the budget, and count it."""
        ...

    async def throttled(self, retry_after: float) -> None:
        """The server answered 429: no one on this budget lists for ``retry_after`` s."""
        ...

    async def aclose(self) -> None:
        """Release what the budget holds (connections); idempotent."""
        ...


def check_budget(per_minute: int, window: float) -> None:
    """Refuse a shared budget's arguments that cannot work (ConfigurationError)."""
    if isinstance(per_minute, bool) or not isinstance(per_minute, int) or per_minute < 1:
        raise ConfigurationError(f"per_minute must be an integer >= 1, got {per_minute!r}")
    if not (0 < window < math.inf):
        raise ConfigurationError(f"window must be > 0 seconds, got {window!r}")


def window_wait(calls: deque[float], now: float, *, limit: int, window: float) -> float:
    """Seconds until a call fits ``limit`` per rolling ``window`` (0: now); drops
    calls that left the window from ``calls`` (oldest first)."""
    while calls and calls[0] <= now - window:
        calls.popleft()
    if len(calls) < limit:
        return 0.0
    return calls[0] + window - now


class InProcessListBudget:
    """At most ``per_minute`` list calls in any window, for every client given it
    in this process (pass one instance to each ``OrchestratorClient``).

    Args:
        per_minute: list calls allowed per window (at least 1).
        window: the window in seconds (60, as Orchestrator counts).
    """

    def __init__(
        self,
        per_minute: int,
        *,
        window: float = LIST_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        check_budget(per_minute, window)
        self.per_minute = per_minute
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._calls: deque[float] = deque()
        self._paused_until = -math.inf

    def __repr__(self) -> str:
        return f"InProcessListBudget(per_minute={self.per_minute}, window={self.window:g})"

    async def acquire(self) -> None:
        slept_until = -math.inf
        while True:
            # A sleep is trusted to have lasted (an injected one returns at once).
            now = max(self._clock(), slept_until)
            wait = max(
                self._paused_until - now,
                window_wait(self._calls, now, limit=self.per_minute, window=self.window),
            )
            if wait <= 0:
                self._calls.append(now)  # no await since the check: nobody took it meanwhile
                return
            await self._sleep(wait)
            slept_until = now + wait

    async def throttled(self, retry_after: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, retry_after))

    async def aclose(self) -> None:
        return None
