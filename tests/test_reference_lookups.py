"""Reference lookups: batched per folder (``Reference in (...)``), each call charged
to the list budget the job watchers spend, tried once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import anyio.lowlevel
from conftest import FakeClock
from fakes import FakeAPI

from async_orch._dispatcher import Dispatcher
from async_orch._errors import ServerError
from async_orch._models import Folder, Job
from async_orch._planner import ListBudget
from async_orch._reference_lookups import LookupAnswer, ReferenceLookups
from async_orch._seams import FolderRef

FOLDER = Folder.from_api({"Id": 7, "Key": "0f5c9a4e-1d7b-4c1e-9a55-0a1b2c3d4e5f",
                          "DisplayName": "Shared", "FullyQualifiedName": "Shared"})  # fmt: skip


def job(job_id: int, reference: str) -> Job:
    return Job.from_api({"Id": job_id, "Key": f"00000000-0000-4000-8000-{job_id:012d}",
                         "State": "Pending", "Reference": reference})  # fmt: skip


class ReferenceAPI(FakeAPI):
    """Lists the jobs of ``existing`` whose Reference is asked for; records each call."""

    def __init__(self, existing: Sequence[Job], *, fail: bool = False) -> None:
        super().__init__()
        self.existing = list(existing)
        self.asked: list[list[str]] = []
        self.fail = fail

    async def jobs_by_reference(self, folder: FolderRef, references: Sequence[str]) -> list[Job]:
        self.asked.append(list(references))
        await anyio.lowlevel.checkpoint()
        if self.fail:
            raise ServerError(status=502, method="GET", url="x", message="bad gateway")
        return [j for j in self.existing if j.reference in references]


def lookups_with(api: ReferenceAPI, budget: ListBudget, clock: FakeClock) -> ReferenceLookups:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await anyio.lowlevel.checkpoint()  # others queue meanwhile

    return ReferenceLookups(api, budget, clock=clock, sleep=sleep)


async def find_all(lookups: ReferenceLookups, references: Sequence[str]) -> dict[str, Any]:
    answers: dict[str, LookupAnswer] = {}

    async def find(reference: str) -> None:
        answers[reference] = await lookups.find(FOLDER, reference)

    async with anyio.create_task_group() as tg:
        for reference in references:
            tg.start_soon(find, reference)
    return answers


async def test_lookups_waiting_for_the_budget_share_one_call() -> None:
    clock = FakeClock()
    budget = ListBudget(60)  # one call a second
    budget.spend(clock())  # a poll just spent it
    api = ReferenceAPI([job(1, "r-1"), job(3, "r-3")])
    lookups = lookups_with(api, budget, clock)

    answers = await find_all(lookups, [f"r-{i}" for i in range(5)])

    assert len(api.asked) == 1 and sorted(api.asked[0]) == [f"r-{i}" for i in range(5)]
    assert [j.id for j in answers["r-1"].jobs] == [1]
    assert answers["r-0"].jobs == [] and answers["r-0"].error is None
    assert budget.ready_at() == clock() + 1.0  # the call was charged to the budget
    assert lookups.calls == 1


async def test_a_failed_call_is_every_batched_reference_s_answer_and_not_retried() -> None:
    clock = FakeClock()
    budget = ListBudget(60)
    budget.spend(clock())
    api = ReferenceAPI([], fail=True)

    answers = await find_all(lookups_with(api, budget, clock), ["a", "b"])

    assert len(api.asked) == 1
    assert all(isinstance(a.error, ServerError) for a in answers.values())


async def test_lookups_are_off_with_a_list_budget_of_0() -> None:
    api = ReferenceAPI([])
    answer = await lookups_with(api, ListBudget(0), FakeClock()).find(FOLDER, "a")
    assert answer.error is not None and "list calls are off" in str(answer.error)
    assert api.asked == []


def test_the_dispatcher_s_lookups_spend_the_watchers_budget() -> None:
    dispatcher = Dispatcher(ReferenceAPI([]))
    budget = dispatcher._parts.watchers.budget
    before = budget.ready_at()
    budget_of_lookups = dispatcher._starter.lookups._budget
    budget_of_lookups.spend(1000.0)
    assert budget_of_lookups is budget and budget.ready_at() > before
