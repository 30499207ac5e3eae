"""The start pool: which request goes next (pure), and a batch that holds a fixed
number of tasks however many requests wait (an in-memory API with a gated StartJobs)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
from anyio import wait_all_tasks_blocked
from fakes import FakeAPI

from async_orch._dispatcher import Dispatcher, DispatchLimits, Started, StartFailure
from async_orch._jobs import JobRequest
from async_orch._start_pool import StartQueue


def drain(queue: StartQueue, cap: int | None) -> list[int]:
    """Take until nothing can be taken; nothing is released."""
    taken = []
    while (item := queue.take(cap)) is not None:
        taken.append(item[0])
    return taken


# -- StartQueue, pure ------------------------------------------------------------------


def test_without_a_cap_requests_come_in_request_order() -> None:
    queue = StartQueue(["A", "B", "A", None, "B"])
    assert drain(queue, None) == [0, 1, 2, 3, 4]
    assert queue.exhausted


def test_a_full_folder_is_skipped_for_the_next_folder_then_comes_back_on_release() -> None:
    queue = StartQueue(["A", "A", "A", "B", "B"])
    first = queue.take(1)
    assert first == (0, 0)
    assert queue.take(1) == (3, 1)  # A is full: B's first request, ahead of A's second
    assert queue.take(1) is None  # both full
    queue.release(0, 1)
    assert queue.take(1) == (1, 0)
    assert not queue.exhausted


def test_requests_that_take_no_turn_are_never_held_back() -> None:
    queue = StartQueue(["A", "A", None, None])
    assert drain(queue, 1) == [0, 2, 3]


def test_raising_the_cap_reopens_full_folders() -> None:
    queue = StartQueue(["A", "A", "A"])
    assert drain(queue, 1) == [0]
    queue.reopen(3)
    assert drain(queue, 3) == [1, 2]
    assert queue.exhausted


def test_lowering_the_cap_holds_a_folder_until_enough_are_released() -> None:
    queue = StartQueue(["A"] * 5)
    assert drain(queue, 3) == [0, 1, 2]
    queue.release(0, 1)
    queue.release(0, 1)
    assert queue.take(1) is None  # 1 still out: at the new cap
    queue.release(0, 1)
    assert queue.take(1) == (3, 0)


# -- the pool in a batch ---------------------------------------------------------------


async def test_queued_requests_hold_no_task_each() -> None:
    """2,000 requests, 4 calls in flight: the batch runs a handful of tasks, not one
    per request (a task and a StartJobs body per queued request cost ~11 KB each)."""
    api = FakeAPI(gate=anyio.Event())
    dispatcher = Dispatcher(api, limits=DispatchLimits(max_in_flight=4))
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"i": i}) for i in range(2000)]
    outcome: list[Started | StartFailure] = []

    async def start() -> None:
        outcome.extend(await dispatcher.start(requests))

    async with anyio.create_task_group() as tg:
        before = len(asyncio.all_tasks())
        tg.start_soon(start)
        await api.wait_until(lambda: api.in_flight == 4)
        await wait_all_tasks_blocked()
        assert len(asyncio.all_tasks()) - before < 20
        assert api.gate is not None
        api.gate.set()
    assert len(outcome) == 2000
    assert all(isinstance(r, Started) for r in outcome)
    # Started in request order (one folder, no retries).
    assert [r.index for r in outcome] == list(range(2000))
    posted = [int(reference.rsplit("-", 1)[1]) for _, _, reference in api.starts()]
    assert posted == list(range(2000))


async def test_a_start_that_steps_aside_frees_its_worker_and_its_folder_place() -> None:
    # Two workers, one folder capped at two: the first two starts wait out a
    # long window (as ambiguous StartJobs do). Unless they step aside, nothing
    # else starts until the window ends, which here is never.
    from async_orch._limits import StartLimiter
    from async_orch._models import Folder, Release
    from async_orch._start_pool import StartPool

    folder = Folder(id=1, display_name="F", fully_qualified_name="F")
    release = Release(id=1, key="k", name="P", process_key="P")
    limiter = StartLimiter(
        DispatchLimits(max_in_flight=2, per_folder=2), clock=lambda: 0.0, sleep=anyio.sleep
    )
    window_over = anyio.Event()
    done: list[int] = []

    async def start_one(index: int, step_aside: Callable[[], None]) -> None:
        if index < 2:
            step_aside()
            step_aside()  # a second call changes nothing
            await window_over.wait()
        done.append(index)
        if len(done) == 6:
            window_over.set()

    with anyio.fail_after(10):
        await StartPool(limiter).start_every([(folder, release)] * 8, start_one)
    assert sorted(done[:6]) == [2, 3, 4, 5, 6, 7] and sorted(done[6:]) == [0, 1]
