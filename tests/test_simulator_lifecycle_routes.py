"""The lifecycle routes (issue 13 points 3-5) over real sockets against the built-in
"realistic" scenario: a SoftStop that a workflow ignores, a job suspended until
ResumeJob, attachments; bodies checked against UiPath's OpenAPI description."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from conftest import FakeClock, SimClient
from openapi_contract import validate_response

from async_orch.simulator import SimulatorHandle

STOP = "/odata/Jobs/UiPath.Server.Configuration.OData.StopJobs"
RESUME = "/odata/Jobs/UiPath.Server.Configuration.OData.ResumeJob"
ATTACHMENTS = "/odata/Attachments"


@pytest.fixture
async def real_orch(
    start_simulator: Any, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> SimClient:
    handle: SimulatorHandle = await start_simulator("realistic", clock=fake_clock, time_scale=1.0)
    return SimClient(handle, http)


async def state(orch: SimClient, folder: str, job: dict[str, Any]) -> str:
    return str((await orch.job(folder, job["Id"]))["State"])


async def stop(orch: SimClient, folder: str, job: dict[str, Any], strategy: str) -> None:
    status, body, _ = await orch.post(
        STOP, folder=folder, json={"jobIds": [job["Id"]], "strategy": strategy}
    )
    assert status == 200, body


async def test_legacy_export_ignores_soft_stop_until_killed(
    real_orch: SimClient, fake_clock: FakeClock
) -> None:
    (job,) = await real_orch.start("Shared", "LegacyExport")
    fake_clock.advance(3)  # picked up after 2 s
    assert await state(real_orch, "Shared", job) == "Running"
    await stop(real_orch, "Shared", job, "SoftStop")
    fake_clock.advance(30)  # far past the engine's 5 s soft_stop_delay; the run is 40-90 s
    assert await state(real_orch, "Shared", job) == "Stopping"
    await stop(real_orch, "Shared", job, "Kill")
    fake_clock.advance(2)
    assert await state(real_orch, "Shared", job) == "Stopped"


async def test_purchase_approval_suspends_until_resume_job(
    real_orch: SimClient, fake_clock: FakeClock
) -> None:
    (job,) = await real_orch.start("Finance", "PurchaseApproval")
    fake_clock.advance(2 + 10 + 1)  # pickup, then 10 s into its run
    assert await state(real_orch, "Finance", job) == "Suspended"
    fake_clock.advance(600)  # no suspend_for: it waits until resumed
    assert await state(real_orch, "Finance", job) == "Suspended"
    status, body, _ = await real_orch.post(RESUME, folder="Finance", json={"jobKey": job["Key"]})
    assert status == 200, body
    validate_response("POST", RESUME, 200, body)
    assert body["Key"] == job["Key"] and body["State"] in ("Resumed", "Running")
    status, body, _ = await real_orch.post(RESUME, folder="Shared", json={"jobKey": job["Key"]})
    assert status == 404, body  # another folder's job
    status, body, _ = await real_orch.post(RESUME, folder="Finance", json={"jobKey": job["Key"]})
    assert status == 409 and "not Suspended" in body["message"], body
    fake_clock.advance(60)
    assert await state(real_orch, "Finance", job) in ("Successful", "Faulted")


async def test_attachment_create_and_read_match_the_spec(real_orch: SimClient) -> None:
    real_orch._token = await real_orch.token("OR.Folders OR.Jobs")
    status, created, _ = await real_orch.post(
        ATTACHMENTS, folder="Finance", json={"Name": "inputs.json"}
    )
    assert status == 201, created
    validate_response("POST", ATTACHMENTS, 201, created)
    assert created["BlobFileAccess"]["Verb"] == "PUT"
    path = f"{ATTACHMENTS}({created['Id']})"
    status, read, _ = await real_orch.get(path, folder="Finance")
    assert status == 200, read
    validate_response("GET", path, 200, read)
    assert (read["Id"], read["Name"]) == (created["Id"], "inputs.json")
    status, body, _ = await real_orch.get(path, folder="Shared")  # another folder's
    assert status == 404, body
