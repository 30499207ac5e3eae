"""Dispatch limits, observed on an in-memory API whose StartJobs waits at a gate.

Each test holds StartJobs calls in flight, waits until every other task is
blocked (so no more calls can start), and then reads how many are in flight.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from fakes import FakeAPI

from async_orch._dispatcher import Dispatcher, DispatchLimits, Started
from async_orch._errors import ConfigurationError, NotStartedError
from async_orch._jobs import JobRequest
from async_orch._limits import StartLimiter, take_slot
from async_orch._models import Job, StartRequest
from async_orch._seams import FolderRef


def requests(count: int, folders: tuple[str, ...] = ("Shared",)) -> list[JobRequest]:
    return [
        JobRequest(process="Echo", folder=folders[i % len(folders)], inputs={"i": i})
        for i in range(count)
    ]


async def settle(api: FakeAPI) -> None:
    """Let every task that can make progress do so (no time involved)."""
    await wait_all_tasks_blocked()


async def test_max_in_flight_caps_start_calls_over_all_folders() -> None:
    api = FakeAPI(gate=anyio.Event())
    dispatcher = Dispatcher(api, limits=DispatchLimits(max_in_flight=3))
    async with anyio.create_task_group() as tg:
        tg.start_soon(dispatcher.start, requests(12, ("Shared", "HR", "Finance")))
        await api.wait_until(lambda: api.in_flight == 3)
        await settle(api)
        assert api.in_flight == 3
        assert api.gate is not None
        api.gate.set()
    assert api.max_in_flight == 3
    assert len(api.starts()) == 12


async def test_per_folder_caps_each_folder_while_others_proceed() -> None:
    api = FakeAPI(gate=anyio.Event())
    # 4 global slots: taking a global slot before the folder's would let
    # Shared's waiting requests hold all four, and HR would never start.
    limits = DispatchLimits(max_in_flight=4, per_folder=2)
    dispatcher = Dispatcher(api, limits=limits)
    # All of Shared's requests first: they must not take the global slots HR needs.
    reqs = requests(8, ("Shared",)) + requests(4, ("HR",))
    async with anyio.create_task_group() as tg:
        tg.start_soon(dispatcher.start, reqs)
        with anyio.fail_after(10):  # a safety net against a hang, not a timing check
            await api.wait_until(lambda: api.in_flight == 4)
        await settle(api)
        assert api.in_flight_by_folder == {"Shared": 2, "HR": 2}
        assert api.gate is not None
        api.gate.set()
    assert api.max_by_folder == {"Shared": 2, "HR": 2}
    assert len(api.starts()) == 12


async def test_set_limits_while_running_raises_and_lowers_the_cap() -> None:
    api = FakeAPI(gate=anyio.Event())
    dispatcher = Dispatcher(api, limits=DispatchLimits(max_in_flight=1))
    async with anyio.create_task_group() as tg:
        tg.start_soon(dispatcher.start, requests(20))
        await api.wait_until(lambda: api.in_flight == 1)
        await settle(api)
        assert api.in_flight == 1

        dispatcher.set_limits(max_in_flight=5)
        await api.wait_until(lambda: api.in_flight == 5)
        await settle(api)
        assert api.in_flight == 5
        assert dispatcher.limits.max_in_flight == 5

        # Lowering does not cut calls short; new calls wait until under the cap.
        dispatcher.set_limits(max_in_flight=2)
        gate, api.gate = api.gate, anyio.Event()
        assert gate is not None
        gate.set()  # the 5 held calls finish; the next ones wait at the new gate
        await api.wait_until(lambda: api.in_flight == 2)
        await settle(api)
        assert api.in_flight == 2
        api.gate.set()
    assert len(api.starts()) == 20


async def test_set_limits_per_folder_while_running() -> None:
    api = FakeAPI(gate=anyio.Event())
    dispatcher = Dispatcher(api, limits=DispatchLimits(max_in_flight=50, per_folder=1))
    async with anyio.create_task_group() as tg:
        tg.start_soon(dispatcher.start, requests(10, ("Shared", "HR")))
        await api.wait_until(lambda: api.in_flight == 2)
        await settle(api)
        assert api.in_flight_by_folder == {"Shared": 1, "HR": 1}
        dispatcher.set_limits(per_folder=3)
        await api.wait_until(lambda: api.in_flight == 6)
        await settle(api)
        assert api.in_flight_by_folder == {"Shared": 3, "HR": 3}
        assert api.gate is not None
        api.gate.set()


class FakeTime:
    """A clock that moves only when the dispatcher sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


class TimedStarts(FakeAPI):
    """Records when (on the injected clock) each StartJobs call came; ``on_start``
    is told how many came so far."""

    def __init__(self, time: FakeTime) -> None:
        super().__init__()
        self.time = time
        self.start_times: list[float] = []
        self.on_start: Callable[[int], None] = lambda count: None

    async def create_jobs(self, folder: FolderRef, request: StartRequest) -> list[Job]:
        self.start_times.append(self.time())
        self.on_start(len(self.start_times))
        return await super().create_jobs(folder, request)


async def test_starts_per_second_spaces_start_calls_on_the_injected_clock() -> None:
    time = FakeTime()
    api = TimedStarts(time)
    dispatcher = Dispatcher(
        api,
        limits=DispatchLimits(max_in_flight=10, starts_per_second=4.0),
        clock=time,
        sleep=time.sleep,
    )
    outcome = await dispatcher.start(requests(9))
    assert all(isinstance(o, Started) for o in outcome)
    # One token at once (burst 1), then one every 0.25 s of the injected clock.
    assert api.start_times == pytest.approx([i * 0.25 for i in range(9)])


async def test_starts_per_second_can_change_while_running() -> None:
    time = FakeTime()
    api = TimedStarts(time)
    dispatcher = Dispatcher(
        api,
        limits=DispatchLimits(starts_per_second=1.0),
        clock=time,
        sleep=time.sleep,
    )

    def speed_up_at_the_third(count: int) -> None:
        if count == 3:
            dispatcher.set_limits(starts_per_second=10.0)

    api.on_start = speed_up_at_the_third
    await dispatcher.start(requests(6))
    gaps = [b - a for a, b in itertools.pairwise(api.start_times)]
    assert gaps[:2] == pytest.approx([1.0, 1.0])
    assert max(gaps[3:]) <= 0.1 + 1e-9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_in_flight": 0}, "max_in_flight must be at least 1"),
        ({"per_folder": 0}, "per_folder must be at least 1"),
        ({"starts_per_second": 0.0}, "starts_per_second must be positive"),
        ({"start_attempts": 0}, "start_attempts must be at least 1"),
    ],
)
def test_bad_limits_are_refused_with_the_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DispatchLimits(**kwargs)


def test_set_limits_refuses_bad_values_and_keeps_the_old_ones() -> None:
    dispatcher = Dispatcher(FakeAPI(), limits=DispatchLimits(max_in_flight=4))
    with pytest.raises(ConfigurationError):
        dispatcher.set_limits(max_in_flight=0)
    assert dispatcher.limits.max_in_flight == 4


async def test_take_slot_takes_a_free_slot_without_yielding_and_waits_for_a_busy_one() -> None:
    limiter = anyio.CapacityLimiter(1)
    # Inside a cancelled scope any trip through the event loop would raise:
    # a free slot is taken without one.
    with anyio.CancelScope() as scope:
        scope.cancel()
        await take_slot(limiter)
    assert limiter.borrowed_tokens == 1

    taken = anyio.Event()

    async def second() -> None:
        await take_slot(limiter)
        taken.set()
        limiter.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await wait_all_tasks_blocked()
        assert not taken.is_set()  # busy: it waits
        limiter.release()
        await taken.wait()
    assert limiter.borrowed_tokens == 0


async def test_a_turn_with_both_slots_free_is_taken_without_a_trip_through_the_loop() -> None:
    # The usual start: no rate, free slots; taken at once (in a cancelled scope any
    # checkpoint would raise), with or without a deadline still ahead. A deadline
    # passed refuses even when free; a busy folder waits, holding no overall slot.
    # (A turn is held by the task that took it: one task, one turn.)
    now = [100.0]
    limiter = StartLimiter(DispatchLimits(per_folder=1), clock=lambda: now[0], sleep=anyio.sleep)

    async def take_at_once(folder: int, deadline: float | None) -> Callable[[], None]:
        with anyio.CancelScope() as scope:
            scope.cancel()
            release = await limiter.take_turn(folder, deadline=deadline)
        assert not scope.cancelled_caught
        return release

    async def in_a_task_of_its_own() -> None:
        (await take_at_once(2, 101.0))()

    first = await take_at_once(1, None)
    taken = anyio.Event()

    async def waits_for_folder_1() -> None:
        release = await limiter.take_turn(1, deadline=None)
        taken.set()
        release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(in_a_task_of_its_own)
        tg.start_soon(waits_for_folder_1)
        await wait_all_tasks_blocked()
        assert not taken.is_set()
        assert limiter._in_flight.borrowed_tokens == 1  # the waiter holds none
        with pytest.raises(NotStartedError):
            await limiter.take_turn(3, deadline=100.0)
        first()
        await taken.wait()
    assert limiter._in_flight.borrowed_tokens == 0


async def test_a_turn_refused_to_a_task_holding_one_leaves_nothing_held() -> None:
    # A task holds one turn at a time (anyio's slots are per task): asking for a
    # second raises, and the folder slot taken on the way is given back (review of
    # f6c9138: it was kept, and with per_folder=1 that folder was stuck for good).
    limiter = StartLimiter(DispatchLimits(per_folder=1), clock=lambda: 0.0, sleep=anyio.sleep)
    release = await limiter.take_turn(1, deadline=None)
    with pytest.raises(RuntimeError, match="already holding"):
        await limiter.take_turn(2, deadline=None)
    assert limiter._per_folder[2].borrowed_tokens == 0
    release()
    (await limiter.take_turn(2, deadline=None))()
    assert limiter._in_flight.borrowed_tokens == 0
