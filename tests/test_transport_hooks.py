"""Transport hooks (request, response, retry) and the health they keep, on the simulator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest
import structlog
from aiohttp import web
from conftest import FakeClock, add_simulator_middleware
from test_integration_auth import admin_post, connect, demo_credentials

from async_orch._config import Settings
from async_orch._transport import Transport
from async_orch._transport_hooks import (
    RequestSent,
    ResponseReceived,
    RetryScheduled,
    TransportHooks,
)
from async_orch.simulator import SimulatorHandle


class Recorder(TransportHooks):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def on_request(self, event: RequestSent) -> None:
        self.events.append(("request", event.method, event.endpoint))

    def on_response(self, event: ResponseReceived) -> None:
        self.events.append(("response", event.request.endpoint, event.status))

    def on_retry(self, event: RetryScheduled) -> None:
        self.events.append(("retry", event.endpoint, event.attempt, event.reason))


class Raising(TransportHooks):
    def on_request(self, event: RequestSent) -> None:
        raise RuntimeError("a broken hook")


async def test_hooks_see_every_try_token_requests_included(
    simulator: SimulatorHandle, fake_clock: FakeClock, http: Any
) -> None:
    await admin_post(
        http,
        simulator,
        "faults",
        server_error_rate=1.0,
        server_error_statuses=[503],
        include_token_endpoint=True,
    )
    recorder = Recorder()
    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))

    async def sleep(seconds: float) -> None:
        await admin_post(http, simulator, "faults", clear=True)  # answers again

    transport = Transport(settings, clock=fake_clock, sleep=sleep, hooks=[Raising(), recorder])
    with structlog.testing.capture_logs() as logs:
        async with transport:
            await transport.request("GET", "odata/Folders")
    # The token request got a 503, so the call waited and tried again.
    assert recorder.events == [
        ("request", "POST", "token"),
        ("response", "token", 503),
        ("retry", "odata/Folders", 2, "503"),
        ("request", "POST", "token"),
        ("response", "token", 200),
        ("request", "GET", "odata/Folders"),
        ("response", "odata/Folders", 200),
    ]
    # The hook that raised was logged each time and changed nothing.
    failed = [e for e in logs if e["event"] == "async_orch.hook_failed"]
    assert len(failed) == 3 and failed[0]["hook"] == "Raising"


async def test_health_tracks_the_failure_streak_and_warns_on_a_long_outage(
    simulator: SimulatorHandle, fake_clock: FakeClock, http: Any
) -> None:
    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))

    async def sleep(seconds: float) -> None:
        fake_clock.advance(20)  # each retry wait is 20 s on the injected clock

    with structlog.testing.capture_logs() as logs:
        async with connect(settings, clock=fake_clock, sleep=sleep) as (api, transport):
            await api.list_folders()
            answered_at = fake_clock()
            assert transport.health.last_answer == answered_at
            assert transport.health.failures == 0
            await admin_post(
                http, simulator, "faults", server_error_rate=1.0, server_error_statuses=[502]
            )
            with pytest.raises(Exception, match="502"):
                await api.list_folders(refresh=True)
            health = transport.health
            assert (health.last_answer, health.failures) == (answered_at, 5)
            assert health.failing_since == answered_at
            assert health.failing_for(fake_clock()) == 80.0
            assert health.last_failure == "HTTP 502"
            await admin_post(http, simulator, "faults", clear=True)
            await api.list_folders(refresh=True)
            assert (transport.health.failures, transport.health.failing_since) == (0, None)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == [
        "async_orch.server_not_answering",  # at 40 s
        "async_orch.server_not_answering",  # at 80 s
        "async_orch.server_answering_again",
    ]
    assert warnings[0]["seconds"] == 40.0 and warnings[0]["last_failure"] == "HTTP 502"


async def test_a_try_cancelled_on_the_wire_is_reported_as_cancelled_not_as_a_failure(
    simulator: SimulatorHandle, fake_clock: FakeClock, http: Any
) -> None:
    import anyio

    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))
    cancelled: list[ResponseReceived] = []

    class Cancelled(TransportHooks):
        def on_response(self, event: ResponseReceived) -> None:
            if event.cancelled:
                cancelled.append(event)

    transport = Transport(settings, clock=fake_clock, hooks=[Cancelled()])
    async with transport:
        await transport.request("GET", "odata/Folders")
        await admin_post(http, simulator, "faults", slow_rate=1.0, slow_seconds=3.0)
        with anyio.move_on_after(0.2):  # real time: the answer is 3 s away
            await transport.request("GET", "odata/Folders")
        await admin_post(http, simulator, "faults", clear=True)
    assert [(e.request.endpoint, e.status, e.error) for e in cancelled] == [
        ("odata/Folders", None, "cancelled")
    ]
    assert not cancelled[0].server_failing
    assert transport.health.failures == 0  # neither an answer nor a failure


# -- headers added by hooks ------------------------------------------------------------


@pytest.fixture
def server_headers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Mapping[str, str]]]:
    """(path, headers) of every request the simulators of this test receive."""
    seen: list[tuple[str, Mapping[str, str]]] = []

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        seen.append((request.path, request.headers.copy()))
        return await handler(request)

    add_simulator_middleware(monkeypatch, record)
    return seen


async def test_headers_a_hook_returns_go_on_the_wire_but_never_replace_ours(
    start_simulator: Callable[..., Any], server_headers: list[tuple[str, Mapping[str, str]]]
) -> None:
    simulator = await start_simulator()
    attempts: list[int] = []

    class Adding(TransportHooks):
        def on_request(self, event: RequestSent) -> dict[str, str]:
            attempts.append(event.attempt)
            return {"X-Trace": f"try-{event.attempt}", "Authorization": "Bearer forged"}

    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))
    async with Transport(settings, hooks=[Adding()]) as transport:
        await transport.request("GET", "odata/Folders")  # would be a 401 with the forged token

    api = [headers for path, headers in server_headers if path.endswith("/odata/Folders")]
    assert [h.get("X-Trace") for h in api] == ["try-1"]
    assert api[0]["Authorization"] != "Bearer forged"
    # The token request is sent as built: the identity server is not Orchestrator.
    token = [headers for path, headers in server_headers if path.endswith("/connect/token")]
    assert len(token) == 1 and "X-Trace" not in token[0]
    assert attempts == [1, 1]  # the token request, then the API request


@pytest.mark.parametrize(
    "returned",
    [["X-Trace"], "X-Trace: 1", {"X-Trace": 1}, {"X-Trace": "a\r\nX-Injected: 1"}, {"X Bad": "1"}],
)
async def test_a_hook_returning_something_that_is_not_headers_is_logged_and_ignored(
    start_simulator: Callable[..., Any],
    server_headers: list[tuple[str, Mapping[str, str]]],
    returned: object,
) -> None:
    simulator = await start_simulator()

    class Odd(TransportHooks):
        def on_request(self, event: RequestSent) -> Any:
            return returned

    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))
    with structlog.testing.capture_logs() as logs:
        async with Transport(settings, hooks=[Odd()]) as transport:
            await transport.request("GET", "odata/Folders")

    (api,) = [headers for path, headers in server_headers if path.endswith("/odata/Folders")]
    assert not {"X-Trace", "X-Injected", "X Bad"} & set(api)
    assert [e["event"] for e in logs].count("async_orch.hook_failed") == 1
