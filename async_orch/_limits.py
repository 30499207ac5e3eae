"""Who may post StartJobs now: calls in flight per folder and overall, and a rate.

:class:`StartLimiter` hands out *turns*. A turn is a slot in the request's
folder, a slot overall, and a token of the start rate, taken in that order: a
request waiting for its busy folder must not hold an overall slot that requests
of other folders could use. Every limit can be resized while turns are held;
a lower limit applies as turns are given back. The start rate is a
:class:`TokenBucket` (pure: the caller passes the time in).

This is the client's one rate limit on starts. List calls have their own
budget, paced and shared apart (``_list_budget.py``, ``_shared_budget.py``).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import anyio

from async_orch._errors import ConfigurationError, NotStartedError

__all__ = ["DispatchLimits", "StartLimiter", "TokenBucket", "take_slot"]

_NO_LIMIT = 1_000_000  # CapacityLimiter wants a number; no folder holds this many calls


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchLimits:
    """Limits on starting jobs.

    Attributes:
        max_in_flight: StartJobs requests in flight at once, over all folders.
        per_folder: StartJobs requests in flight at once in one folder (None: no limit).
        starts_per_second: average StartJobs rate (None: no limit). StartJobs is
            not rate limited by Orchestrator, but a tenant's robots are finite.
        start_attempts: StartJobs attempts per request (reconciliations included).
    """

    max_in_flight: int = 16
    per_folder: int | None = None
    starts_per_second: float | None = None
    start_attempts: int = 4

    def __post_init__(self) -> None:
        _check(self.max_in_flight, self.per_folder, self.starts_per_second)
        if self.start_attempts < 1:
            raise ConfigurationError(
                f"DispatchLimits.start_attempts must be at least 1, got {self.start_attempts}"
            )


def _check(
    max_in_flight: int | None, per_folder: int | None, starts_per_second: float | None
) -> None:
    for name, value, kind in (
        ("max_in_flight", max_in_flight, int),
        ("per_folder", per_folder, int),
        ("starts_per_second", starts_per_second, int | float),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise ConfigurationError(f"{name} must be a number, got {value!r}")
    if max_in_flight is not None and max_in_flight < 1:
        raise ConfigurationError(f"max_in_flight must be at least 1, got {max_in_flight}")
    if per_folder is not None and per_folder < 1:
        raise ConfigurationError(
            f"per_folder must be at least 1 (or None for no limit), got {per_folder}"
        )
    if starts_per_second is not None and not (0 < starts_per_second < math.inf):
        raise ConfigurationError(
            f"starts_per_second must be positive (or None for no limit), got {starts_per_second}"
        )


class StartLimiter:
    """Turns to post StartJobs under :class:`DispatchLimits` (module docstring)."""

    def __init__(
        self,
        limits: DispatchLimits,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        #: The limits now (changed by :meth:`resize` only). An attribute, not a
        #: property: read at every start.
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._in_flight = anyio.CapacityLimiter(limits.max_in_flight)
        self._per_folder: dict[int, anyio.CapacityLimiter] = {}
        self._bucket = TokenBucket(limits.starts_per_second, now=clock())
        self._bucket_lock = anyio.Lock()

    def resize(
        self,
        *,
        max_in_flight: int | None = None,
        per_folder: int | None = None,
        starts_per_second: float | None = None,
    ) -> None:
        """Change limits (a value left as None is unchanged); turns held are kept."""
        _check(max_in_flight, per_folder, starts_per_second)
        if max_in_flight is not None:
            self._in_flight.total_tokens = max_in_flight
            self.limits = replace(self.limits, max_in_flight=max_in_flight)
        if per_folder is not None:
            for limiter in self._per_folder.values():
                limiter.total_tokens = per_folder
            self.limits = replace(self.limits, per_folder=per_folder)
        if starts_per_second is not None:
            self._bucket.set_rate(starts_per_second, now=self._clock())
            self.limits = replace(self.limits, starts_per_second=starts_per_second)

    @asynccontextmanager
    async def turn(self, folder_id: int, *, deadline: float | None) -> AsyncIterator[None]:
        """Hold a turn to post in folder ``folder_id`` for the ``async with`` body.

        Raises:
            NotStartedError: ``deadline`` (on this limiter's clock) passed
                before a turn came; nothing is held then.
        """
        release = await self.take_turn(folder_id, deadline=deadline)
        try:
            yield
        finally:
            release()

    async def take_turn(self, folder_id: int, *, deadline: float | None) -> Callable[[], None]:
        """:meth:`turn` without a context manager (one per start: a generator-based
        one costs a few µs): the turn, and the function that gives it back (call it
        exactly once, whatever happens).

        Raises:
            NotStartedError: as :meth:`turn`; nothing is held then.
        """
        folder = self._folder(folder_id)
        # The usual case first: no start rate, both slots free, taken without an await.
        free = self._bucket.rate is None and (deadline is None or self._clock() < deadline)
        if not (free and self._took_free(folder)) and not await self._acquire(folder, deadline):
            raise NotStartedError(
                "not started: the batch timeout passed while this request waited for its "
                "turn (raise the timeout, or the max_in_flight / per_folder limits)"
            )
        in_flight = self._in_flight

        def release() -> None:
            folder.release()
            in_flight.release()

        return release

    def _took_free(self, folder: anyio.CapacityLimiter) -> bool:
        """Take both slots if both are free now; else hold nothing."""
        try:
            folder.acquire_nowait()
        except anyio.WouldBlock:
            return False
        try:
            self._in_flight.acquire_nowait()
        except anyio.WouldBlock:
            folder.release()
            return False
        except BaseException:  # this task holds a turn already, say
            folder.release()
            raise
        return True

    async def _acquire(self, folder: anyio.CapacityLimiter, deadline: float | None) -> bool:
        if deadline is None:
            await self._take_all(folder)
            return True
        if self._clock() >= deadline:
            return False  # free slots are taken without a checkpoint: check first
        with anyio.move_on_after(max(0.0, deadline - self._clock())):
            await self._take_all(folder)
            return True
        return False

    async def _take_all(self, folder: anyio.CapacityLimiter) -> None:
        await take_slot(folder)
        try:
            await take_slot(self._in_flight)
            try:
                await self._take_token()
            except BaseException:
                self._in_flight.release()
                raise
        except BaseException:
            folder.release()
            raise

    async def _take_token(self) -> None:
        if self._bucket.rate is None:
            return  # no rate limit: no lock to take either
        async with self._bucket_lock:
            while (wait := self._bucket.try_take(self._clock())) > 0:
                await self._sleep(wait)

    def _folder(self, folder_id: int) -> anyio.CapacityLimiter:
        limiter = self._per_folder.get(folder_id)
        if limiter is None:
            tokens = self.limits.per_folder or _NO_LIMIT
            limiter = self._per_folder[folder_id] = anyio.CapacityLimiter(tokens)
        return limiter


async def take_slot(limiter: anyio.CapacityLimiter) -> None:
    """Acquire ``limiter``, without a trip through the event loop when it is free.

    anyio's ``acquire()`` always yields once, which for a thousand requests is a
    thousand extra turns of the loop. Release it as usual.
    """
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        await limiter.acquire()


# -- the start rate ----------------------------------------------------------------------


class TokenBucket:
    """Allow ``rate`` events per second on average, bursts of up to ``burst``.

    ``rate`` may be changed at any time (the dispatcher's limits are resizable);
    ``rate=None`` means unlimited.
    """

    def __init__(self, rate: float | None, *, burst: float = 1.0, now: float = 0.0) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None (unlimited)")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._updated = now

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None, *, now: float) -> None:
        """Change the rate; tokens earned so far are kept."""
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None (unlimited)")
        self._refill(now)
        self._rate = rate

    def try_take(self, now: float) -> float:
        """Take a token if one is there and return 0.0, else the seconds to wait.

        When a wait is returned nothing is taken: call again after waiting.
        """
        if self._rate is None:
            return 0.0
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate

    def _refill(self, now: float) -> None:
        if self._rate is not None and now > self._updated:
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = max(self._updated, now)
