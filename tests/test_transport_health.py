"""A frozen server is "not answering" while a request still hangs, before any
fails: the transport's health counts the oldest request waiting for its answer
(an attack review: SIGSTOP of the simulator showed "waiting on 9 jobs Pending
...; last change 29 s ago" where docs/cli.md promises "server not answering")."""

from __future__ import annotations

import aiohttp
import aiohttp.web
import anyio
from conftest import FakeClock, serve_on_loopback

from async_orch._cli.progress import waiting_text
from async_orch._config import Settings, StaticToken
from async_orch._transport import Transport
from async_orch._transport_hooks import HealthTracker, TransportHealth


def test_the_oldest_request_waiting_counts_since_the_last_answer() -> None:
    clock = FakeClock(100.0)
    tracker = HealthTracker(clock)
    first = tracker.sending()
    clock.advance(3.0)
    second = tracker.sending()
    clock.advance(26.0)
    health = tracker.health
    assert (health.waiting_since, health.waiting) == (100.0, 2)
    assert health.silent_for(clock()) == 29.0
    assert health.failing_for(clock()) == 0.0  # nothing failed: the old blind spot

    tracker.answered(200, None, "GET Jobs")  # another request was answered at 129
    tracker.done(second)
    clock.advance(4.0)
    assert tracker.health.silent_for(clock()) == 4.0  # counted from that answer
    tracker.done(first)
    assert tracker.health.silent_for(clock()) == 0.0
    assert tracker.health.waiting_since is None


def test_the_heartbeat_says_not_answering_for_a_hanging_request() -> None:
    hanging = TransportHealth(last_answer=70.0, waiting_since=71.0, waiting=9)
    text = waiting_text(None, hanging, now=100.0, last_change=71.0)
    assert text == "server not answering for 29 s (9 requests waiting for an answer)"
    # A few seconds are a slow answer, not an outage.
    assert waiting_text(None, hanging, now=74.0, last_change=71.0).startswith("waiting for")
    # A failure streak that is longer says what failed, as before.
    failing = TransportHealth(failing_since=50.0, failures=6, last_failure="HTTP 503",
                              waiting_since=90.0, waiting=1)  # fmt: skip
    assert waiting_text(None, failing, now=100.0, last_change=50.0).startswith(
        "server not answering for 50 s (HTTP 503, 6 tries), retrying"
    )


async def test_a_request_the_server_holds_is_seen_as_the_server_not_answering() -> None:
    arrived, release = anyio.Event(), anyio.Event()

    async def held(request: aiohttp.web.Request) -> aiohttp.web.Response:
        arrived.set()
        await release.wait()
        return aiohttp.web.json_response({"value": []})

    app = aiohttp.web.Application()
    app.router.add_get("/acme/T/orchestrator_/odata/Folders", held)
    clock = FakeClock()
    async with serve_on_loopback(app) as root, aiohttp.ClientSession() as session:
        settings = Settings(url=f"{root}/acme/T/orchestrator_", credentials=StaticToken(token="t"))
        async with Transport(settings, session=session, clock=clock) as transport:
            async with anyio.create_task_group() as tg:
                tg.start_soon(transport.request, "GET", "odata/Folders")
                await arrived.wait()
                clock.advance(29.0)
                health = transport.health
                assert health.waiting == 1 and health.silent_for(clock()) == 29.0
                assert waiting_text(None, health, now=clock(), last_change=0.0) == (
                    "server not answering for 29 s (1 request waiting for an answer)"
                )
                release.set()
            assert transport.health.waiting == 0
            assert transport.health.silent_for(clock()) == 0.0
