"""Every resource call, end to end: OrchestratorAPI over a real Transport, against the simulator.

The simulator runs on a :class:`FakeClock` shared with the client, so jobs move
(pick-up, run, stop) and rate-limit windows roll only when a test advances the
clock; Retry-After waits go through an injected ``sleep``. The simulator's real
error bodies are mapped through the client's error tree, and a few answers are
checked against UiPath's OpenAPI description on the way.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from conftest import FakeClock
from openapi_contract import validate_response

from async_orch._config import DEFAULT_SCOPES, ClientCredentials, RetryPolicy, Settings
from async_orch._errors import (
    BadRequestError,
    FolderNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    ProcessNotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from async_orch._models import Folder, StartRequest
from async_orch._protocol import folder_headers
from async_orch._resources import OrchestratorAPI
from async_orch._states import JobState
from async_orch._transport import Transport
from async_orch.simulator import Scenario, SimulatorHandle, parse_scenario

StartSimulator = Callable[..., Awaitable[SimulatorHandle]]

NON_ASCII = "Finance/Comptabilité"
NON_ASCII_PROCESSES = ["Echo", "InvoiceProcessing", "RapprochementBancaire"]
START_JOBS = "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
APP = ("app", "app-secret")  # the full app of small_scenario
WORK = 10.0  # simulated seconds in which any Echo job is picked up (2 s) and done (<= 2 s)


# -- helpers -------------------------------------------------------------------------------


async def no_wait_expected(seconds: float) -> None:
    """The default ``sleep``: a retry nobody planned for fails the test at once."""
    raise AssertionError(f"unexpected retry wait of {seconds:.2f} s")


@asynccontextmanager
async def connect(
    sim: SimulatorHandle,
    clock: FakeClock,
    *,
    app: tuple[str, str] | None = None,
    scopes: str = DEFAULT_SCOPES,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> AsyncIterator[tuple[OrchestratorAPI, Transport]]:
    """An OrchestratorAPI on a Transport with client credentials, on the shared clock.

    ``app`` is (client id, client secret); the scenario's first application by default.
    """
    client_id, client_secret = app or (sim.client_id, sim.client_secret)
    credentials = ClientCredentials(client_id=client_id, client_secret=client_secret, scopes=scopes)
    settings = Settings(url=sim.url, credentials=credentials, retry=retry or RetryPolicy())
    async with Transport(settings, clock=clock, sleep=sleep or no_wait_expected) as transport:
        yield OrchestratorAPI(transport), transport


@pytest.fixture
async def demo(
    simulator: SimulatorHandle, fake_clock: FakeClock
) -> AsyncIterator[tuple[OrchestratorAPI, Transport]]:
    async with connect(simulator, fake_clock) as pair:
        yield pair


def small_scenario(*, jobs_list: int = 100, window: int = 60) -> Scenario:
    """acme/Prod: one folder, a full app and one that may only read folders."""
    return parse_scenario(
        f"""
        [[tenants]]
        organization = "acme"
        name = "Prod"

        [tenants.rate_limit]
        jobs_list = {jobs_list}
        window_seconds = {window}

        [[tenants.credentials]]
        client_id = "app"
        client_secret = "app-secret"
        scopes = ["OR.Folders.Read", "OR.Execution.Read", "OR.Jobs"]

        [[tenants.credentials]]
        client_id = "folders-only"
        client_secret = "folders-only-secret"
        scopes = ["OR.Folders.Read"]

        [[tenants.processes]]
        name = "Echo"
        duration = 1

        [[tenants.folders]]
        path = "Shared"
        """,
        name="small",
    )


def sim_stats(sim: SimulatorHandle) -> dict[str, Any]:
    stats: dict[str, Any] = sim.simulator.stats()
    return stats


def content_type(response: Any) -> str:
    return str(response.headers.get("Content-Type", "application/json"))


# -- folders -------------------------------------------------------------------------------


async def test_list_folders_reads_the_tree_once_and_refreshes_on_demand(
    demo: tuple[OrchestratorAPI, Transport],
) -> None:
    api, transport = demo
    folders = await api.list_folders()
    by_path = {f.fully_qualified_name: f for f in folders}
    assert sorted(by_path) == ["Finance", NON_ASCII, "HR", "Shared"]
    child, parent = by_path[NON_ASCII], by_path["Finance"]
    assert (child.display_name, child.parent_id, child.parent_key) == (
        "Comptabilité",
        parent.id,
        parent.key,
    )
    assert all(f.key for f in folders)

    assert await api.list_folders() == folders
    assert transport.stats.count("GET Folders", 200) == 1  # cached
    assert await api.list_folders(refresh=True) == folders
    assert transport.stats.count("GET Folders", 200) == 2


@pytest.mark.parametrize(
    "how", ["path", "path, other case", "path with slashes", "key", "id", "id as text", "object"]
)
async def test_resolve_folder_by_path_key_or_id(
    demo: tuple[OrchestratorAPI, Transport], how: str
) -> None:
    api, _ = demo
    target = next(f for f in await api.list_folders() if f.fully_qualified_name == NON_ASCII)
    refs: dict[str, int | str | Folder] = {
        "path": NON_ASCII,
        "path, other case": NON_ASCII.upper(),
        "path with slashes": f"/{NON_ASCII}/",
        "key": str(target.key).upper(),
        "id": target.id,
        "id as text": str(target.id),
        "object": target,
    }
    assert await api.resolve_folder(refs[how]) == target


async def test_unknown_folder_is_folder_not_found_with_close_names(
    demo: tuple[OrchestratorAPI, Transport],
) -> None:
    api, transport = demo
    with pytest.raises(FolderNotFoundError) as caught:
        await api.resolve_folder("Finance/Compta")
    assert caught.value.candidates[0] == NON_ASCII
    assert "full path" in str(caught.value)
    # Looked once more in case the folder was created after the cache was filled.
    assert transport.stats.count("GET Folders", 200) == 2

    with pytest.raises(FolderNotFoundError) as caught:
        await api.resolve_folder(999)
    assert sorted(caught.value.candidates) == ["Finance", NON_ASCII, "HR", "Shared"]


@pytest.mark.parametrize(
    ("form", "header"),
    [
        ("id", "X-UIPATH-OrganizationUnitId"),
        ("key", "X-UIPATH-FolderKey"),
        ("encoded path", "X-UIPATH-FolderPath-Encoded"),
    ],
)
async def test_every_folder_header_form_reaches_the_non_ascii_folder(
    demo: tuple[OrchestratorAPI, Transport], form: str, header: str
) -> None:
    api, transport = demo
    folder = await api.resolve_folder(NON_ASCII)
    values: dict[str, int | str] = {
        "id": folder.id,
        "key": str(folder.key),
        "encoded path": NON_ASCII,
    }
    headers = folder_headers(values[form])
    assert list(headers) == [header]
    if form == "encoded path":
        # Base64 of UTF-16LE, as the official SDK sends it (header values are ASCII).
        assert base64.b64decode(headers[header]).decode("utf-16-le") == NON_ASCII

    response = await transport.request("GET", "odata/Releases", headers=headers)
    assert sorted(r["Name"] for r in response.json()["value"]) == NON_ASCII_PROCESSES


async def test_plain_folder_path_header_for_ascii_paths(
    demo: tuple[OrchestratorAPI, Transport],
) -> None:
    _, transport = demo
    headers = folder_headers("Finance/")  # a trailing "/" is dropped, as the docs require
    assert headers == {"X-UIPATH-FolderPath": "Finance"}
    response = await transport.request("GET", "odata/Releases", headers=headers)
    assert sorted(r["Name"] for r in response.json()["value"]) == ["Echo", "InvoiceProcessing"]


async def test_resources_address_resolved_folders_by_key_or_else_by_id(
    demo: tuple[OrchestratorAPI, Transport],
) -> None:
    api, _ = demo
    folder = await api.resolve_folder(NON_ASCII)
    assert api.folder_headers(folder) == {"X-UIPATH-FolderKey": folder.key}
    # A folder known only by Id (say, from a job's OrganizationUnitId) still works.
    keyless = Folder(id=folder.id, display_name="?", fully_qualified_name="?")
    assert api.folder_headers(keyless) == {"X-UIPATH-OrganizationUnitId": str(folder.id)}
    release = await api.resolve_release(keyless, "RapprochementBancaire")
    assert release.folder_id == folder.id


# -- releases ------------------------------------------------------------------------------


async def test_resolve_release_by_name_or_key_is_cached(
    demo: tuple[OrchestratorAPI, Transport],
) -> None:
    api, transport = demo
    by_name = await api.resolve_release(NON_ASCII, "Echo")
    assert (by_name.name, by_name.folder_name) == ("Echo", NON_ASCII)
    assert await api.resolve_release(NON_ASCII, "Echo") is by_name
    assert transport.stats.count("GET Releases", 200) == 1

    by_key = await api.resolve_release(NON_ASCII, by_name.key)
    assert by_key == by_name
    # The same process name in another folder is another release.
    other = await api.resolve_release("Shared", "Echo")
    assert (other.folder_name, other.key != by_name.key) == ("Shared", True)


async def test_unknown_process_is_process_not_found_with_close_names(
    demo: tuple[OrchestratorAPI, Transport],
) -> None:
    api, _ = demo
    with pytest.raises(ProcessNotFoundError) as caught:
        await api.resolve_release(NON_ASCII, "Rapprochement Bancaire")
    assert caught.value.candidates[0] == "RapprochementBancaire"  # the closest first
    assert NON_ASCII in str(caught.value)

    with pytest.raises(ProcessNotFoundError) as caught:
        await api.resolve_release("HR", "InvoiceProcessing")  # lives in Finance only
    assert "EmployeeOnboarding" in caught.value.candidates


# -- jobs ----------------------------------------------------------------------------------


async def test_start_jobs_creates_pending_jobs_with_reference_and_inputs(
    demo: tuple[OrchestratorAPI, Transport], simulator: SimulatorHandle
) -> None:
    api, _ = demo
    release = await api.resolve_release(NON_ASCII, "Echo")
    inputs = {"Client": "Société Générale", "Montant": 12.5, "Lignes": [1, 2]}
    jobs = await api.start_jobs(
        NON_ASCII,
        StartRequest(
            release_key=release.key, jobs_count=3, reference="batch-é'1", input_arguments=inputs
        ),
    )
    assert len(jobs) == 3 and len({j.id for j in jobs}) == 3
    assert {j.state for j in jobs} == {JobState.PENDING}
    assert {j.reference for j in jobs} == {"batch-é'1"}
    assert all(j.input_arguments == inputs for j in jobs)
    assert {(j.release_name, j.folder_id) for j in jobs} == {("Echo", release.folder_id)}
    assert len({j.batch_execution_key for j in jobs}) == 1
    assert sim_stats(simulator)["jobs"]["by_reference"] == {"batch-é'1": 3}


async def test_get_job_parses_output_arguments_once_the_job_has_finished(
    demo: tuple[OrchestratorAPI, Transport], fake_clock: FakeClock
) -> None:
    api, _ = demo
    (job,) = await api.start_jobs(
        NON_ASCII, StartRequest(release_name="Echo", input_arguments={"Nom": "Zoë", "N": 3})
    )
    pending = await api.get_job(NON_ASCII, job.id)
    assert (pending.state, pending.output_arguments) == (JobState.PENDING, None)

    fake_clock.advance(WORK)
    done = await api.get_job(NON_ASCII, job.id)
    assert done.state is JobState.SUCCESSFUL and done.is_terminal
    assert done.output_arguments == {"Nom": "Zoë", "N": 3}
    assert done.start_time is not None and done.end_time is not None
    assert done.end_time >= done.start_time


async def test_get_job_by_key(
    demo: tuple[OrchestratorAPI, Transport], fake_clock: FakeClock
) -> None:
    api, _ = demo
    (job,) = await api.start_jobs("HR", StartRequest(release_name="Echo", input_arguments={"a": 1}))
    assert job.key is not None
    fake_clock.advance(WORK)
    found = await api.get_job_by_key("HR", job.key)
    assert (found.id, found.state, found.output_arguments) == (
        job.id,
        JobState.SUCCESSFUL,
        {"a": 1},
    )


async def test_list_jobs_by_ids_reference_and_states(
    demo: tuple[OrchestratorAPI, Transport], fake_clock: FakeClock
) -> None:
    api, transport = demo
    first = await api.start_jobs(
        "Shared", StartRequest(release_name="Echo", jobs_count=2, reference="r-1")
    )
    (second,) = await api.start_jobs(
        "Shared", StartRequest(release_name="Echo", reference="O'Brien")
    )
    (elsewhere,) = await api.start_jobs("HR", StartRequest(release_name="Echo", reference="r-1"))
    ids = [j.id for j in first]

    assert sorted(j.id for j in await api.list_jobs("Shared", ids=ids)) == ids
    assert [j.id for j in await api.list_jobs("Shared", reference="O'Brien")] == [second.id]
    # Folder-scoped: the job with the same Reference in HR is not listed.
    assert sorted(j.id for j in await api.list_jobs("Shared", reference="r-1")) == ids
    assert [j.id for j in await api.list_jobs("HR", reference="r-1")] == [elsewhere.id]

    pending = await api.list_jobs("Shared", states=["Pending"])
    assert len(pending) == 3
    assert pending[0].output_arguments is None  # the list never carries arguments

    fake_clock.advance(WORK)
    done = await api.list_jobs("Shared", ids=[*ids, second.id], states=["Successful", "Faulted"])
    assert sorted(j.id for j in done) == sorted([*ids, second.id])
    assert await api.list_jobs("Shared", states=["Pending", "Running"]) == []

    assert len(await api.list_jobs("Shared", top=2)) == 2
    slim = await api.list_jobs("Shared", ids=ids, select=["Id", "State"])
    assert {(j.state, j.reference) for j in slim} == {(JobState.SUCCESSFUL, None)}

    before = transport.stats.count("GET Jobs", 200)
    assert await api.list_jobs("Shared", ids=[]) == []
    assert transport.stats.count("GET Jobs", 200) == before  # nothing to ask


async def test_job_states_reads_only_id_and_state_of_the_jobs_asked_about(
    demo: tuple[OrchestratorAPI, Transport], fake_clock: FakeClock
) -> None:
    api, transport = demo
    jobs = await api.start_jobs("Shared", StartRequest(release_name="Echo", jobs_count=3))
    (other,) = await api.start_jobs("HR", StartRequest(release_name="Echo"))
    ids = [j.id for j in jobs]

    assert await api.job_states("Shared", ids[:2]) == dict.fromkeys(ids[:2], JobState.PENDING)
    fake_clock.advance(WORK)
    # A job of another folder is not in this folder's list: it is left out.
    assert await api.job_states("Shared", [*ids, other.id]) == dict.fromkeys(
        ids, JobState.SUCCESSFUL
    )
    before = transport.stats.count("GET Jobs", 200)
    assert await api.job_states("Shared", []) == {}
    assert transport.stats.count("GET Jobs", 200) == before  # nothing to ask


async def test_ended_jobs_returns_the_final_jobs_of_an_id_range_in_order(
    demo: tuple[OrchestratorAPI, Transport], fake_clock: FakeClock
) -> None:
    api, transport = demo
    jobs = await api.start_jobs("Shared", StartRequest(release_name="Echo", jobs_count=5))
    (other,) = await api.start_jobs("HR", StartRequest(release_name="Echo"))
    ids = sorted(j.id for j in jobs)
    low, high = ids[1], max(ids[-1], other.id)

    assert await api.ended_jobs("Shared", low, high, top=1000) == []  # none ended yet
    fake_clock.advance(WORK)
    # Only this folder's jobs, only those within the range, ordered by Id.
    assert await api.ended_jobs("Shared", low, high, top=1000) == [
        (i, JobState.SUCCESSFUL) for i in ids[1:]
    ]
    assert await api.ended_jobs("Shared", low, high, top=2) == [
        (i, JobState.SUCCESSFUL) for i in ids[1:3]
    ]
    # Jobs below the range named by id: the simulator serves the combined filter.
    assert await api.ended_jobs("Shared", ids[3], high, top=1000, also=[ids[0]]) == [
        (i, JobState.SUCCESSFUL) for i in (ids[0], *ids[3:])
    ]
    assert transport.stats.count("GET Jobs", 200) == 4  # one call each, no paging


async def test_unfinished_jobs_returns_the_jobs_of_an_id_range_not_ended_yet(
    demo: tuple[OrchestratorAPI, Transport], fake_clock: FakeClock
) -> None:
    api, transport = demo
    jobs = await api.start_jobs("Shared", StartRequest(release_name="Echo", jobs_count=5))
    (other,) = await api.start_jobs("HR", StartRequest(release_name="Echo"))
    ids = sorted(j.id for j in jobs)
    low, high = ids[1], max(ids[-1], other.id)

    # Only this folder's jobs, only those within the range (or named), by Id.
    unfinished = (await api.unfinished_jobs("Shared", low, high, top=1000)).rows
    assert [i for i, _ in unfinished] == ids[1:]
    assert {state for _, state in unfinished} <= {JobState.PENDING, JobState.RUNNING}
    page = await api.unfinished_jobs("Shared", ids[3], high, top=2, also=[ids[0]])
    assert [i for i, _ in page.rows] == [ids[0], ids[3]]
    assert not page.cut  # the simulator cuts no page below $top
    fake_clock.advance(WORK)
    assert (await api.unfinished_jobs("Shared", low, high, top=1000)).rows == []  # all ended
    assert transport.stats.count("GET Jobs", 200) == 3  # one call each, no paging


async def test_list_jobs_follows_pages_past_the_maximum_top(
    demo: tuple[OrchestratorAPI, Transport],
) -> None:
    api, transport = demo
    started = await api.start_jobs("HR", StartRequest(release_name="Echo", jobs_count=1001))
    listed = await api.list_jobs("HR")
    assert sorted(j.id for j in listed) == sorted(j.id for j in started)
    assert transport.stats.count("GET Jobs", 200) == 2  # $top=1000, then $skip=1000


async def test_stop_jobs_soft_stop_and_kill(
    demo: tuple[OrchestratorAPI, Transport], fake_clock: FakeClock
) -> None:
    api, _ = demo
    # DailyReport runs for 20 to 60 simulated seconds: long enough to be stopped.
    soft, kill = await api.start_jobs(
        "Shared", StartRequest(release_name="DailyReport", jobs_count=2)
    )
    fake_clock.advance(3)  # picked up after 2 s
    assert {(await api.get_job("Shared", j.id)).state for j in (soft, kill)} == {JobState.RUNNING}

    await api.stop_jobs("Shared", [soft.id])  # SoftStop: the workflow is asked to stop
    await api.stop_jobs("Shared", [kill.id], strategy="Kill")
    assert (await api.get_job("Shared", soft.id)).state is JobState.STOPPING
    assert (await api.get_job("Shared", kill.id)).state is JobState.TERMINATING

    fake_clock.advance(1.5)  # a kill takes 1 s, a soft stop 5 s
    killed = await api.get_job("Shared", kill.id)
    assert (killed.state, killed.info) == (JobState.STOPPED, "Job was killed.")
    assert (await api.get_job("Shared", soft.id)).state is JobState.STOPPING

    fake_clock.advance(5)
    stopped = await api.get_job("Shared", soft.id)
    assert (stopped.state, stopped.output_arguments) == (JobState.STOPPED, None)

    # Stopping is idempotent, so the call may be repeated (and retried).
    await api.stop_jobs("Shared", [soft.id, kill.id], strategy="Kill")
    await api.stop_jobs("Shared", [])
    with pytest.raises(ValueError, match="SoftStop"):
        await api.stop_jobs("Shared", [soft.id], strategy="Stop")


async def test_stopping_a_pending_job_stops_it_at_once(
    demo: tuple[OrchestratorAPI, Transport],
) -> None:
    api, _ = demo
    (job,) = await api.start_jobs("HR", StartRequest(release_name="Echo"))
    await api.stop_jobs("HR", [job.id])
    assert (await api.get_job("HR", job.id)).state is JobState.STOPPED


# -- error mapping, with the simulator's own error bodies ------------------------------------


async def test_request_without_folder_header_is_bad_request_1101(
    demo: tuple[OrchestratorAPI, Transport],
) -> None:
    _, transport = demo
    with pytest.raises(BadRequestError) as caught:
        await transport.request("GET", "odata/Releases")
    error = caught.value
    assert (error.status, error.error_code) == (400, 1101)
    assert error.message == "An organization unit is required for this action."
    assert error.trace_id  # the server's traceId, for UiPath support
    assert transport.stats.count("odata/Releases", 400) == 1  # not retried


async def test_unknown_folder_in_a_header_is_bad_request(
    demo: tuple[OrchestratorAPI, Transport],
) -> None:
    _, transport = demo
    with pytest.raises(BadRequestError) as caught:
        await transport.request("GET", "odata/Releases", headers=folder_headers("Nowhere"))
    assert "does not exist" in caught.value.message


async def test_missing_scope_is_permission_denied(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    sim = await start_simulator(small_scenario(), clock=fake_clock)
    async with connect(
        sim,
        fake_clock,
        app=("folders-only", "folders-only-secret"),
        scopes="OR.Folders.Read",
    ) as (api, transport):
        assert [f.fully_qualified_name for f in await api.list_folders()] == ["Shared"]
        with pytest.raises(PermissionDeniedError) as caught:
            await api.resolve_release("Shared", "Echo")
        with pytest.raises(PermissionDeniedError):
            await api.start_jobs("Shared", StartRequest(release_name="Echo"))
    assert caught.value.status == 403
    assert "OR.Execution or OR.Execution.Read" in caught.value.message
    assert transport.stats.retries == 0
    assert sim_stats(sim)["rejections"]["403"] == 2
    assert sim_stats(sim)["jobs"]["created"] == 0


async def test_read_only_application_cannot_start_jobs(
    simulator: SimulatorHandle, fake_clock: FakeClock
) -> None:
    async with connect(
        simulator,
        fake_clock,
        app=("demo-readonly", "demo-readonly-secret"),
        scopes="OR.Folders.Read OR.Execution.Read OR.Jobs.Read",
    ) as (api, _):
        assert (await api.resolve_release("HR", "Echo")).name == "Echo"
        assert await api.list_jobs("HR") == []
        with pytest.raises(PermissionDeniedError, match=r"OR\.Jobs or OR\.Jobs\.Write"):
            await api.start_jobs("HR", StartRequest(release_name="Echo"))


async def test_unknown_job_is_not_found(demo: tuple[OrchestratorAPI, Transport]) -> None:
    api, _ = demo
    with pytest.raises(NotFoundError) as caught:
        await api.get_job("Shared", 1)
    assert (caught.value.status, caught.value.error_code) == (404, 1002)

    # A job exists only in its own folder.
    (job,) = await api.start_jobs("HR", StartRequest(release_name="Echo"))
    with pytest.raises(NotFoundError):
        await api.get_job("Shared", job.id)
    with pytest.raises(NotFoundError):
        await api.get_job_by_key("Shared", str(job.key))
    with pytest.raises(NotFoundError):
        await api.stop_jobs("Shared", [job.id])


async def test_rate_limit_still_exhausted_after_the_retries_is_rate_limited_error(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    sim = await start_simulator(small_scenario(jobs_list=2, window=30), clock=fake_clock)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)  # the clock does not move: the window stays full

    retry = RetryPolicy(attempts=3)
    async with connect(sim, fake_clock, app=APP, retry=retry, sleep=sleep) as (api, transport):
        await api.list_jobs("Shared")
        await api.list_jobs("Shared")
        with pytest.raises(RateLimitedError) as caught:
            await api.list_jobs("Shared")
    error = caught.value
    assert (error.status, error.retry_after) == (429, 30.0)
    assert "stayed exhausted after 3 tries" in str(error)
    assert "limited to 2 calls per 30 seconds" in error.message  # the server's own words
    assert waits == [30.0, 30.0]  # Retry-After honoured between the tries
    assert transport.stats.rate_limited == 3
    assert sim_stats(sim)["rejections"]["429"] == 3


async def test_rate_limited_call_succeeds_once_the_window_has_rolled(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    sim = await start_simulator(small_scenario(jobs_list=1, window=30), clock=fake_clock)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        fake_clock.advance(seconds)

    async with connect(sim, fake_clock, app=APP, sleep=sleep) as (api, transport):
        (job,) = await api.start_jobs("Shared", StartRequest(release_name="Echo"))
        assert [j.id for j in await api.list_jobs("Shared")] == [job.id]
        # GET /odata/Jobs({id}) is not rate limited: reading known jobs never waits.
        for _ in range(3):
            assert (await api.get_job("Shared", job.id)).id == job.id
        assert waits == []
        assert [j.id for j in await api.list_jobs("Shared")] == [job.id]
    assert waits == [30.0]
    assert transport.stats.count("GET Jobs", 429) == 1
    assert sim_stats(sim)["rejections"]["429"] == 1


async def test_retry_after_beyond_the_maximum_gives_up_at_once(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    sim = await start_simulator(small_scenario(jobs_list=1, window=600), clock=fake_clock)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with connect(sim, fake_clock, app=APP, sleep=sleep) as (api, _):
        await api.list_jobs("Shared")
        with pytest.raises(RateLimitedError) as caught:
            await api.list_jobs("Shared")
    assert caught.value.retry_after == 600.0
    assert "longer than RetryPolicy.retry_after_max" in str(caught.value)
    assert waits == []


async def test_start_jobs_is_never_retried_once_it_may_have_reached_the_server(
    demo: tuple[OrchestratorAPI, Transport],
    simulator: SimulatorHandle,
    http: aiohttp.ClientSession,
) -> None:
    api, transport = demo
    admin = f"{simulator.root_url}/_simulator/faults"
    async with http.post(
        admin,
        json={"ambiguous_start_rate": 1.0, "ambiguous_start_mode": "504"},
        headers=simulator.admin_headers,
    ):
        pass
    with pytest.raises(ServerError) as caught:
        await api.start_jobs("HR", StartRequest(release_name="Echo", reference="maybe-1"))
    assert caught.value.status == 504

    async with http.post(
        admin, json={"ambiguous_start_mode": "drop"}, headers=simulator.admin_headers
    ):
        pass
    with pytest.raises(TransportError) as dropped:
        await api.start_jobs("HR", StartRequest(release_name="Echo", reference="maybe-2"))
    assert dropped.value.may_have_reached_server

    # One call each, and the jobs exist: the caller looks them up by Reference.
    assert transport.stats.count("POST StartJobs", 504) == 1
    assert transport.stats.count("POST StartJobs", "error") == 1
    assert transport.stats.retries == 0
    assert sim_stats(simulator)["jobs"]["by_reference"] == {"maybe-1": 1, "maybe-2": 1}
    assert [j.reference for j in await api.list_jobs("HR", reference="maybe-2")] == ["maybe-2"]


async def test_server_errors_on_reads_are_retried(
    simulator: SimulatorHandle, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # the service recovers after the second failure
            async with http.post(
                f"{simulator.root_url}/_simulator/faults",
                json={"clear": True},
                headers=simulator.admin_headers,
            ) as response:
                assert response.status == 200

    async with connect(simulator, fake_clock, sleep=sleep) as (api, transport):
        await api.list_folders()  # the token first, while all is well
        async with http.post(
            f"{simulator.root_url}/_simulator/faults",
            json={"server_error_rate": 1.0, "server_error_statuses": [502, 503]},
            headers=simulator.admin_headers,
        ):
            pass
        assert len(await api.list_folders(refresh=True)) == 4
    assert len(waits) == 2 and transport.stats.retries == 2


# -- the contract, on the way --------------------------------------------------------------


async def test_answers_the_client_reads_match_the_openapi_description(
    demo: tuple[OrchestratorAPI, Transport], fake_clock: FakeClock
) -> None:
    api, transport = demo
    folder = await api.resolve_folder(NON_ASCII)
    headers = api.folder_headers(folder)
    release = await api.resolve_release(folder, "Echo")

    folders = await transport.request("GET", "odata/Folders", params={"$top": 1000})
    validate_response(
        "GET", "/odata/Folders", 200, folders.json(), content_type=content_type(folders)
    )
    releases = await transport.request(
        "GET", "odata/Releases", headers=headers, params={"$filter": "Name eq 'Echo'"}
    )
    validate_response(
        "GET", "/odata/Releases", 200, releases.json(), content_type=content_type(releases)
    )

    body = StartRequest(
        release_key=release.key, reference="contract", input_arguments={"x": 1}
    ).to_api()
    started = await transport.request(
        "POST", START_JOBS, json=body, headers=headers, idempotent=False
    )
    assert started.status == 201
    validate_response(
        "POST", f"/{START_JOBS}", 201, started.json(), content_type=content_type(started)
    )

    job_id = started.json()["value"][0]["Id"]
    fake_clock.advance(WORK)
    job = await transport.request("GET", f"odata/Jobs({job_id})", headers=headers)
    validate_response(
        "GET", f"/odata/Jobs({job_id})", 200, job.json(), content_type=content_type(job)
    )
    listed = await transport.request(
        "GET", "odata/Jobs", headers=headers, params={"$filter": f"Id in ({job_id})"}
    )
    validate_response("GET", "/odata/Jobs", 200, listed.json(), content_type=content_type(listed))
    assert listed.json()["value"][0]["State"] == "Successful"
