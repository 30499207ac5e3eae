"""Start a batch's requests from a fixed pool of workers: memory flat in the batch size.

A task per request would keep one coroutine (and, built early, one StartJobs body)
per queued request: about 11 KB each, 1.15 GB for 100,000 jobs. Instead a pool of
workers, as many as StartJobs calls may be in flight (``max_in_flight``, followed
when it is raised), takes request indices from a :class:`StartQueue` and starts each
when taken. A queued request then costs a few bytes (its index in its folder's lane).

The queue hands out requests in request order, skipping a folder whose
``per_folder`` limit this batch's workers already fill: a busy folder must not hold
workers that requests of other folders could use. The limits themselves are still
enforced by the :class:`~async_orch._limits.StartLimiter` (it is shared by every batch
of a dispatcher); the queue only keeps workers where they can make progress.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field

import anyio

from async_orch._limits import StartLimiter
from async_orch._starting import Target

__all__ = ["StartOne", "StartPool", "StartQueue"]

#: Starts request ``index``; calls the second argument to step aside (see start_every).
StartOne = Callable[[int, Callable[[], None]], Awaitable[None]]


@dataclass(slots=True)
class _Lane:
    """The queued requests of one folder, in request order."""

    indices: array[int] = field(default_factory=lambda: array("q"))
    next: int = 0  # position of the next request to hand out
    active: int = 0  # requests handed out and not released yet
    capped: bool = True  # False: no per-folder cap (requests that need no turn)
    queued: bool = False  # in the heap of lanes that can hand out now

    @property
    def pending(self) -> bool:
        return self.next < len(self.indices)


class StartQueue:
    """Which request to start next (pure: no I/O, no event loop).

    Args:
        lanes: per request, the key of its lane (its folder), or None for a
            request that takes no turn (its target did not resolve): those are
            never held back.
    """

    def __init__(self, lanes: Sequence[Hashable | None]) -> None:
        self._lanes: list[_Lane] = []
        by_key: dict[Hashable | None, int] = {}
        for index, key in enumerate(lanes):
            lane_id = by_key.get(key)
            if lane_id is None:
                lane_id = by_key[key] = len(self._lanes)
                self._lanes.append(_Lane(capped=key is not None))
            self._lanes[lane_id].indices.append(index)
        self._heap: list[tuple[int, int]] = []  # (next request index, lane id)
        self.total = len(lanes)
        self._left = len(lanes)  # requests not handed out yet
        self.reopen(None)

    @property
    def exhausted(self) -> bool:
        """Every request has been handed out."""
        return self._left == 0

    def take(self, cap: int | None) -> tuple[int, int] | None:
        """The next request to start and its lane id, or None if none can start
        now (all handed out, or every folder with requests left has ``cap``
        requests out already; None: no cap). Give the lane back with :meth:`release`.
        """
        while self._heap:
            _, lane_id = heapq.heappop(self._heap)
            lane = self._lanes[lane_id]
            lane.queued = False
            if not self._open(lane, cap):
                continue  # the cap was lowered: it comes back on release
            index = lane.indices[lane.next]
            lane.next += 1
            lane.active += 1
            self._left -= 1
            self._push(lane_id, cap)
            return index, lane_id
        return None

    def release(self, lane_id: int, cap: int | None) -> None:
        """A request of ``lane_id`` is done starting (whatever the outcome)."""
        self._lanes[lane_id].active -= 1
        self._push(lane_id, cap)

    def reopen(self, cap: int | None) -> None:
        """Offer again every lane that ``cap`` allows (call when the cap changed)."""
        for lane_id in range(len(self._lanes)):
            self._push(lane_id, cap)

    def _push(self, lane_id: int, cap: int | None) -> None:
        lane = self._lanes[lane_id]
        if not lane.queued and self._open(lane, cap):
            lane.queued = True
            heapq.heappush(self._heap, (lane.indices[lane.next], lane_id))

    @staticmethod
    def _open(lane: _Lane, cap: int | None) -> bool:
        return lane.pending and (cap is None or not lane.capped or lane.active < cap)


class StartPool:
    """Runs the start pools of one dispatcher's batches under its shared limiter."""

    def __init__(self, limiter: StartLimiter) -> None:
        self.limiter = limiter
        self._resized: anyio.Event | None = None  # made in the event loop, when waited on

    def limits_changed(self) -> None:
        """The limiter was resized: running pools grow (or reopen folders) at once."""
        if self._resized is not None:
            self._resized.set()
            self._resized = None

    async def start_every(self, targets: Sequence[Target], start_one: StartOne) -> None:
        """Call ``start_one(index, step_aside)`` for every request (``targets`` gives
        each one's folder), from ``max_in_flight`` workers at most.

        A start that must wait a long time without a turn (an ambiguous StartJobs
        waiting out the reconcile window) calls ``step_aside()``: its worker stops
        counting, its folder's place is freed, and another worker takes its place,
        so a few uncertain starts cannot stall the batch."""
        queue = StartQueue([t[0].id if isinstance(t, tuple) else None for t in targets])
        pool = _Pool(queue, start_one, lambda: self.limiter.limits.per_folder, self.limits_changed)
        async with anyio.create_task_group() as tg:
            while not queue.exhausted:
                while pool.size < min(self.limiter.limits.max_in_flight, queue.total):
                    pool.size += 1
                    tg.start_soon(pool.work)
                queue.reopen(self.limiter.limits.per_folder)
                pool.wake()
                if self._resized is None:
                    self._resized = anyio.Event()
                with anyio.CancelScope() as pool.idle_scope:
                    await self._resized.wait()
            # Every request is taken: the workers finish the ones they hold.


class _Pool:
    def __init__(
        self,
        queue: StartQueue,
        start_one: StartOne,
        per_folder: Callable[[], int | None],
        grow: Callable[[], None],
    ) -> None:
        self._queue = queue
        self._start_one = start_one
        self._per_folder = per_folder
        self._grow = grow  # wakes start_every to add a worker
        self._waiting: anyio.Event | None = None  # workers with nothing to take
        self.size = 0
        self.idle_scope: anyio.CancelScope | None = None  # start_every's wait for a resize

    def wake(self) -> None:
        if self._waiting is not None:
            self._waiting.set()
            self._waiting = None

    async def work(self) -> None:
        queue = self._queue
        while True:
            taken = queue.take(self._per_folder())
            if taken is None:
                if queue.exhausted:
                    return
                if self._waiting is None:
                    self._waiting = anyio.Event()
                await self._waiting.wait()  # a lane was released, or limits changed
                continue
            index, lane_id = taken
            if queue.exhausted and self.idle_scope is not None:
                self.idle_scope.cancel()  # no more workers needed
            if await self._start(index, lane_id):
                return  # it stepped aside: a worker took this one's place

    async def _start(self, index: int, lane_id: int) -> bool:
        """Start one request; whether its worker stepped aside meanwhile."""
        aside = False

        def step_aside() -> None:
            nonlocal aside
            if not aside:
                aside = True
                self.size -= 1  # this worker no longer counts: another may start
                self._release(lane_id)
                self._grow()

        try:
            await self._start_one(index, step_aside)
        finally:
            if not aside:
                self._release(lane_id)
        return aside

    def _release(self, lane_id: int) -> None:
        self._queue.release(lane_id, self._per_folder())
        self.wake()
