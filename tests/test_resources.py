"""OrchestratorAPI at the wire: the folder cache (a reloaded folder list is what
later lookups see) and the exact query that watches jobs' states.

A fake sender stands in for Orchestrator; the folder list it serves changes
between calls, as it does when folders are recreated.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio
import pytest
from fakes import FakeSender, Outcome, SentRequest, reply

from async_orch._config import Settings, StaticToken
from async_orch._planner import _RANGE_LISTED
from async_orch._resources import _UNFINISHED_STATES, OrchestratorAPI
from async_orch._seams import RangeAnswer
from async_orch._states import JobState
from async_orch._transport import Transport

BASE = "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_"
KEY_BEFORE = "0f8fad5b-d9cb-469f-a165-70867728950e"
KEY_AFTER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def folder_list(folder_id: int, key: str) -> dict[str, Any]:
    row = {"Id": folder_id, "Key": key, "DisplayName": "Finance", "FullyQualifiedName": "Finance"}
    return {"value": [row]}


class FakeOrchestrator:
    """Serves the folder lists in ``folders`` in turn (each call may first wait for
    a gate), and ``jobs`` to any Jobs list; records every request."""

    def __init__(self, *folders: dict[str, Any], jobs: dict[str, Any] | None = None) -> None:
        self.folders = list(folders)
        self.jobs = jobs
        self.gates: dict[int, anyio.Event] = {}  # folder call number -> gate
        self.reload_sent = anyio.Event()
        self.sender = FakeSender(handler=self.answer)

    async def answer(self, request: SentRequest) -> Outcome:
        if request.url == BASE + "/odata/Folders":
            number = len(self.folder_calls())
            gate = self.gates.get(number)
            if gate is not None:
                self.reload_sent.set()
                await gate.wait()
            return reply(200, self.folders.pop(0))
        assert request.url == BASE + "/odata/Jobs" and self.jobs is not None, request
        return reply(200, self.jobs)

    def folder_calls(self) -> list[SentRequest]:
        return self.sender.sent_to(BASE + "/odata/Folders")


def api_over(server: FakeOrchestrator) -> OrchestratorAPI:
    settings = Settings(url=BASE, credentials=StaticToken(token="pat"))
    return OrchestratorAPI(Transport(settings, sender=server.sender))


async def test_a_folder_is_looked_up_in_the_reloaded_list() -> None:
    # Finance was recreated between the two lists.
    server = FakeOrchestrator(folder_list(1, KEY_BEFORE), folder_list(7, KEY_AFTER))
    api = api_over(server)

    assert (await api.resolve_folder("Finance")).id == 1
    assert (await api.resolve_folder("Finance")).id == 1
    assert len(server.folder_calls()) == 1  # the second lookup used the cached list

    await api.list_folders(refresh=True)
    assert (await api.resolve_folder("Finance")).key == KEY_AFTER
    assert api.folder_headers(await api.resolve_folder("Finance")) == {
        "X-UIPATH-FolderKey": KEY_AFTER
    }
    assert len(server.folder_calls()) == 2


async def test_a_folder_header_worked_out_once_is_a_copy_each_time() -> None:
    server = FakeOrchestrator(folder_list(1, KEY_BEFORE))
    api = api_over(server)
    folder = await api.resolve_folder("Finance")
    first = api.folder_headers(folder)
    first["X-Other"] = "changed by a caller"
    assert api.folder_headers(folder) == {"X-UIPATH-FolderKey": KEY_BEFORE}


async def test_a_lookup_during_a_reload_waits_for_the_new_list() -> None:
    server = FakeOrchestrator(folder_list(1, KEY_BEFORE), folder_list(7, KEY_AFTER))
    release_reload = server.gates[2] = anyio.Event()
    api = api_over(server)
    assert (await api.resolve_folder("Finance")).id == 1

    found: list[int] = []

    async def look_up() -> None:
        found.append((await api.resolve_folder("Finance")).id)

    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(api.list_folders, refresh=True))
        await server.reload_sent.wait()
        tg.start_soon(look_up)
        await anyio.wait_all_tasks_blocked()
        assert found == []  # not answered from the list being replaced
        release_reload.set()
    assert found == [7]


async def test_job_states_asks_for_id_and_state_of_those_ids_in_the_folder() -> None:
    rows = [{"Id": 11, "State": "Running"}, {"Id": 12, "State": "Successful"}]
    server = FakeOrchestrator(folder_list(1, KEY_BEFORE), jobs={"@odata.count": 2, "value": rows})
    api = api_over(server)

    states = await api.job_states("Finance", [11, 12, 13])

    assert states == {11: JobState.RUNNING, 12: JobState.SUCCESSFUL}  # 13: not listed
    (call,) = server.sender.sent_to(BASE + "/odata/Jobs")
    assert call.params == {"$filter": "Id in (11,12,13)", "$select": "Id,State", "$top": "1000"}
    assert call.headers["X-UIPATH-FolderKey"] == KEY_BEFORE


async def test_unfinished_jobs_asks_one_page_of_unfinished_jobs_in_the_id_range() -> None:
    rows = [{"Id": 14, "State": "Pending"}, {"Id": 12, "State": "Running"}]
    server = FakeOrchestrator(folder_list(1, KEY_BEFORE), jobs={"value": rows})
    api = api_over(server)

    unfinished = await api.unfinished_jobs("Finance", 11, 20, top=2, also=[3])

    assert unfinished == RangeAnswer(
        [(12, JobState.RUNNING), (14, JobState.PENDING)], received=2
    )  # by Id
    (call,) = server.sender.sent_to(BASE + "/odata/Jobs")
    states = ("Pending", "Running", "Stopping", "Terminating", "Suspended", "Resumed")
    wanted = " or ".join(f"State eq '{state}'" for state in states)
    assert call.params == {
        "$filter": f"(Id in (3) or (Id ge 11 and Id le 20)) and ({wanted})",
        "$select": "Id,State",
        "$orderby": "Id asc",
        "$top": "2",
    }
    assert call.headers["X-UIPATH-FolderKey"] == KEY_BEFORE


def test_the_planner_knows_the_states_a_range_query_asks_for() -> None:
    # A job in another state is never a row: the planner reads it by id instead.
    assert {JobState(state) for state in _UNFINISHED_STATES} == _RANGE_LISTED


@pytest.mark.parametrize(
    ("extra", "cut"),
    [
        ({}, False),
        ({"@odata.nextLink": BASE + "/odata/Jobs?$skip=2"}, True),  # server-driven paging
        ({"@odata.count": 5}, True),  # more match than the 2 rows
        ({"@odata.count": 2}, False),  # all of them
        ({"@odata.nextLink": None}, False),
        ({"@odata.count": True}, False),  # not a count
    ],
)
async def test_unfinished_jobs_says_when_the_server_cut_the_page(
    extra: dict[str, Any], cut: bool
) -> None:
    rows = [{"Id": 12, "State": "Running"}, {"Id": 14, "State": "Pending"}]
    server = FakeOrchestrator(folder_list(1, KEY_BEFORE), jobs={**extra, "value": rows})
    api = api_over(server)

    answer = await api.unfinished_jobs("Finance", 11, 20, top=1000)

    assert answer == RangeAnswer(
        [(12, JobState.RUNNING), (14, JobState.PENDING)], cut=cut, received=2
    )


async def test_unfinished_jobs_names_the_rows_it_could_not_read() -> None:
    # Rows without a usable State are left out; their Ids say the jobs were listed.
    rows = [{"Id": 12, "State": None}, {"Id": 13}, {"Id": 14, "State": "Pending"},
            {"State": "Running"}, {"Id": "15"}]  # fmt: skip
    server = FakeOrchestrator(folder_list(1, KEY_BEFORE), jobs={"value": rows})
    api = api_over(server)

    answer = await api.unfinished_jobs("Finance", 11, 20, top=1000)

    assert answer == RangeAnswer([(14, JobState.PENDING)], received=5, unreadable=(12, 13))


async def test_ended_jobs_asks_one_page_of_final_jobs_in_the_id_range_ordered_by_id() -> None:
    rows = [{"Id": 14, "State": "Faulted"}, {"Id": 12, "State": "Successful"}]
    server = FakeOrchestrator(folder_list(1, KEY_BEFORE), jobs={"value": rows})
    api = api_over(server)

    ended = await api.ended_jobs("Finance", 11, 20, top=2)
    await api.ended_jobs("Finance", 11, 20, top=1000, also=[3, 5])

    assert ended == [(12, JobState.SUCCESSFUL), (14, JobState.FAULTED)]  # sorted by Id
    plain, with_stragglers = server.sender.sent_to(BASE + "/odata/Jobs")  # one call each
    final = "(State eq 'Successful' or State eq 'Faulted' or State eq 'Stopped')"
    assert plain.params == {
        "$filter": f"(Id ge 11 and Id le 20) and {final}",
        "$select": "Id,State",
        "$orderby": "Id asc",
        "$top": "2",
    }
    assert plain.headers["X-UIPATH-FolderKey"] == KEY_BEFORE
    assert with_stragglers.params is not None
    expected = f"(Id in (3,5) or (Id ge 11 and Id le 20)) and {final}"
    assert with_stragglers.params["$filter"] == expected
