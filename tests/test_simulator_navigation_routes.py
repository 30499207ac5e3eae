"""Endpoints real clients call (issue 14, point 3): the official SDK's folder lookup,
``GET /api/FoldersNavigation/GetFoldersForCurrentUser``, and ``RestartJob``; each
answer validated against the OpenAPI description."""

from __future__ import annotations

from conftest import FakeClock, SimClient
from openapi_contract import validate_response

NAVIGATION = "/api/FoldersNavigation/GetFoldersForCurrentUser"
RESTART = "/odata/Jobs/UiPath.Server.Configuration.OData.RestartJob"


async def test_folders_for_current_user_pages_and_searches(orch: SimClient) -> None:
    status, body, _ = await orch.get(NAVIGATION)
    assert status == 200
    validate_response("GET", NAVIGATION, 200, body, forbid_undeclared=True)
    paths = [f["FullyQualifiedName"] for f in body["PageItems"]]
    assert sorted(paths) == ["Finance", "Finance/Comptabilité", "HR", "Shared"]
    assert body["Count"] == 4
    assert all(f["FolderPath"] == f["FullyQualifiedName"] for f in body["PageItems"])
    folders = await orch.folders()
    assert {f["Key"] for f in body["PageItems"]} == {f["Key"] for f in folders.values()}

    status, body, _ = await orch.get(NAVIGATION, params={"searchText": "fin", "skip": 1, "take": 5})
    assert status == 200 and body["Count"] == 2
    assert [f["FullyQualifiedName"] for f in body["PageItems"]] == ["Finance/Comptabilité"]

    # On-premises shape, same answer.
    status, body, _ = await orch.get(NAVIGATION, base=orch.handle.root_url)
    assert status == 200 and body["Count"] == 4

    status, body, _ = await orch.get(NAVIGATION, params={"take": "-1"})
    assert (status, body["errorCode"]) == (400, 1000)


async def test_restart_job_creates_a_new_job_of_a_finished_one(
    orch: SimClient, fake_clock: FakeClock
) -> None:
    (started,) = await orch.start("HR", InputArguments='{"n": 7}')
    status, body, _ = await orch.post(RESTART, folder="HR", json={"jobId": started["Id"]})
    assert status == 409  # still Pending: nothing to restart

    fake_clock.advance(10)
    status, restarted, _ = await orch.post(RESTART, folder="HR", json={"jobId": started["Id"]})
    assert status == 200, restarted
    validate_response("POST", RESTART, 200, restarted)
    assert restarted["Id"] != started["Id"] and restarted["State"] == "Pending"
    assert restarted["InputArguments"] == '{"n": 7}'
    assert restarted["ReleaseName"] == started["ReleaseName"]
    assert orch.handle.simulator.stats()["jobs"]["created"] == 2

    # Another folder's job is not found there; a body without jobId is refused.
    status, body, _ = await orch.post(RESTART, folder="Shared", json={"jobId": started["Id"]})
    assert status == 404
    status, body, _ = await orch.post(RESTART, folder="HR", json={})
    assert status == 400 and "jobId is required" in body["message"]
