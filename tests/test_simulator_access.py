"""POST /_simulator/access: an application loses (and gets back) a folder or a scope
mid-run. Simulator over real sockets on port 0, its clock moved by the test: jobs
end only when the test says so, and access changes when every job has started.

What it models (core.py ``change_access``): a folder taken away answers 400/1100 at
the next call of the tokens already issued (orchestrator-api.md §8); a scope taken
away stays in the tokens already issued until they are renewed (an ASSUMPTION)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import pytest
from conftest import FakeClock
from test_dispatcher_support import fast_poll, fast_settings

from async_orch import (
    Abandoned,
    AuthenticationError,
    FolderNotFoundError,
    Hooks,
    JobHandle,
    JobRequest,
    OrchestratorClient,
    Outcome,
)
from async_orch.simulator import SimulatorHandle, parse_scenario

SCOPES = ["OR.Folders.Read", "OR.Execution.Read", "OR.Jobs"]
SCENARIO = f"""
[[tenants]]
organization = "acme"
name = "Prod"

[tenants.rate_limit]
jobs_list = 100000   # the test's clock stands still while the client polls

[[tenants.credentials]]
client_id = "app"
client_secret = "app-secret"
scopes = {SCOPES!r}

[[tenants.processes]]
name = "Echo"
duration = 1
outputs = "echo"

[[tenants.folders]]
path = "Shared"

[[tenants.folders]]
path = "HR"
"""


async def _start(start_simulator: Callable[..., Any], clock: FakeClock) -> SimulatorHandle:
    scenario = parse_scenario(SCENARIO, name="access")
    handle: SimulatorHandle = await start_simulator(scenario, clock=clock, time_scale=1.0)
    return handle


async def _admin(
    http: aiohttp.ClientSession, sim: SimulatorHandle, path: str, body: Any, **kwargs: Any
) -> tuple[int, Any]:
    headers = kwargs.pop("headers", sim.admin_headers)
    url = f"{sim.root_url}/_simulator/{path}"
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


def _when_all_started(count: int) -> tuple[Hooks, asyncio.Event]:
    """Hooks whose event is set once *count* jobs exist (on_started)."""
    started: list[JobHandle] = []
    event = asyncio.Event()

    def on_started(index: int, handle: JobHandle) -> None:
        started.append(handle)
        if len(started) == count:
            event.set()

    return Hooks(on_started=on_started), event


def _started_once(sim: SimulatorHandle, count: int) -> None:
    jobs = sim.simulator.stats()["jobs"]
    assert jobs["created"] == count and set(jobs["by_reference"].values()) == {1}
    assert jobs["duplicate_references"] == {}


async def test_a_folder_taken_away_mid_run_ends_its_jobs_unknown_until_given_back(
    start_simulator: Callable[..., Any], fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    sim = await _start(start_simulator, fake_clock)
    folders = ["Shared", "HR", "Shared", "HR"]
    requests = [
        JobRequest(process="Echo", folder=f, inputs={"n": n}) for n, f in enumerate(folders)
    ]
    hooks, all_started = _when_all_started(len(requests))

    async def take_hr_away() -> None:
        await all_started.wait()  # every job exists, none ended (the clock stands still)
        status, body = await _admin(
            http, sim, "access", {"client_id": "app", "folders": ["shared"]}
        )
        assert status == 200, body
        assert body == {"tenant": "acme/Prod", "client_id": "app", "scopes": SCOPES,
                        "folders": ["Shared"]}  # fmt: skip
        fake_clock.advance(60)  # every job ends; HR's are no longer visible

    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with anyio.fail_after(30):  # a guard only
            change = asyncio.create_task(take_hr_away())
            results = await orch.run_jobs(requests, hooks=hooks)
            await change
        shared, hr = results[0::2], results[1::2]
        assert [(r.outcome, r.outputs) for r in shared] == [
            (Outcome.SUCCESSFUL, {"n": 0}),
            (Outcome.SUCCESSFUL, {"n": 2}),
        ]
        for lost in hr:
            assert lost.outcome is Outcome.UNKNOWN and isinstance(lost.error, FolderNotFoundError)
            assert "can no longer read folder 'HR'" in str(lost.error)
        _, view = await _admin_get(http, sim)
        assert view["tenants"][0]["credentials"][0]["folders"] == ["Shared"]

        status, _ = await _admin(http, sim, "access", {"client_id": "app", "folders": None})
        assert status == 200
        handles = [r.handle for r in hr if r.handle is not None]
        with anyio.fail_after(30):
            back = await orch.wait_jobs(handles)
    assert [(r.outcome, r.outputs) for r in back] == [
        (Outcome.SUCCESSFUL, {"n": 1}),
        (Outcome.SUCCESSFUL, {"n": 3}),
    ]
    _, view = await _admin_get(http, sim)
    assert "folders" not in view["tenants"][0]["credentials"][0]  # every folder again
    _started_once(sim, 4)


async def _admin_get(http: aiohttp.ClientSession, sim: SimulatorHandle) -> tuple[int, Any]:
    async with http.get(f"{sim.root_url}/_simulator/scenario", headers=sim.admin_headers) as r:
        return r.status, await r.json()


async def _token(http: aiohttp.ClientSession, sim: SimulatorHandle, scope: str) -> tuple[int, Any]:
    form = {"grant_type": "client_credentials", "client_id": "app", "client_secret": "app-secret"}
    async with http.post(sim.token_url, data={**form, "scope": scope}) as response:
        return response.status, await response.json()


async def _list_jobs(http: aiohttp.ClientSession, sim: SimulatorHandle, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}", "X-UIPATH-FolderPath": "Shared"}
    async with http.get(f"{sim.url}/odata/Jobs", headers=headers) as response:
        return response.status


async def test_a_scope_taken_away_stays_in_tokens_issued_until_they_are_renewed(
    start_simulator: Callable[..., Any], fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    sim = await _start(start_simulator, fake_clock)
    status, issued = await _token(http, sim, " ".join(SCOPES))
    assert status == 200
    without_jobs = ["OR.Folders.Read", "OR.Execution.Read"]
    status, body = await _admin(http, sim, "access", {"client_id": "app", "scopes": without_jobs})
    assert (status, body["scopes"], body["folders"]) == (200, without_jobs, None)
    # The token issued before keeps OR.Jobs; a new one cannot have it.
    assert await _list_jobs(http, sim, issued["access_token"]) == 200
    status, refused = await _token(http, sim, " ".join(SCOPES))
    assert (status, refused["error"]) == (400, "invalid_scope")
    assert "OR.Jobs" in refused["error_description"]
    status, granted = await _token(http, sim, "")  # no scope asked: the granted ones
    assert status == 200 and granted["scope"] == "OR.Execution.Read OR.Folders.Read"
    assert await _list_jobs(http, sim, granted["access_token"]) == 403


async def test_a_scope_taken_away_mid_run_ends_the_batch_once_the_token_is_renewed(
    start_simulator: Callable[..., Any], fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """OR.Jobs taken away, then the tokens revoked (as expiry would do): the token
    renewal is refused (invalid_scope) and the batch raises AuthenticationError, the
    token case of docs/errors.md "Refused mid-run"; its jobs come back once the
    scope is."""
    sim = await _start(start_simulator, fake_clock)
    requests = [
        JobRequest(process="Echo", folder=f, inputs={"n": n})
        for n, f in enumerate(["Shared", "HR"])
    ]
    hooks, all_started = _when_all_started(len(requests))
    abandoned: list[Abandoned] = []
    hooks = Hooks(on_started=hooks.on_started, on_abandoned=abandoned.append)

    async def take_or_jobs_away() -> None:
        await all_started.wait()
        body = {"tenant": "acme/prod", "client_id": "app", "scopes": SCOPES[:2]}
        assert (await _admin(http, sim, "access", body))[0] == 200
        assert (await _admin(http, sim, "revoke-tokens", {"tenant": "acme/Prod"}))[0] == 200

    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with anyio.fail_after(30), pytest.raises(AuthenticationError, match="invalid_scope"):
            change = asyncio.create_task(take_or_jobs_away())
            try:
                await orch.run_jobs(requests, hooks=hooks)
            finally:
                await change
        [left] = abandoned
        assert len(left.left_running) == 2

        assert (await _admin(http, sim, "access", {"client_id": "app", "scopes": SCOPES}))[0] == 200
        fake_clock.advance(60)
        with anyio.fail_after(30):
            back = await orch.wait_jobs(left.left_running)
    assert sorted((r.outputs or {})["n"] for r in back) == [0, 1]
    assert {r.outcome for r in back} == {Outcome.SUCCESSFUL}
    _started_once(sim, 2)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"client_id": "nobody", "folders": ["HR"]}, "unknown client_id 'nobody'; known: app"),
        ({"client_id": "app", "folders": ["Payroll"]}, "unknown folder 'Payroll' in acme/Prod"),
        ({"client_id": "app", "tenant": "acme/Test", "scopes": []}, "unknown tenant 'acme/Test'"),
        ({"client_id": "app"}, "nothing to change"),
        ({"client_id": "app", "scopes": "OR.Jobs"}, "scopes must be an array"),
        ({"client_id": "app", "scopes": ["OR.Jobs OR.Folders"]}, "scopes must be an array"),
        ({"client_id": "app", "folders": "HR"}, "folders must be null or an array"),
        ({"client_id": "app", "folder": ["HR"]}, "unknown field(s): folder"),
        ({"folders": ["HR"]}, "client_id must name"),
    ],
)
async def test_a_bad_access_change_is_refused_and_changes_nothing(
    start_simulator: Callable[..., Any],
    fake_clock: FakeClock,
    http: aiohttp.ClientSession,
    body: dict[str, Any],
    error: str,
) -> None:
    sim = await _start(start_simulator, fake_clock)
    status, answer = await _admin(http, sim, "access", body)
    assert status == 400 and error in answer["error"], answer
    _, view = await _admin_get(http, sim)
    assert view["tenants"][0]["credentials"][0]["scopes"] == SCOPES


async def test_the_access_route_needs_the_admin_token(
    start_simulator: Callable[..., Any], fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    sim = await _start(start_simulator, fake_clock)
    body = {"client_id": "app", "folders": ["Shared"]}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        status, answer = await _admin(http, sim, "access", body, headers=headers)
        assert status == 401 and "admin token" in answer["error"]
    _, view = await _admin_get(http, sim)
    assert "folders" not in view["tenants"][0]["credentials"][0]
