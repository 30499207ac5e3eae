"""The /_simulator/ admin API and the in-process handle."""

from __future__ import annotations

from typing import Any

import aiohttp
from conftest import SimClient

from async_orch.simulator import SimulatorHandle


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as response:
        return response.status, await response.json()


async def test_handle_urls_and_credentials(simulator: SimulatorHandle) -> None:
    assert simulator.root_url == f"http://127.0.0.1:{simulator.port}" and simulator.port > 0
    assert simulator.url == simulator.root_url + "/demo/DefaultTenant/orchestrator_"
    assert simulator.base_url("DEMO/defaulttenant") == simulator.url
    assert simulator.token_url == simulator.root_url + "/identity_/connect/token"
    assert (simulator.client_id, simulator.client_secret) == ("demo-client", "demo-secret")
    assert (simulator.organization, simulator.tenant) == ("demo", "DefaultTenant")


async def test_scenario_endpoint_tells_how_to_connect(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    status, body = await _call(http, "GET", simulator.root_url + "/_simulator/scenario")
    assert status == 200
    assert body["root_url"] == simulator.root_url and body["name"] == "demo"
    (tenant,) = body["tenants"]
    assert tenant["base_path"] == "/demo/DefaultTenant/orchestrator_"
    assert tenant["credentials"][0]["client_secret"] == "demo-secret"
    assert tenant["users"] == [{"username": "admin", "password": "demo-password"}]
    folders = {f["path"]: f for f in tenant["folders"]}
    assert folders["Finance/Comptabilité"]["capacity"] == 25
    assert {p["name"] for p in folders["HR"]["processes"]} == {"Echo", "EmployeeOnboarding"}


async def test_stats_reset_and_faults_endpoints(
    simulator: SimulatorHandle, orch: SimClient, http: aiohttp.ClientSession
) -> None:
    root = simulator.root_url
    await orch.start("Shared", Reference="once")
    await orch.start("Shared", Reference="twice")
    await orch.start("Shared", Reference="twice")  # a blind retry
    status, stats = await _call(http, "GET", root + "/_simulator/stats")
    assert status == 200
    assert stats["requests"]["POST /identity_/connect/token"] == {"200": 1}
    assert stats["requests"]["POST /odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"] == {
        "201": 3
    }
    assert stats["jobs"]["created"] == 3 and stats["jobs"]["by_state"] == {"Pending": 3}
    assert stats["jobs"]["by_reference"] == {"once": 1, "twice": 2}
    assert stats["jobs"]["duplicate_references"] == {"twice": 2}
    assert stats["tenants"]["demo/DefaultTenant"]["jobs_created"] == 3

    status, faults = await _call(
        http, "POST", root + "/_simulator/faults", json={"drop_rate": 0.5, "slow_rate": 0.1}
    )
    assert status == 200 and (faults["drop_rate"], faults["slow_rate"]) == (0.5, 0.1)
    status, faults = await _call(
        http, "POST", root + "/_simulator/faults", json={"throttle_rate": 0.2}
    )
    assert (faults["drop_rate"], faults["throttle_rate"]) == (0.5, 0.2)  # merged
    status, faults = await _call(
        http, "POST", root + "/_simulator/faults", json={"clear": True, "slow_rate": 0.3}
    )
    assert (faults["drop_rate"], faults["throttle_rate"], faults["slow_rate"]) == (0.0, 0.0, 0.3)
    assert (await _call(http, "GET", root + "/_simulator/faults"))[1] == faults
    status, error = await _call(http, "POST", root + "/_simulator/faults", json={"drop": 1})
    assert status == 400 and "unknown key(s) drop" in error["error"]
    status, error = await _call(http, "POST", root + "/_simulator/faults", data="[1]")
    assert status == 400

    status, after = await _call(http, "POST", root + "/_simulator/reset-stats")
    assert status == 200 and after["requests"] == {} and after["jobs"]["created"] == 3
    # The admin API itself is never counted.
    assert (await _call(http, "GET", root + "/_simulator/stats"))[1]["requests"] == {}
