"""Folder access per external application (issue 14, point 1).

The simulator gives an application only the folders its scenario assigns it (and
their subfolders); any other folder answers 400 with errorCode 1100, the way the
real service answers a folder that does not exist (orchestrator-api.md §8). The
client turns that into a FolderNotFoundError that names the folder and the fix,
before any job of that folder is started; the other folders go on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from cli_harness import cli_env, run_cli
from conftest import aioresponses_mock
from test_dispatcher_support import START_JOBS, fast_poll, fast_settings, requests_to

from async_orch._client import OrchestratorClient
from async_orch._config import ClientCredentials, Settings
from async_orch._dispatcher import Started, StartFailure
from async_orch._errors import ConfigurationError, FolderNotFoundError
from async_orch._jobs import JobHandle, JobRequest, Outcome
from async_orch._limits import DispatchLimits
from async_orch._options import Hooks
from async_orch.simulator import SimulatorHandle, parse_scenario
from async_orch.simulator.tokens import AccessToken

NO_ACCESS = "Folder does not exist or the user does not have access to the folder."

SCENARIO = """
[[tenants]]
organization = "acme"
name = "Prod"

[[tenants.credentials]]
client_id = "wide"
client_secret = "wide-secret"
scopes = ["OR.Folders.Read", "OR.Execution.Read", "OR.Jobs"]

[[tenants.credentials]]
client_id = "finance-app"
client_secret = "finance-secret"
scopes = ["OR.Default"]
folders = ["Finance"]

[[tenants.processes]]
name = "Echo"
duration = 1
outputs = "echo"

[[tenants.folders]]
path = "Shared"

[[tenants.folders]]
path = "Finance"

[[tenants.folders]]
path = "Finance/AP"

[[tenants.folders]]
path = "HR"
"""


@pytest.fixture
async def sim(start_simulator: Callable[..., Any]) -> SimulatorHandle:
    handle: SimulatorHandle = await start_simulator(
        parse_scenario(SCENARIO, name="access"), time_scale=50.0
    )
    return handle


async def _token(http: aiohttp.ClientSession, sim: SimulatorHandle, client: str) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": client,
        "client_secret": f"{client.split('-')[0]}-secret",
    }
    async with http.post(f"{sim.root_url}/acme/identity_/connect/token", data=form) as r:
        assert r.status == 200, await r.text()
        token: str = (await r.json())["access_token"]
        return token


async def _get(
    http: aiohttp.ClientSession, sim: SimulatorHandle, token: str, path: str, folder: str = ""
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    if folder:
        headers["X-UIPATH-FolderPath"] = folder
    async with http.get(f"{sim.url}/{path}", headers=headers) as r:
        return r.status, await r.json()


async def test_an_assigned_application_sees_its_folders_and_their_subfolders_only(
    sim: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    narrow = await _token(http, sim, "finance-app")
    status, body = await _get(http, sim, narrow, "odata/Folders")
    assert status == 200
    assert [f["FullyQualifiedName"] for f in body["value"]] == ["Finance", "Finance/AP"]
    status, body = await _get(http, sim, narrow, "api/FoldersNavigation/GetFoldersForCurrentUser")
    assert [f["FolderPath"] for f in body["PageItems"]] == ["Finance", "Finance/AP"]

    # OR.Default is enough for a fine-grained application, in its folders.
    for folder in ("Finance", "Finance/AP"):
        status, body = await _get(http, sim, narrow, "odata/Releases", folder)
        assert (status, [r["Name"] for r in body["value"]]) == (200, ["Echo"])
        assert (await _get(http, sim, narrow, "odata/Jobs", folder))[0] == 200

    # Another folder answers like a folder that does not exist: 400, errorCode 1100.
    for path in ("odata/Releases", "odata/Jobs"):
        status, body = await _get(http, sim, narrow, path, "HR")
        assert (status, body["errorCode"], body["message"]) == (400, 1100, NO_ACCESS)

    # An application without an assignment list sees every folder (the default).
    wide = await _token(http, sim, "wide")
    status, body = await _get(http, sim, wide, "odata/Folders")
    assert len(body["value"]) == 4
    assert (await _get(http, sim, wide, "odata/Releases", "HR"))[0] == 200


async def test_jobs_of_an_unassigned_folder_fail_before_any_start_and_others_go_on(
    sim: SimulatorHandle,
) -> None:
    settings = Settings(
        url=sim.url,
        credentials=ClientCredentials(
            client_id="finance-app", client_secret="finance-secret", scopes="OR.Default"
        ),
        retry=fast_settings(sim).retry,
    )
    requests = [
        JobRequest(process="Echo", folder="Finance/AP", inputs={"n": 1}),
        JobRequest(process="Echo", folder="HR", inputs={"n": 2}),
        JobRequest(process="Echo", folder="HR", inputs={"n": 3}),
    ]
    async with OrchestratorClient(settings) as orch:
        outcome = await orch.start_jobs(requests)

    assert [type(o) for o in outcome] == [Started, StartFailure, StartFailure]
    for failure in outcome[1:]:
        assert isinstance(failure, StartFailure)
        error = failure.error
        assert isinstance(error, FolderNotFoundError)
        assert error.name == "HR"
        assert "assign the external application" in str(error)
        assert error.candidates == ["Finance", "Finance/AP"]
    assert requests_to(sim, START_JOBS) == 1  # HR's jobs were never posted


async def test_a_1100_from_a_folder_the_list_showed_names_the_folder_and_the_fix() -> None:
    # The folder list may show a folder the application cannot use (an assignment
    # removed since, or a tenant-wide folder permission): the Releases call then
    # answers 1100, and the client explains it instead of quoting a bare 400.
    base = "https://orch.example.com"
    settings = Settings(url=base, credentials=ClientCredentials(client_id="a", client_secret="s"))
    folder = {"Id": 7, "Key": "6f9f5a34-1b2c-4d5e-8f90-0a1b2c3d4e5f", "DisplayName": "HR",
              "FullyQualifiedName": "HR"}  # fmt: skip
    with aioresponses_mock() as wire:
        wire.post(
            f"{base}/identity/connect/token",
            payload={"access_token": "t", "expires_in": 3600},
        )
        wire.get(f"{base}/odata/Folders?$top=1000", payload={"value": [folder]})
        wire.get(
            f"{base}/odata/Releases?$filter=Name+eq+'Echo'&$top=1000",
            status=400,
            payload={"message": NO_ACCESS, "errorCode": 1100, "traceId": "00-1-2-01"},
        )
        async with OrchestratorClient(settings) as orch:
            with pytest.raises(FolderNotFoundError) as caught:
                await orch.api.resolve_release("HR", "Echo")
    text = str(caught.value)
    assert "'HR' (Id 7)" in text and "errorCode 1100" in text
    assert "assign the external application (or user) to it in Orchestrator" in text


def test_a_scenario_may_assign_only_declared_folders() -> None:
    text = SCENARIO.replace('folders = ["Finance"]', 'folders = ["Finance", "Legal"]')
    with pytest.raises(ConfigurationError, match="unknown: 'Legal'"):
        parse_scenario(text, name="access")


@pytest.mark.slow  # starts a process
async def test_check_lists_the_folders_it_can_and_cannot_see_then_exits_2(
    sim: SimulatorHandle, tmp_path: Path
) -> None:
    env = cli_env(
        tmp_path,
        UIPATH_CLIENT_ID="finance-app",
        UIPATH_CLIENT_SECRET="finance-secret",
        ASYNC_ORCH_SCOPES="OR.Default",
    )
    run = await run_cli(
        "check", "--url", sim.url, "--folder", "Finance/AP", "--folder", "HR",
        "--folder", "Shared", env=env,
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stdout.splitlines()
    assert any(line.split()[:2] == ["ok", "folders"] and "Finance, Finance/AP" in line
               for line in lines)  # fmt: skip
    (fail,) = [line for line in lines if line.strip().startswith("FAIL")]
    assert "cannot see 2 of the 3 folders: 'HR', 'Shared'" in fail
    assert "they can see: Finance, Finance/AP" in fail
    fix = lines[lines.index(fail) + 1].strip()
    assert fix.startswith("fix: if the folder exists, assign the external application")


def unassign_hr_on_start(monkeypatch: pytest.MonkeyPatch) -> Hooks:
    """Hooks that unassign the application from folder HR as soon as a job of the
    batch has started in it: from then on, every call about HR answers 1100."""
    seen_before = AccessToken.sees

    def on_started(index: int, handle: JobHandle) -> None:
        if handle.folder_path == "HR":
            monkeypatch.setattr(
                AccessToken, "sees", lambda self, path: path != "HR" and seen_before(self, path)
            )

    return Hooks(on_started=on_started)


async def test_a_folder_that_becomes_invisible_mid_batch_ends_it_with_the_fix(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unassigned from a folder while its jobs run: every poll answers 1100. The batch
    ends with a FolderNotFoundError naming the folder and the fix, never polls for ever."""
    sim = await start_simulator(time_scale=1.0)
    request = JobRequest(process="Echo", folder="HR")
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with pytest.raises(FolderNotFoundError, match="can no longer read folder 'HR'") as lost:
            await orch.run_jobs([request], hooks=unassign_hr_on_start(monkeypatch))
    assert "assign the external application" in str(lost.value)


async def test_one_folder_of_two_lost_mid_batch_ends_its_jobs_with_the_fix(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only HR is lost: its jobs end with a per-job error naming it and the fix, the
    other folder's jobs end as they do, and the batch finishes (HR was polled for
    ever: every answer about Shared reset the count of refusals)."""
    sim = await start_simulator(time_scale=10.0)
    requests = [
        # Both HR jobs come from one StartJobs call: both exist before HR is lost.
        JobRequest(process="Echo", folder="HR", jobs_count=2),
        JobRequest(process="Echo", folder="Shared", inputs={"n": 1}),
    ]
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with anyio.fail_after(60):  # a guard only: the batch ends within a second
            results = await orch.run_jobs(requests, hooks=unassign_hr_on_start(monkeypatch))
    assert [r.index for r in results] == [0, 0, 1]
    shared = results[2]
    assert shared.outcome is Outcome.SUCCESSFUL and shared.outputs == {"n": 1}
    for lost in results[:2]:
        assert lost.outcome is Outcome.UNKNOWN and lost.job_id is not None
        assert isinstance(lost.error, FolderNotFoundError)
        assert "can no longer read folder 'HR'" in str(lost.error)
        assert "assign the external application" in str(lost.error)


async def test_a_start_in_a_folder_unassigned_after_it_resolved_says_so(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HR resolves, then the application is unassigned from it before HR's StartJobs
    (one start at a time: Shared's comes first and unassigns HR). StartJobs answers
    400 errorCode 1100: the request is not_started with a FolderNotFoundError naming
    HR and the fix (it showed the bare 'HTTP 400, errorCode 1100'), and nothing
    was started in HR."""
    sim: SimulatorHandle = await start_simulator(time_scale=10.0)
    seen_before = AccessToken.sees

    def on_started(index: int, handle: JobHandle) -> None:
        monkeypatch.setattr(
            AccessToken, "sees", lambda self, path: path != "HR" and seen_before(self, path)
        )

    requests = [
        JobRequest(process="Echo", folder="Shared", inputs={"n": 0}),
        JobRequest(process="Echo", folder="HR", inputs={"n": 1}),
    ]
    async with OrchestratorClient(
        fast_settings(sim), poll=fast_poll(), limits=DispatchLimits(max_in_flight=1)
    ) as orch:
        with anyio.fail_after(60):
            results = await orch.run_jobs(requests, hooks=Hooks(on_started=on_started))
    shared, hr = results
    assert shared.outcome is Outcome.SUCCESSFUL
    assert hr.outcome is Outcome.NOT_STARTED and hr.job_id is None
    assert isinstance(hr.error, FolderNotFoundError)
    assert "cannot start in folder 'HR'" in str(hr.error)
    assert "assign the external application" in str(hr.error)
    assert "nothing was started" in str(hr.error)
    [tenant] = sim.simulator.stats()["tenants"].values()
    assert tenant["jobs_created"] == 1


async def test_every_folder_lost_mid_batch_is_said_of_every_folder(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both folders of the batch unassigned once their jobs started: the folders reach
    their refusals one by one, and the error raised names every folder, not only the
    last one refused (which read as if it alone was lost)."""
    sim: SimulatorHandle = await start_simulator(time_scale=1.0)
    started: list[str] = []

    def on_started(index: int, handle: JobHandle) -> None:
        started.append(handle.folder_path)
        if len(started) == 2:
            monkeypatch.setattr(AccessToken, "sees", lambda self, path: False)

    requests = [
        JobRequest(process="Echo", folder="HR", inputs={"n": 0}),
        JobRequest(process="Echo", folder="Shared", inputs={"n": 1}),
    ]
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with anyio.fail_after(60), pytest.raises(FolderNotFoundError) as lost:
            await orch.run_jobs(requests, hooks=Hooks(on_started=on_started))
    message = str(lost.value)
    assert message.startswith("every folder of the batch is refused (HR, Shared); the last: ")
    assert "can no longer read folder" in message and "assign the external application" in message
