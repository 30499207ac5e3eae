"""A 2xx StartJobs answer that cannot be read, over the real
simulator (the job is really created; only the answer is garbled)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import pytest
from conftest import add_simulator_middleware
from test_dispatcher_support import fast_poll, fast_settings

from async_orch import JobRequest, OrchestratorClient, Outcome
from async_orch.simulator import SimulatorHandle

_Handler = Callable[[aiohttp.web.Request], Awaitable[aiohttp.web.StreamResponse]]


def _garble_starts(body: bytes) -> Any:
    @aiohttp.web.middleware
    async def garble(request: aiohttp.web.Request, handler: _Handler) -> Any:
        response = await handler(request)
        if (
            request.method == "POST"
            and request.path.endswith("StartJobs")
            and response.status < 300
        ):
            return aiohttp.web.Response(
                body=body, status=response.status, content_type="application/json"
            )
        return response

    return garble


GARBLED = {
    "html": b"<html>gateway</html>",
    "id-as-text": json.dumps({"value": [{"Id": "1", "State": "Pending"}]}).encode(),
    "row-not-object": b'{"value": [42]}',
    "value-not-list": b'{"value": "x"}',
    "empty-list": b'{"value": []}',
    "deeply-nested": b"[" * 200_000,
}


@pytest.mark.parametrize("body", GARBLED.values(), ids=GARBLED.keys())
async def test_a_garbled_2xx_start_is_adopted_over_the_simulator(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    add_simulator_middleware(monkeypatch, _garble_starts(body))
    sim: SimulatorHandle = await start_simulator(time_scale=3600.0)
    requests = [JobRequest(process="Echo", folder="Shared") for _ in range(3)]
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        results = await orch.run_jobs(requests, timeout=30)
    stats = sim.simulator.stats()
    assert stats["jobs"]["created"] == 3 and stats["jobs"]["duplicate_references"] == {}
    assert sorted(r.index for r in results) == [0, 1, 2], results
    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL] * 3, results


def _garble_attachment_posts() -> Any:
    @aiohttp.web.middleware
    async def garble(request: aiohttp.web.Request, handler: _Handler) -> Any:
        if request.method == "POST" and request.path.endswith("/odata/Attachments"):
            return aiohttp.web.Response(body=b"<html>portal</html>", status=201)
        return await handler(request)

    return garble


async def test_an_unreadable_upload_answer_is_still_a_refusal(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from simulator_process import attachments_scenario

    from async_orch import ResponseDecodeError, StartAnswerUnreadableError
    from async_orch._config import DEFAULT_SCOPES, ClientCredentials
    from async_orch.simulator import parse_scenario

    add_simulator_middleware(monkeypatch, _garble_attachment_posts())
    sim: SimulatorHandle = await start_simulator(
        parse_scenario(attachments_scenario(), name="big"), time_scale=3600.0
    )
    settings = fast_settings(sim)
    assert isinstance(settings.credentials, ClientCredentials)
    settings = dataclasses.replace(
        settings,
        credentials=dataclasses.replace(
            settings.credentials, scopes=f"{DEFAULT_SCOPES} OR.Folders.Write"
        ),
    )
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"Text": "x" * 12_000})]
    async with OrchestratorClient(settings, poll=fast_poll()) as orch:
        (result,) = await orch.run_jobs(requests, timeout=30)
    assert result.outcome is Outcome.NOT_STARTED, result
    assert isinstance(result.error, ResponseDecodeError)
    assert not isinstance(result.error, StartAnswerUnreadableError)
    stats = sim.simulator.stats()
    assert stats["jobs"]["created"] == 0
    assert not any("StartJobs" in k for k in stats["requests"]), stats["requests"]
