"""Webhooks over real sockets: the simulator delivers signed job events to a
WebhookReceiver served on port 0, and batches finish with push and polling.

Push only speeds detection: every test also checks that every job comes out
with its outputs (webhook payloads carry none) whatever share of events is lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import structlog
from aiohttp import web
from conftest import SimClient, serve_on_loopback
from test_dispatcher_support import LIST_JOBS, fast_settings, requests_to, scenario

from async_orch import JobRequest, OrchestratorClient, Outcome, PollPolicy, WebhookReceiver
from async_orch._webhooks import FINAL_EVENT_STATES, SIGNATURE_HEADER, signature_of
from async_orch.simulator import SimulatorHandle

SECRET = "a-webhook-secret-for-tests"


@asynccontextmanager
async def serve(receiver: WebhookReceiver) -> AsyncIterator[str]:
    """Serve the receiver mounted in an application of our own, on 127.0.0.1:<free port>."""
    app = web.Application()
    app.router.add_post("/hooks/uipath", receiver.handle)  # mountable at any path
    async with serve_on_loopback(app) as root:
        yield f"{root}/hooks/uipath"


def subscribe(sim: SimulatorHandle, url: str, secret: str | None = SECRET) -> None:
    """Register a webhook in-process (the route itself is tested below)."""
    tenant = sim.simulator.tenants[0]
    dto = {
        "Name": "async-orch",
        "Url": url,
        "Enabled": True,
        "SubscribeToAllEvents": True,
        "AllowInsecureSsl": False,
        "Secret": secret,
    }
    sim.simulator.webhooks.create(tenant, dto)


def echo_requests(count: int, folders: tuple[str, ...] = ("Shared",)) -> list[JobRequest]:
    return [
        JobRequest(process="Echo", folder=folders[i % len(folders)], inputs={"n": i})
        for i in range(count)
    ]


def assert_all_successful_with_outputs(results: list[Any], count: int) -> None:
    assert len(results) == count
    for result in results:
        assert result.outcome is Outcome.SUCCESSFUL, result
        assert result.outputs == result.request.inputs, result


def poll(min_interval: float, max_interval: float) -> PollPolicy:
    return PollPolicy(
        list_budget_per_minute=6000,
        min_interval=min_interval,
        max_interval=max_interval,
        interval_growth=0.1,
        probe_rate_per_second=100.0,
    )


async def test_the_webhooks_route_registers_a_subscription_the_simulator_delivers_to(
    simulator: SimulatorHandle, orch: SimClient, fake_clock: Any
) -> None:
    receiver = WebhookReceiver(SECRET)
    seen: list[Any] = []
    arrived = anyio.Event()

    def on_event(event: Any) -> None:
        seen.append(event)
        arrived.set()

    receiver.subscribe(on_event)
    async with serve(receiver) as url:
        token = await orch.token("OR.Webhooks")
        headers = {"Authorization": f"Bearer {token}"}
        dto = {
            "Name": "hook",
            "Url": url,
            "Secret": SECRET,
            "Enabled": True,
            "SubscribeToAllEvents": False,
            "AllowInsecureSsl": False,
            "Events": [{"EventType": "job.completed"}],
        }
        status, body, _ = await orch.post("/odata/Webhooks", headers=headers, json=dto)
        assert status == 201, body
        assert body["Url"] == url and "Secret" not in body
        status, body, _ = await orch.get("/odata/Webhooks", headers=headers)
        assert status == 200 and [w["Name"] for w in body["value"]] == ["hook"]
        status, body, _ = await orch.post("/odata/Webhooks", json=dto)  # no OR.Webhooks scope
        assert status == 403, body
        status, body, _ = await orch.post("/odata/Webhooks", headers=headers, json={"Url": url})
        assert status == 400 and "Name" in body["message"], body

        (job,) = await orch.start("Shared")
        fake_clock.advance(120)  # pickup and run: the job ends
        with anyio.fail_after(10):
            await arrived.wait()
    assert [(e.type, e.job_id, e.state.value) for e in seen] == [
        ("job.completed", job["Id"], "Successful")
    ]
    assert seen[0].folder_id == job["OrganizationUnitId"]


async def test_refusals_over_http_unsigned_wrong_stale_and_replayed() -> None:
    receiver = WebhookReceiver(SECRET)
    seen: list[Any] = []
    receiver.subscribe(seen.append)

    def body(event_id: str, at: float) -> bytes:
        stamp = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
        payload = {"Type": "job.completed", "EventId": event_id, "Timestamp": stamp}
        payload["Job"] = {"Id": 1, "State": "Successful"}  # type: ignore[assignment]
        return json.dumps(payload).encode()

    fresh, stale = body("a", time.time()), body("b", time.time() - 3600)
    async with serve(receiver) as url, aiohttp.ClientSession() as http:

        async def post(raw: bytes, signature: str | None) -> int:
            headers = {SIGNATURE_HEADER: signature} if signature is not None else {}
            async with http.post(url, data=raw, headers=headers) as response:
                return response.status

        assert await post(fresh, None) == 401
        with structlog.testing.capture_logs() as logs:
            assert await post(fresh, signature_of("not the secret", fresh)) == 401
            assert await post(fresh + b" ", signature_of(SECRET, fresh)) == 401  # body changed
        warned = [e for e in logs if e["event"] == "async_orch.webhook_bad_signatures"]
        assert len(warned) == 1 and "ASYNC_ORCH_WEBHOOK_SECRET" in warned[0]["note"]
        # Said once a minute at most: the count is so far, not the total.
        assert warned[0]["refused_so_far"] == 1 and "once a minute" in warned[0]["note"]
        assert await post(stale, signature_of(SECRET, stale)) == 400
        assert seen == []
        assert await post(fresh, signature_of(SECRET, fresh)) == 200
        assert await post(fresh, signature_of(SECRET, fresh)) == 200  # replay: ignored
    assert len(seen) == 1
    assert dict(receiver.counts) == {
        "unsigned": 1,
        "bad_signature": 2,
        "stale": 1,
        "accepted": 1,
        "duplicate": 1,
    }


async def test_push_finishes_jobs_long_before_the_first_poll(
    start_simulator: Callable[..., Any],
) -> None:
    # Polling alone would not look before 5 s; the jobs end within ~0.3 s.
    sim: SimulatorHandle = await start_simulator(scenario(), time_scale=20.0)
    receiver = WebhookReceiver(SECRET)
    async with serve(receiver) as url:
        subscribe(sim, url)
        async with OrchestratorClient(
            fast_settings(sim), poll=poll(5.0, 30.0), webhooks=receiver
        ) as orch:
            started = time.monotonic()
            with anyio.fail_after(4.5):
                results = await orch.run_jobs(echo_requests(20, ("Shared", "HR")))
            elapsed = time.monotonic() - started
    assert_all_successful_with_outputs(results, 20)
    assert elapsed < 4.5
    assert requests_to(sim, LIST_JOBS) == 0  # all seen by push, read by id
    assert receiver.counts["accepted"] >= 20


@pytest.mark.parametrize("drop", [0.1, 1.0])
async def test_no_job_is_lost_when_webhooks_are_dropped(
    start_simulator: Callable[..., Any], drop: float
) -> None:
    sim: SimulatorHandle = await start_simulator(
        scenario(), time_scale=50.0, faults={"webhook_drop_rate": drop}
    )
    receiver = WebhookReceiver(SECRET, quiet_after=0.5)
    async with serve(receiver) as url:
        subscribe(sim, url)
        async with OrchestratorClient(
            fast_settings(sim), poll=poll(0.05, 0.5), webhooks=receiver
        ) as orch:
            with anyio.fail_after(30):
                results = await orch.run_jobs(echo_requests(60, ("Shared", "HR", "Finance")))
    assert_all_successful_with_outputs(results, 60)
    # Every job ended, so 120 events (started + ended) were queued; the hub decides
    # to drop one when it takes it, which may be after run_jobs returned.
    hub = sim.simulator.webhooks
    with anyio.fail_after(10):
        await hub.wait_handled(120)
    stats = sim.simulator.stats()
    dropped = stats["faults"]["webhook_drop"]
    delivered = hub.counts["sent"]
    if drop == 1.0:
        assert delivered == 0 and dropped >= 120  # started + ended, none delivered
        assert requests_to(sim, LIST_JOBS) > 0  # polling found every job
    else:
        assert dropped > 0 and delivered > 0


async def test_fewer_list_calls_with_push(start_simulator: Callable[..., Any]) -> None:
    async def list_calls(push: bool) -> int:
        # Jobs run ~0.8 s real (4 simulated s at time scale 5), picked up after 0.1 s.
        sim: SimulatorHandle = await start_simulator(
            scenario(echo=(4.0, 4.0), pickup_delay=0.5), time_scale=5.0
        )
        receiver = WebhookReceiver(SECRET) if push else None
        async with serve(receiver or WebhookReceiver(SECRET)) as url:
            if push:
                subscribe(sim, url)
            async with OrchestratorClient(
                fast_settings(sim), poll=poll(0.05, 0.5), webhooks=receiver
            ) as orch:
                with anyio.fail_after(20):
                    results = await orch.run_jobs(echo_requests(20))
        assert_all_successful_with_outputs(results, 20)
        return requests_to(sim, LIST_JOBS)

    without, with_push = await list_calls(False), await list_calls(True)
    assert with_push <= without // 2, (with_push, without)


async def test_with_30_percent_of_events_lost_polling_finds_those_jobs_and_lists_less(
    start_simulator: Callable[..., Any],
) -> None:
    # Job ends spread over ~3 real seconds (1 to 30 simulated s at time scale 10), so
    # polling alone lists the folders many times while they come in.
    count, folders = 30, ("Shared", "HR", "Finance")

    async def run(push: bool) -> tuple[list[Any], set[int], int, int]:
        sim: SimulatorHandle = await start_simulator(
            scenario(echo=(1.0, 30.0), pickup_delay=0.5, seed=11),
            time_scale=10.0,
            faults={"webhook_drop_rate": 0.3},
        )
        receiver = WebhookReceiver(SECRET)
        heard: set[int] = set()  # jobs whose end event arrived
        receiver.subscribe(lambda event: heard.add(event.job_id) if event.ended else None)
        async with serve(receiver) as url:
            if push:  # the job-end events only: one event (and one drop draw) a job
                sim.simulator.webhooks.create(
                    sim.simulator.tenants[0],
                    {
                        "Name": "ends", "Url": url, "Secret": SECRET, "Enabled": True,
                        "SubscribeToAllEvents": False, "AllowInsecureSsl": False,
                        "Events": [{"EventType": t} for t in FINAL_EVENT_STATES],
                    },
                )  # fmt: skip
            async with OrchestratorClient(
                fast_settings(sim), poll=poll(0.05, 0.2), webhooks=receiver if push else None
            ) as orch:
                with anyio.fail_after(30):
                    results = await orch.run_jobs(echo_requests(count, folders))
        dropped = sim.simulator.stats()["faults"]["webhook_drop"]
        return results, heard, dropped, requests_to(sim, LIST_JOBS)

    results, heard, dropped, with_push = await run(push=True)
    assert_all_successful_with_outputs(results, count)
    ids = {result.job.id for result in results}
    lost = ids - heard  # no event came: only polling could have found these
    assert heard <= ids and 0 < dropped < count  # the seeded share of drops
    assert len(lost) == dropped, (sorted(lost), dropped)
    assert with_push > 0  # polling went on, and found the lost ones

    results, heard, dropped, without = await run(push=False)
    assert_all_successful_with_outputs(results, count)
    assert heard == set() and dropped == 0  # nobody subscribed: nothing sent
    assert with_push < without, (with_push, without)


def _simulator_md() -> str:
    return (Path(__file__).resolve().parent.parent / "docs" / "simulator.md").read_text("utf-8")


async def test_simulator_md_documents_the_webhooks_route_and_every_field_it_requires(
    simulator: SimulatorHandle, orch: SimClient
) -> None:
    """The fields the simulator refuses a subscription without (its 400 names them)
    are the ones simulator.md lists for POST /odata/Webhooks."""
    token = await orch.token("OR.Webhooks")
    headers = {"Authorization": f"Bearer {token}"}
    status, body, _ = await orch.post("/odata/Webhooks", headers=headers, json={})
    assert status == 400, body
    required = body["message"].split("WebhookDto requires ", 1)[1].split(", ")
    doc = _simulator_md()
    described = doc.split("`POST /odata/Webhooks`", 1)[1].split("\n\n", 1)[0]
    for field in [*required, "Secret", "Events"]:
        assert f"`{field}`" in described, field
