"""The /_simulator/ admin API and the in-process handle."""

from __future__ import annotations

from typing import Any

import aiohttp
from conftest import SimClient

from async_orch.simulator import SimulatorHandle


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, sim: SimulatorHandle, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, headers=sim.admin_headers, **kwargs) as response:
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
    status, body = await _call(http, "GET", simulator.root_url + "/_simulator/scenario", simulator)
    assert status == 200
    assert body["root_url"] == simulator.root_url and body["name"] == "demo"
    (tenant,) = body["tenants"]
    assert tenant["base_path"] == "/demo/DefaultTenant/orchestrator_"
    # Secrets are never returned in full: enough to tell which one, no more.
    assert tenant["credentials"][0]["client_id"] == "demo-client"
    assert tenant["credentials"][0]["client_secret"] == "de***"
    assert tenant["users"] == [{"username": "admin", "password": "de***"}]
    assert "demo-secret" not in str(body) and "demo-password" not in str(body)
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
    status, stats = await _call(http, "GET", root + "/_simulator/stats", simulator)
    assert status == 200
    assert stats["requests"]["POST /identity_/connect/token"] == {"200": 1}
    assert stats["requests"]["POST /odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"] == {
        "201": 3
    }
    assert stats["jobs"]["created"] == 3 and stats["jobs"]["by_state"] == {"Pending": 3}
    assert stats["jobs"]["by_reference"] == {"once": 1, "twice": 2}
    assert stats["jobs"]["duplicate_references"] == {"twice": 2}
    assert stats["tenants"]["demo/DefaultTenant"] == {
        "jobs_created": 3,
        "jobs_by_state": {"Pending": 3},
    }  # the References are listed once, under "jobs"

    status, faults = await _call(
        http,
        "POST",
        root + "/_simulator/faults",
        simulator,
        json={"drop_rate": 0.5, "slow_rate": 0.1},
    )
    assert status == 200 and (faults["drop_rate"], faults["slow_rate"]) == (0.5, 0.1)
    status, faults = await _call(
        http, "POST", root + "/_simulator/faults", simulator, json={"throttle_rate": 0.2}
    )
    assert (faults["drop_rate"], faults["throttle_rate"]) == (0.5, 0.2)  # merged
    status, faults = await _call(
        http, "POST", root + "/_simulator/faults", simulator, json={"clear": True, "slow_rate": 0.3}
    )
    assert (faults["drop_rate"], faults["throttle_rate"], faults["slow_rate"]) == (0.0, 0.0, 0.3)
    assert (await _call(http, "GET", root + "/_simulator/faults", simulator))[1] == faults
    status, error = await _call(
        http, "POST", root + "/_simulator/faults", simulator, json={"drop": 1}
    )
    assert status == 400 and "unknown key(s) drop" in error["error"]
    status, error = await _call(http, "POST", root + "/_simulator/faults", simulator, data="[1]")
    assert status == 400

    status, after = await _call(http, "POST", root + "/_simulator/reset-stats", simulator)
    assert status == 200 and after["requests"] == {} and after["jobs"]["created"] == 3
    # The admin API itself is never counted.
    assert (await _call(http, "GET", root + "/_simulator/stats", simulator))[1]["requests"] == {}


async def test_admin_api_refuses_calls_without_its_token(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    root = simulator.root_url + "/_simulator"
    wrong = {"Authorization": "Bearer " + simulator.admin_token[:-1]}  # one character short
    for method, path in [
        ("GET", "/stats"),
        ("POST", "/reset-stats"),
        ("GET", "/faults"),
        ("POST", "/faults"),
        ("POST", "/revoke-tokens"),
        ("GET", "/scenario"),
        ("GET", "/webhooks"),
    ]:
        for headers in ({}, wrong):
            async with http.request(method, root + path, headers=headers, json={}) as response:
                assert response.status == 401, (method, path)
                assert "admin token" in (await response.json())["error"]
    assert simulator.simulator.faults.settings.to_dict()["drop_rate"] == 0.0
    assert len(simulator.admin_token) >= 32  # drawn at random, not a fixed default


async def test_admin_token_can_be_chosen(start_simulator: Any, http: aiohttp.ClientSession) -> None:
    sim: SimulatorHandle = await start_simulator(admin_token="chosen-token")
    assert sim.admin_headers == {"Authorization": "Bearer chosen-token"}
    status, _ = await _call(http, "GET", sim.root_url + "/_simulator/stats", sim)
    assert status == 200


async def test_deeply_nested_admin_body_is_a_400(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    status, error = await _call(
        http, "POST", simulator.root_url + "/_simulator/faults", simulator, data=nested
    )
    assert status == 400 and "JSON object" in error["error"]
