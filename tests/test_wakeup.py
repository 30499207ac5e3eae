"""Wakeup: the job watcher's sleep that another task cuts short."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from typing import Any

import pytest

from async_orch._wakeup import Wakeup


async def started(sleep: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """The sleep as a task, run until it sleeps (its first step, in the next turn)."""
    task = asyncio.ensure_future(sleep)
    await asyncio.sleep(0)
    return task


async def test_set_wakes_the_sleeper() -> None:
    wakeup = Wakeup()
    sleeper = await started(wakeup.sleep())  # no timeout: only set() ends it
    for _ in range(5):
        await asyncio.sleep(0)
    assert not sleeper.done()
    wakeup.set()
    await sleeper


async def test_the_delay_ends_the_sleep() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await Wakeup().sleep(0.01)
    assert loop.time() - start >= 0.01 - 1e-3  # by its timer, not at once


async def test_a_set_while_nobody_sleeps_is_dropped() -> None:
    wakeup = Wakeup()
    wakeup.set()
    sleeper = await started(wakeup.sleep(math.inf))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not sleeper.done()  # the earlier set() did not end it
    wakeup.set()
    await sleeper


async def test_cancelling_the_sleeper_ends_the_sleep_with_the_cancellation() -> None:
    wakeup = Wakeup()
    sleeper = await started(wakeup.sleep(3600.0))
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    wakeup.set()  # nobody sleeps: nothing happens
    again = await started(wakeup.sleep())  # the next sleep waits for its own set()
    assert not again.done()
    wakeup.set()
    await again


async def test_a_negative_delay_returns_at_once() -> None:
    await Wakeup().sleep(-1.0)
