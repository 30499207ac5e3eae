"""Machines, runtimes and licences (issue 13 point 1) and ValidateDynamicJob (point 2),
over real sockets against the built-in "realistic" scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import FakeClock, SimClient
from openapi_contract import validate_response

from async_orch._errors import ConfigurationError
from async_orch.simulator import SimulatorHandle
from async_orch.simulator.engine import JobEngine, StartOrder
from async_orch.simulator.robots import REASON_TEXTS
from async_orch.simulator.scenario import EngineTimings, load_scenario, parse_scenario
from async_orch.simulator.world import build_world

START = "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
DEMO_TOML = Path(__file__).parent.parent / "async_orch/simulator/scenarios/demo.toml"
VALIDATE = "/odata/Jobs/UiPath.Server.Configuration.OData.ValidateDynamicJob"


@pytest.fixture
async def realistic(start_simulator: Any, fake_clock: FakeClock) -> SimulatorHandle:
    handle: SimulatorHandle = await start_simulator("realistic", clock=fake_clock, time_scale=1.0)
    return handle


@pytest.fixture
async def real_orch(realistic: SimulatorHandle, http: aiohttp.ClientSession) -> SimClient:
    return SimClient(realistic, http)


async def validate(orch: SimClient, folder: str, **info: Any) -> dict[str, Any]:
    status, body, _ = await orch.post(
        VALIDATE, folder=folder, json={"startInfo": {"ReleaseName": "Echo", **info}}
    )
    assert status == 200, body
    validate_response("POST", VALIDATE, 200, body)
    assert body["@odata.context"].endswith(
        "$metadata#UiPath.Server.Configuration.OData.ValidationResultDto"
    )
    return {k: v for k, v in body.items() if not k.startswith("@")}


async def states(orch: SimClient, folder: str, jobs: list[dict[str, Any]]) -> list[str]:
    return [(await orch.job(folder, j["Id"]))["State"] for j in jobs]


async def test_a_folder_without_machine_refuses_starts_with_409_2818(real_orch: SimClient) -> None:
    status, body, _ = await real_orch.post(
        START, folder="Sandbox", json={"startInfo": {"ReleaseName": "Echo", "JobsCount": 3}}
    )
    assert status == 409, body
    assert body["errorCode"] == 2818
    assert body["message"] == "Could not find a machine with Unattended or NonProduction runtimes"
    status, listed, _ = await real_orch.get("/odata/Jobs", folder="Sandbox")
    assert listed["value"] == []  # nothing was created
    assert await validate(real_orch, "Sandbox") == {
        "IsValid": False,
        "Errors": [REASON_TEXTS["TemplateNoRuntime"]],
        "ErrorCodes": ["TemplateNoRuntime"],
    }


async def test_an_offline_machine_leaves_jobs_pending_until_the_admin_fixes_it(
    realistic: SimulatorHandle,
    real_orch: SimClient,
    fake_clock: FakeClock,
    http: aiohttp.ClientSession,
) -> None:
    jobs = await real_orch.start("HR", JobsCount=2)
    assert (await validate(real_orch, "HR"))["ErrorCodes"] == ["TemplateNoHostsAvailable"]
    fake_clock.advance(7 * 24 * 3600)  # a week: Orchestrator does not re-evaluate on its own
    real_orch._token = None  # the token expired meanwhile
    assert await states(real_orch, "HR", jobs) == ["Pending", "Pending"]

    url = realistic.root_url + "/_simulator/runtimes"
    change = {"machine": "VM-HR-01", "online": True}
    async with http.post(url, json=change, headers=realistic.admin_headers) as response:
        described = await response.json()
        assert response.status == 200, described
    assert next(m for m in described["machines"] if m["name"] == "VM-HR-01")["busy"] == 2
    assert (await validate(real_orch, "HR"))["ErrorCodes"] == ["TemplateFullCapacity"]
    fake_clock.advance(600)
    assert await states(real_orch, "HR", jobs) == ["Successful", "Successful"]
    job = await real_orch.job("HR", jobs[0]["Id"])
    assert job["HostMachineName"] == "VM-HR-01"
    assert await validate(real_orch, "HR") == {"IsValid": True, "Errors": [], "ErrorCodes": []}


async def test_licences_are_shared_by_the_tenant_and_the_rest_waits(
    real_orch: SimClient, fake_clock: FakeClock
) -> None:
    finance = await real_orch.start("Finance", JobsCount=5)
    shared = await real_orch.start("Shared", JobsCount=3)
    fake_clock.advance(3)  # past the pick-up delay, before any Echo job ends
    running = await states(real_orch, "Finance", finance) + await states(
        real_orch, "Shared", shared
    )
    assert running.count("Running") == 6  # 6 licences for 8 runtimes
    assert running[-2:] == ["Pending", "Pending"]  # first come, first served across folders
    assert (await validate(real_orch, "Shared"))["ErrorCodes"] == ["TemplateNoLicense"]
    fake_clock.advance(600)
    assert set(await states(real_orch, "Shared", shared)) == {"Successful"}


async def test_shared_machine_runtimes_fill_up(
    start_simulator: Any, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    text = DEMO_TOML.read_text("utf-8")
    text += '\n[[tenants.machines]]\nname = "VM-1"\nruntimes = 1\nfolders = ["Shared", "HR"]\n'
    scenario = parse_scenario(text, name="one-runtime")
    orch = SimClient(await start_simulator(scenario, clock=fake_clock, time_scale=1.0), http)
    await orch.start("Shared")
    assert (await validate(orch, "HR"))["ErrorCodes"] == ["TemplateFullCapacity"]
    (second,) = await orch.start("HR")
    fake_clock.advance(3)
    assert await states(orch, "HR", [second]) == ["Pending"]
    fake_clock.advance(600)  # the first ends, its runtime goes to the other folder's job
    assert await states(orch, "HR", [second]) == ["Successful"]
    status, body, _ = await orch.post(
        START, folder="Finance", json={"startInfo": {"ReleaseName": "Echo"}}
    )
    assert (status, body["errorCode"]) == (409, 2818)


async def test_specific_robot_not_in_the_folder(real_orch: SimClient) -> None:
    status, body, _ = await real_orch.post(
        START,
        folder="Finance",
        json={"startInfo": {"ReleaseName": "Echo", "Strategy": "Specific", "RobotIds": [6]}},
    )
    assert status == 409, body
    assert body["errorCode"] == "InvalidStartJobRobotIds"
    result = await validate(real_orch, "Finance", Strategy="Specific", RobotIds=[6])
    assert result["IsValid"] is False
    assert result["ErrorCodes"] == ["RobotNotAssignedToFolder"]


async def test_validate_on_the_demo_is_valid_and_starts_nothing(orch: SimClient) -> None:
    assert await validate(orch, "Finance", JobsCount=3) == {
        "IsValid": True,
        "Errors": [],
        "ErrorCodes": [],
    }
    status, listed, _ = await orch.get("/odata/Jobs", folder="Finance")
    assert listed["value"] == []
    status, body, _ = await orch.post(VALIDATE, folder="Finance", json={"startInfo": {}})
    assert status == 400, body  # a malformed start is refused as StartJobs refuses it


def test_scenario_errors_name_the_key() -> None:
    base = DEMO_TOML.read_text("utf-8")
    with pytest.raises(ConfigurationError, match=r"machines\[0\]\.folders.*unknown: 'Nowhere'"):
        parse_scenario(
            base + '\n[[tenants.machines]]\nname = "M"\nfolders = ["Nowhere"]\n', name="x"
        )
    twice = '\n[[tenants.machines]]\nname = "M"\nfolders = ["HR"]\n'
    with pytest.raises(ConfigurationError, match="duplicate machine name"):
        parse_scenario(base + twice + twice, name="x")
    assert load_scenario("demo").tenants[0].runtimes is None  # the demo is unchanged


def test_an_admin_change_is_replayed_after_a_restart() -> None:
    tenant = load_scenario("realistic").tenants[0]
    log: list[dict[str, Any]] = []

    def engine() -> JobEngine:
        return JobEngine(build_world(tenant), timings=EngineTimings(), seed="s", first_job_id=1000)

    first = engine()
    first.on_command = log.append
    hr = first.world.folder_by_path("HR")
    assert hr is not None
    first.start_jobs(0.0, StartOrder(folder=hr, release=hr.releases[0], robots=(None,)))
    first.change_runtimes(10.0, machine="VM-HR-01", online=True)
    first.advance(13.0)
    assert [j.state.value for j in first.jobs()] == ["Running"]
    second = engine()
    for command in log:
        second.replay(command)
    second.advance(13.0)
    assert [j.state.value for j in second.jobs()] == ["Running"]
    with pytest.raises(KeyError):
        second.change_runtimes(14.0, machine="VM-NOPE", online=True)


async def test_the_admin_call_refuses_a_tenant_without_machines(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    url = simulator.root_url + "/_simulator/runtimes"
    async with http.post(
        url, json={"unattended_licenses": 3}, headers=simulator.admin_headers
    ) as r:
        assert r.status == 400
        assert "declares no machines" in (await r.json())["error"]
