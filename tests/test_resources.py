"""OrchestratorAPI at the wire: the folder cache (a reloaded folder list is what
later lookups see) and the exact query that watches jobs' states.

aioresponses stands in for Orchestrator; the folder list it serves changes
between calls, as it does when folders are recreated.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
from aioresponses import CallbackResult, aioresponses

from async_orch.config import Settings, StaticToken
from async_orch.resources import OrchestratorAPI
from async_orch.states import JobState
from async_orch.transport import Transport

BASE = "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_"
FOLDERS = re.compile(re.escape(BASE + "/odata/Folders") + r"(\?.*)?$")
JOBS = re.compile(re.escape(BASE + "/odata/Jobs") + r"\?.*$")
KEY_BEFORE = "0f8fad5b-d9cb-469f-a165-70867728950e"
KEY_AFTER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def folder_list(folder_id: int, key: str) -> dict[str, Any]:
    row = {"Id": folder_id, "Key": key, "DisplayName": "Finance", "FullyQualifiedName": "Finance"}
    return {"value": [row]}


@pytest.fixture
async def api() -> AsyncIterator[OrchestratorAPI]:
    settings = Settings(url=BASE, credentials=StaticToken(token="pat"))
    async with aiohttp.ClientSession() as session:
        yield OrchestratorAPI(Transport(settings, session=session))


@pytest.fixture
def mock() -> Any:
    with aioresponses() as m:
        yield m


def folder_calls(mock: Any) -> int:
    return sum(
        len(items) for (method, url), items in mock.requests.items() if "Folders" in str(url)
    )


async def test_a_folder_is_looked_up_in_the_reloaded_list(api: OrchestratorAPI, mock: Any) -> None:
    mock.get(FOLDERS, payload=folder_list(1, KEY_BEFORE))
    mock.get(FOLDERS, payload=folder_list(7, KEY_AFTER))  # Finance was recreated

    assert (await api.resolve_folder("Finance")).id == 1
    assert (await api.resolve_folder("Finance")).id == 1
    assert folder_calls(mock) == 1  # the second lookup used the cached list

    await api.list_folders(refresh=True)
    assert (await api.resolve_folder("Finance")).key == KEY_AFTER
    assert api.folder_headers(await api.resolve_folder("Finance")) == {
        "X-UIPATH-FolderKey": KEY_AFTER
    }
    assert folder_calls(mock) == 2


async def test_a_lookup_during_a_reload_waits_for_the_new_list(
    api: OrchestratorAPI, mock: Any
) -> None:
    reload_sent = anyio.Event()
    release_reload = anyio.Event()

    async def slow_reload(url: Any, **kwargs: Any) -> CallbackResult:
        reload_sent.set()
        await release_reload.wait()
        return CallbackResult(payload=folder_list(7, KEY_AFTER))

    mock.get(FOLDERS, payload=folder_list(1, KEY_BEFORE))
    mock.get(FOLDERS, callback=slow_reload)
    assert (await api.resolve_folder("Finance")).id == 1

    found: list[int] = []

    async def look_up() -> None:
        found.append((await api.resolve_folder("Finance")).id)

    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(api.list_folders, refresh=True))
        await reload_sent.wait()
        tg.start_soon(look_up)
        await anyio.wait_all_tasks_blocked()
        assert found == []  # not answered from the list being replaced
        release_reload.set()
    assert found == [7]


async def test_job_states_asks_for_id_and_state_of_those_ids_in_the_folder(
    api: OrchestratorAPI, mock: Any
) -> None:
    mock.get(FOLDERS, payload=folder_list(1, KEY_BEFORE))
    rows = [{"Id": 11, "State": "Running"}, {"Id": 12, "State": "Successful"}]
    mock.get(JOBS, payload={"@odata.count": 2, "value": rows})

    states = await api.job_states("Finance", [11, 12, 13])

    assert states == {11: JobState.RUNNING, 12: JobState.SUCCESSFUL}  # 13: not listed
    ((_, url), calls), *_ = [(k, v) for k, v in mock.requests.items() if "Jobs" in str(k[1])]
    assert url.query == {"$filter": "Id in (11,12,13)", "$select": "Id,State", "$top": "1000"}
    assert calls[0].kwargs["headers"]["X-UIPATH-FolderKey"] == KEY_BEFORE
