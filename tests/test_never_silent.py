"""Never silent: a heartbeat names what a quiet batch waits for; a revoked token is
explained as revoked (issue 11, point 7)."""

from __future__ import annotations

import io

import aiohttp
import anyio
import pytest
import structlog
from conftest import FakeClock, SimClient
from test_integration_auth import admin_post, connect, demo_credentials

from async_orch._cli.progress import ProgressDisplay, waiting_text
from async_orch._config import Settings, StaticToken
from async_orch._errors import AuthenticationError
from async_orch._jobs import Progress
from async_orch._transport import Transport
from async_orch._transport_hooks import ResponseReceived, TransportHealth, TransportHooks
from async_orch.simulator import SimulatorHandle

# -- the heartbeat (pure, on an injected clock) ---------------------------------------------


def _plain(
    clock: FakeClock, health: TransportHealth | None = None
) -> tuple[ProgressDisplay, io.StringIO]:
    out = io.StringIO()
    display = ProgressDisplay(
        out, live=False, clock=clock, health=None if health is None else (lambda: health)
    )
    return display, out


def _beat_for(display: ProgressDisplay, clock: FakeClock, seconds: int) -> None:
    for _ in range(seconds):
        clock.advance(1)
        display.heartbeat()


def test_a_frozen_batch_prints_what_it_waits_for_at_least_every_10_s() -> None:
    clock = FakeClock()
    display, out = _plain(clock)
    progress = Progress(total=40)
    progress.move("Finance", None, "Running", 32)
    progress.move("HR", None, "Pending", 8)
    display.update(progress)
    before = out.getvalue()
    _beat_for(display, clock, 80)
    beats = out.getvalue()[len(before) :].splitlines()
    assert len(beats) == 8  # 80 s of silence: a line every 10 s
    assert beats[-1] == (
        "waiting: waiting on 32 jobs Running in Finance, 8 jobs Pending in HR; "
        "last change 1m20s ago"
    )


def test_an_outage_is_named_as_such() -> None:
    clock = FakeClock()
    health = TransportHealth(
        last_answer=clock() - 45,
        failing_since=clock() - 40,
        failures=6,
        last_failure="cannot connect: refused",
    )
    assert waiting_text(None, health, now=clock(), last_change=clock() - 45) == (
        "server not answering for 40 s (cannot connect: refused, 6 tries), retrying"
    )
    throttled = TransportHealth(failing_since=clock() - 12, failures=3, last_failure="HTTP 429")
    assert waiting_text(None, throttled, now=clock(), last_change=clock()).startswith(
        "rate limited for 12 s"
    )


def test_a_long_wait_is_logged_as_a_warning_even_when_quiet() -> None:
    clock = FakeClock()
    out = io.StringIO()
    display = ProgressDisplay(out, live=False, quiet=True, clock=clock)
    progress = Progress(total=1)
    progress.move("Shared", None, "Pending")
    display.update(progress)
    with structlog.testing.capture_logs() as logs:
        _beat_for(display, clock, 125)
    assert out.getvalue() == ""
    warnings = [e for e in logs if e["event"] == "async_orch.batch_waiting"]
    assert [w["seconds_since_change"] for w in warnings] == [60, 120]
    assert warnings[0]["waiting_for"].startswith("waiting on 1 job Pending in Shared")


def test_the_live_line_names_the_wait_once_it_is_one() -> None:
    clock = FakeClock()
    out = io.StringIO()
    display = ProgressDisplay(out, live=True, clock=clock)
    progress = Progress(total=2)
    progress.move("Shared", None, "Running", 2)
    display.update(progress)
    _beat_for(display, clock, 3)
    assert "waiting on" not in out.getvalue().rsplit("\r", 1)[-1]  # changes are recent
    _beat_for(display, clock, 10)
    assert (
        out.getvalue()
        .rsplit("\r", 1)[-1]
        .endswith("| waiting on 2 jobs Running in Shared; last change 13 s ago")
    )
    display.finish()
    written = out.getvalue()
    _beat_for(display, clock, 20)
    assert out.getvalue() == written  # nothing after the end


async def test_the_heartbeat_runs_while_the_block_runs_and_errors_pass_through() -> None:
    clock = FakeClock()
    display, out = _plain(clock)
    ticks: list[float] = []

    async def sleep(seconds: float) -> None:
        ticks.append(seconds)
        clock.advance(seconds)
        if len(ticks) > 30:
            raise AssertionError("the heartbeat outlived its block")
        await anyio.lowlevel.checkpoint()

    with pytest.raises(ValueError, match="as is"):
        async with display.beating(sleep=sleep):
            while len(ticks) < 12:
                await anyio.lowlevel.checkpoint()
            raise ValueError("raised as is, not in an ExceptionGroup")
    assert out.getvalue().startswith("waiting: waiting for the server; last change 10 s ago\n")


# -- revoked tokens, on the simulator --------------------------------------------------------


class RevokeEveryIssuedToken(TransportHooks):
    """An administrator revoking the application's tokens as soon as they are issued."""

    def __init__(self, simulator: SimulatorHandle) -> None:
        self.simulator = simulator
        self.on = False

    def on_response(self, event: ResponseReceived) -> None:
        if self.on and event.request.endpoint == "token" and event.status == 200:
            self.simulator.simulator.revoke_tokens()  # what POST /_simulator/revoke-tokens does


async def test_a_renewed_token_refused_after_earlier_success_is_explained_as_revoked(
    simulator: SimulatorHandle, http: aiohttp.ClientSession
) -> None:
    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))
    revoker = RevokeEveryIssuedToken(simulator)
    async with Transport(settings, hooks=[revoker]) as transport:
        await transport.request("GET", "odata/Folders")
        revoker.on = True
        await admin_post(http, simulator, "revoke-tokens")
        with pytest.raises(AuthenticationError) as caught:
            await transport.request("GET", "odata/Folders")
    message = str(caught.value)
    assert "revoked" in message and "Orchestrator URL" not in message
    assert transport.stats.token_requests == 2


async def test_a_renewed_token_refused_at_once_is_explained_as_revoked(
    simulator: SimulatorHandle,
) -> None:
    # Never accepted in this run, but the 401 says the token was revoked
    # (WWW-Authenticate, RFC 6750): not a URL problem (issue 14, point 4).
    settings = Settings(url=simulator.url, credentials=demo_credentials(simulator))
    revoker = RevokeEveryIssuedToken(simulator)
    revoker.on = True
    async with Transport(settings, hooks=[revoker]) as transport:
        with pytest.raises(AuthenticationError) as caught:
            await transport.request("GET", "odata/Folders")
        assert transport.stats.token_requests == 2  # refused, renewed, refused again
    message = str(caught.value)
    assert "revoked" in message and "Check the Orchestrator URL" not in message
    assert "the URL and credentials are right" in message


async def test_a_personal_access_token_revoked_mid_run_is_explained_as_revoked(
    simulator: SimulatorHandle, orch: SimClient, http: aiohttp.ClientSession
) -> None:
    token = await orch.token("OR.Folders.Read OR.Execution.Read OR.Jobs")
    settings = Settings(url=simulator.url, credentials=StaticToken(token=token))
    async with connect(settings) as (api, _):
        await api.list_folders()
        await admin_post(http, simulator, "revoke-tokens")
        with pytest.raises(AuthenticationError) as caught:
            await api.list_folders(refresh=True)
    message = str(caught.value)
    assert "accepted earlier in this run" in message and "revoked" in message
    assert token not in message


async def test_a_batch_whose_token_is_revoked_for_good_ends_with_the_error(
    simulator: SimulatorHandle, orch: SimClient
) -> None:
    """A personal access token revoked mid-batch can never be renewed: the batch ends
    with the AuthenticationError after a few refused calls, instead of polling for
    ever while the progress line says the job is running."""
    from test_dispatcher_support import fast_poll

    from async_orch import Hooks, JobRequest, OrchestratorClient

    token = await orch.token("OR.Folders.Read OR.Execution.Read OR.Jobs")
    settings = Settings(url=simulator.url, credentials=StaticToken(token=token))
    revoked: list[int] = []

    def revoke(index: int, handle: object) -> None:
        revoked.append(simulator.simulator.revoke_tokens())

    request = JobRequest(process="DailyReport", folder="Shared")
    async with OrchestratorClient(settings, poll=fast_poll()) as client:
        with pytest.raises(AuthenticationError, match="revoked"):
            await client.run_jobs([request], hooks=Hooks(on_started=revoke))
    assert revoked  # the job had started: it was watched when its token went
