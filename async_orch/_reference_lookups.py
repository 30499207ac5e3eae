"""Look Reference up in batches, each list call charged to the list budget.

After an ambiguous StartJobs, :class:`~async_orch._retries.StartProtocol` asks
for its Reference to be looked up. Many requests of one folder often ask at
once (a gateway outage fails them together), so their lookups share calls:
``GET /odata/Jobs?$filter=Reference in ('a','b',...)`` (orchestrator-api.md
§3.4: the ``in`` operator is supported), as many References as the URL budget
holds (:mod:`async_orch._url_lists`; an ``in`` list counts once toward OData's
node limit, §8). ``GET /odata/Jobs`` is rate limited per tenant (§4), so every call waits
for and spends the client's :class:`~async_orch._planner.ListBudget`, the one the
job watchers spend.

How a batch forms, without a task of its own: a request adds its Reference to
its folder's queue and takes the folder's lock. The holder of the lock waits
for the budget, then takes every queued Reference of the folder (up to the
batch limits) into one call and hands each its answer. A request answered by
someone else's call finds its answer when it gets the lock, and leaves.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from async_orch._errors import (
    ConfigurationError,
    OrchestratorError,
    RateLimitedError,
    RequestError,
)
from async_orch._list_budget import ListBudget
from async_orch._logs import get_logger
from async_orch._models import Folder, Job
from async_orch._resources import odata_quote
from async_orch._seams import JobsAPI
from async_orch._shared_budget import SharedListBudget
from async_orch._url_lists import ListRoom, references_query

__all__ = ["LookupAnswer", "ReferenceLookups"]

log = get_logger("async_orch.reference_lookups")

# Jobs one call may list: one page (the documented maximum $top), so a lookup
# is one list call. A Reference holds its request's jobs only.
MAX_JOBS = 1000
_RATE_LIMIT_PAUSE = 60.0  # seconds without list calls after a 429 without Retry-After


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    """What a lookup of one Reference found (``jobs``) or why it failed (``error``),
    and when its call was sent (the protocol's clock)."""

    sent_at: float
    jobs: list[Job] = field(default_factory=list)
    error: OrchestratorError | None = None


@dataclass(slots=True)
class _Pending:
    reference: str
    expected_jobs: int
    answer: LookupAnswer | None = None

    @property
    def settled(self) -> bool:
        return self.answer is not None


@dataclass(slots=True)
class _FolderQueue:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    pending: dict[str, _Pending] = field(default_factory=dict)  # in arrival order


class ReferenceLookups:
    """Batched Reference lookups of one client (module docstring).

    Args:
        api: the resource API.
        budget: the list budget shared with the job watchers.
        shared: the budget shared beyond this client (the watchers' one), if any:
            each call takes a slot of it too.
        clock: the budget's clock (monotonic seconds).
        sleep: awaited while the budget is spent.
    """

    def __init__(
        self,
        api: JobsAPI,
        budget: ListBudget,
        *,
        shared: SharedListBudget | None = None,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._api = api
        self._budget = budget
        self._shared = shared
        self._clock = clock
        self._sleep = sleep
        self._folders: dict[int, _FolderQueue] = {}
        self.calls = 0  # list calls sent (each charged to the budget)

    async def find(self, folder: Folder, reference: str, *, expected_jobs: int = 1) -> LookupAnswer:
        """The jobs of ``folder`` with ``reference``, from a call shared with others.

        A failed call (tried once), or list calls switched off (a list budget of
        0), is an answer with ``error`` set.

        Raises:
            ClientClosedError: the client is closed.
        """
        queue = self._folders.setdefault(folder.id, _FolderQueue())
        mine = _Pending(reference, max(1, expected_jobs))
        queue.pending[reference] = mine
        try:
            while not mine.settled:
                async with queue.lock:
                    if not mine.settled:
                        await self._call(folder, queue, mine)
        finally:
            if queue.pending.get(reference) is mine:
                del queue.pending[reference]
        assert mine.answer is not None
        return mine.answer

    async def find_all(self, folder: Folder, references: list[str]) -> dict[str, LookupAnswer]:
        """The answer for each of ``references`` (distinct), looked up at once so
        they share calls (as many per call as fit).

        Raises:
            ClientClosedError: the client is closed.
        """
        answers: dict[str, LookupAnswer] = {}

        async def one(reference: str) -> None:
            answers[reference] = await self.find(folder, reference)

        async with anyio.create_task_group() as tg:
            for reference in references:
                tg.start_soon(one, reference)
        return answers

    async def _call(self, folder: Folder, queue: _FolderQueue, mine: _Pending) -> None:
        """One list call for ``mine`` and as many other queued References as fit."""
        now = await self._wait_for_budget()
        if now is None:
            mine.answer = LookupAnswer(self._clock(), error=_list_calls_off())
            return
        batch = _take_batch(queue, mine)
        self._budget.spend(now)  # no await since the wait: nobody spends in between
        self.calls += 1
        for item in batch:
            del queue.pending[item.reference]
        answered = False
        try:
            if self._shared is not None:
                await self._shared.acquire()
            jobs = await self._api.jobs_by_reference(folder, [p.reference for p in batch])
            answered = True
        except RateLimitedError as exc:
            pause = _RATE_LIMIT_PAUSE if exc.retry_after is None else exc.retry_after
            self._budget.throttled(retry_after=pause, now=self._clock())
            if self._shared is not None:
                await self._shared.throttled(pause)
            _fail(batch, exc, now)
            log.info("async_orch.reference_lookup_rate_limited", retry_after=exc.retry_after)
        except RequestError as exc:
            _fail(batch, exc, now)
        finally:
            if not answered and not all(p.settled for p in batch):
                # Cancelled mid-call: hand the others back, for their own call.
                for item in batch:
                    if item is not mine:
                        queue.pending[item.reference] = item
        if answered:
            by_reference: dict[str, list[Job]] = {p.reference: [] for p in batch}
            for job in jobs:
                if job.reference in by_reference:
                    by_reference[job.reference].append(job)
            for item in batch:
                item.answer = LookupAnswer(now, jobs=by_reference[item.reference])
        log.debug(
            "async_orch.reference_lookup",
            folder=folder.fully_qualified_name,
            references=len(batch),
            answered=answered,
        )

    async def _wait_for_budget(self) -> float | None:
        """Wait until a list call is allowed and return the time; None if list
        calls are off."""
        slept_until = -math.inf
        while True:
            ready = self._budget.ready_at()
            if ready == math.inf:
                return None
            # A sleep is trusted to have lasted (an injected one returns at once).
            now = max(self._clock(), slept_until)
            if ready <= now:
                return now
            await self._sleep(ready - now)
            slept_until = ready


def _take_batch(queue: _FolderQueue, mine: _Pending) -> list[_Pending]:
    """``mine`` first, then queued References in arrival order while they fit one
    call: its URL budget and one page of jobs."""
    batch = [mine]
    room = ListRoom.of(references_query)
    room.take(odata_quote(mine.reference))  # a Reference (<= 128 units) always fits
    jobs = mine.expected_jobs
    for item in queue.pending.values():
        if item is mine or item.settled:
            continue
        if jobs + item.expected_jobs > MAX_JOBS or not room.take(odata_quote(item.reference)):
            break
        batch.append(item)
        jobs += item.expected_jobs
    return batch


def _fail(batch: list[_Pending], error: OrchestratorError, sent_at: float) -> None:
    for item in batch:
        item.answer = LookupAnswer(sent_at, error=error)


def _list_calls_off() -> ConfigurationError:
    return ConfigurationError(
        "cannot look a Reference up: list calls are off (a list budget of 0); "
        "allow some with PollPolicy.list_budget_per_minute"
    )
