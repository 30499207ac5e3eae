"""Injected faults over HTTP: each kind, its counter, and where faults never apply."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import pytest
from conftest import FakeClock, SimClient

from async_orch._errors import ConfigurationError
from async_orch.simulator import SimulatorHandle
from async_orch.simulator.faults import FaultSettings, parse_fault_assignment

START = "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
STOP = "/odata/Jobs/UiPath.Server.Configuration.OData.StopJobs"


def faults_of(handle: SimulatorHandle) -> dict[str, int]:
    return dict(handle.simulator.stats()["faults"])


async def test_faults_are_off_by_default(orch: SimClient) -> None:
    for _ in range(20):
        assert (await orch.get("/odata/Folders"))[0] == 200
    assert set(faults_of(orch.handle).values()) == {0}


@pytest.mark.parametrize(("status", "json_body"), [(500, True), (502, False), (503, False)])
async def test_server_errors(orch: SimClient, status: int, json_body: bool) -> None:
    await orch.headers()  # get the token before the fault is on
    orch.handle.simulator.set_faults({"server_error_rate": 1.0, "server_error_statuses": [status]})
    got, body, headers = await orch.get("/odata/Folders")
    assert got == status
    if json_body:
        assert set(body) == {"message", "errorCode", "traceId"}
    else:
        assert headers["Content-Type"].startswith("text/plain") and str(status) in body
    assert faults_of(orch.handle)["server_error"] == 1
    assert orch.handle.simulator.stats()["requests"]["GET /odata/Folders"] == {str(status): 1}


async def test_throttle_rate_and_bursts(orch: SimClient, fake_clock: FakeClock) -> None:
    await orch.headers()
    sim = orch.handle.simulator
    sim.set_faults({"throttle_rate": 1.0})
    status, body, headers = await orch.get(f"/odata/Jobs({1})", folder="Shared")
    assert status == 429 and headers["Retry-After"] == "1" and "Retry-After" in body["message"]
    sim.set_faults({"throttle_burst_seconds": 5, "throttle_burst_every": 60}, clear=True)
    status, _, headers = await orch.get("/odata/Folders")
    assert status == 429 and headers["Retry-After"] == "5"
    fake_clock.advance(5)
    assert (await orch.get("/odata/Folders"))[0] == 200
    fake_clock.advance(55)  # the next burst
    assert (await orch.get("/odata/Folders"))[0] == 429
    assert faults_of(orch.handle)["throttle"] == 3
    assert sim.stats()["rejections"]["429"] == 0  # injected, not the real limiter


async def test_dropped_connections(orch: SimClient) -> None:
    await orch.headers("Shared")
    orch.handle.simulator.set_faults({"drop_rate": 1.0})
    # A POST: aiohttp retries an idempotent request once on a dropped connection.
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await orch.post(STOP, folder="Shared", json={"jobIds": [], "strategy": "Kill"})
    assert faults_of(orch.handle)["drop"] == 1
    assert orch.handle.simulator.stats()["requests"][f"POST {STOP}"] == {"dropped": 1}


async def test_slow_responses_still_answer(orch: SimClient) -> None:
    await orch.headers()
    orch.handle.simulator.set_faults({"slow_rate": 1.0, "slow_seconds": 0.01})
    assert (await orch.get("/odata/Folders"))[0] == 200
    assert faults_of(orch.handle)["slow"] == 1


async def test_a_late_start_is_completed_after_its_client_gave_up(orch: SimClient) -> None:
    await orch.headers("Shared")
    sim = orch.handle.simulator
    sim.set_faults({"late_completion_rate": 1.0, "late_completion_seconds": 0.3})
    with pytest.raises(TimeoutError):
        await orch.post(
            START,
            folder="Shared",
            json={"startInfo": {"ReleaseName": "Echo", "Reference": "late-1"}},
            timeout=aiohttp.ClientTimeout(total=0.05),
        )
    # The server completes it on its own time, in a handler with no event to wait
    # on: check its counters until the job exists (failing after 5 s).
    with anyio.fail_after(5):
        while sim.stats()["jobs"]["by_reference"] != {"late-1": 1}:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    assert faults_of(orch.handle)["late_completion"] == 1
    # Only StartJobs by default; "all" holds every request.
    assert (await orch.get("/odata/Folders"))[0] == 200
    assert faults_of(orch.handle)["late_completion"] == 1


def test_late_completion_settings_are_read_and_checked() -> None:
    settings = FaultSettings.from_mapping(
        {"late_completion_rate": 0.5, "late_completion_scope": "all"}
    )
    assert settings.active and settings.late_completion_seconds == 1.0
    assert parse_fault_assignment("late_completion_scope=all") == ("late_completion_scope", "all")
    with pytest.raises(ConfigurationError, match="late_completion_scope"):
        FaultSettings.from_mapping({"late_completion_scope": "some"})


async def test_periodic_and_on_demand_token_revocation(
    simulator: SimulatorHandle, orch: SimClient, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    simulator.simulator.set_faults({"revoke_tokens_every": 30})
    assert (await orch.get("/odata/Folders"))[0] == 200
    fake_clock.advance(30)
    status, _, headers = await orch.get("/odata/Folders")
    assert status == 401 and headers["X-Simulator-Hint"] == "token was revoked"
    assert faults_of(simulator)["token_revocation"] == 1

    fresh = {"Authorization": f"Bearer {await orch.token()}"}
    async with http.post(
        simulator.root_url + "/_simulator/revoke-tokens",
        json={"tenant": "demo/DefaultTenant"},
        headers=simulator.admin_headers,
    ) as r:
        assert (r.status, await r.json()) == (200, {"revoked": 1})
    assert (await orch.get("/odata/Folders", headers=fresh))[0] == 401
    assert faults_of(simulator)["token_revocation"] == 2
    async with http.post(
        simulator.root_url + "/_simulator/revoke-tokens",
        json={"tenant": "x/y"},
        headers=simulator.admin_headers,
    ) as r:
        assert r.status == 400 and "demo/DefaultTenant" in (await r.json())["error"]


@pytest.mark.parametrize("mode", ["drop", "504"])
async def test_ambiguous_start_creates_the_jobs_then_fails(
    simulator: SimulatorHandle, orch: SimClient, mode: str
) -> None:
    await orch.headers("Shared")
    simulator.simulator.set_faults({"ambiguous_start_rate": 1.0, "ambiguous_start_mode": mode})
    payload = {"startInfo": {"ReleaseName": "Echo", "Reference": "maybe-started"}}
    if mode == "drop":
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await orch.post(START, folder="Shared", json=payload)
    else:
        status, body, _ = await orch.post(START, folder="Shared", json=payload)
        assert status == 504 and "timeout" in body
    # The job exists: a client must look it up by Reference rather than start it again.
    status, body, _ = await orch.get(
        "/odata/Jobs", folder="Shared", params={"$filter": "Reference eq 'maybe-started'"}
    )
    assert status == 200 and len(body["value"]) == 1
    stats = simulator.simulator.stats()
    assert stats["faults"]["ambiguous_start"] == 1
    assert stats["jobs"]["by_reference"] == {"maybe-started": 1}
    # Other endpoints are untouched by this fault.
    assert (await orch.get("/odata/Folders"))[0] == 200


async def test_failed_starts_are_not_made_ambiguous(orch: SimClient) -> None:
    await orch.headers("Shared")
    orch.handle.simulator.set_faults({"ambiguous_start_rate": 1.0, "ambiguous_start_mode": "504"})
    status, _, _ = await orch.post(
        START, folder="Shared", json={"startInfo": {"ReleaseName": "Nope"}}
    )
    assert status == 404


async def test_admin_api_and_token_endpoint_are_spared(
    simulator: SimulatorHandle, orch: SimClient, http: aiohttp.ClientSession
) -> None:
    simulator.simulator.set_faults({"server_error_rate": 1.0, "server_error_statuses": [503]})
    async with http.get(
        simulator.root_url + "/_simulator/stats", headers=simulator.admin_headers
    ) as response:
        assert response.status == 200
    await orch.token()  # the token endpoint is spared by default...
    simulator.simulator.set_faults({"include_token_endpoint": True})
    form = {
        "grant_type": "client_credentials",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
    }
    async with http.post(simulator.token_url, data=form) as response:
        assert response.status == 503  # ...unless asked


async def test_faults_from_the_scenario_and_run_simulator(
    start_simulator: Any, http: aiohttp.ClientSession
) -> None:
    handle: SimulatorHandle = await start_simulator(
        faults={"server_error_rate": 1.0, "server_error_statuses": [502]}
    )
    orch = SimClient(handle, http)
    await orch.headers()
    assert (await orch.get("/odata/Folders"))[0] == 502
    assert handle.simulator.describe()["faults"]["server_error_rate"] == 1.0
