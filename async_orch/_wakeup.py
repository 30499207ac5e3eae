"""A task's sleep that another task can cut short: the job watcher's run loop and its
readers wait on one between turns.

It does what ``anyio.Event`` under ``anyio.move_on_after`` does, on the running
asyncio loop directly: a wait that ends by its timeout costs one timer here, where
anyio delivers a cancellation into the task and catches it again (about 35 us of
CPU, against 6, measured; the watcher's run loop sleeps this way on every turn).
Cancelling the sleeping task still ends the sleep at once with the cancellation.
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["Wakeup"]


class Wakeup:
    """One task sleeps on it (:meth:`sleep`); any task may :meth:`set` it.

    A :meth:`set` while nobody sleeps is dropped: the sleeper looks at what
    changed before it sleeps again (that is what its caller's loop is for).
    """

    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        """Wake the sleeper now, if there is one."""
        if self._waiter is not None:
            _ring(self._waiter)

    async def sleep(self, delay: float = math.inf) -> None:
        """Sleep until :meth:`set` or ``delay`` seconds pass (inf: until set)."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if delay == math.inf else loop.call_later(max(0.0, delay), _ring, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


def _ring(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
