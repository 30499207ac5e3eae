"""``GET /_simulator/webhooks``: what the simulator delivered, over real sockets.

Three webhooks: one to a WebhookReceiver served on port 0 (sent), one to a port
nothing listens on and one with the wrong secret (failed: no answer, and 401), with
a share of deliveries dropped on purpose. The waits are on the hub's counters.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import anyio
import pytest
import structlog
from aiohttp import web
from conftest import serve_on_loopback
from test_dispatcher_support import fast_poll, fast_settings, scenario

from async_orch import JobRequest, OrchestratorClient, Outcome, WebhookReceiver
from async_orch.simulator import SimulatorHandle
from async_orch.simulator import webhooks as hub_module

SECRET = "a-webhook-secret-for-tests"
CLOSED_SECRET = "secret-of-the-closed-port"
WRONG_SECRET = "not-the-receivers-secret"
JOBS = 10
ENDED = ("job.completed",)
PER_JOB = 4  # started + completed to the receiver, completed to each of the other two


def closed_port() -> int:
    """A port nothing listens on: bound, then freed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def subscribe(
    sim: SimulatorHandle, name: str, url: str, secret: str, events: tuple[str, ...] = ()
) -> int:
    dto = {
        "Name": name,
        "Url": url,
        "Secret": secret,
        "Enabled": True,
        "SubscribeToAllEvents": not events,
        "AllowInsecureSsl": False,
        "Events": [{"EventType": e} for e in events],
    }
    return sim.simulator.webhooks.create(sim.simulator.tenants[0], dto).id


async def run_jobs_with_three_webhooks(sim: SimulatorHandle) -> tuple[dict[str, int], set[int]]:
    """Subscribe the three webhooks, run JOBS jobs and wait for every delivery."""
    receiver = WebhookReceiver(SECRET)
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    async with serve_on_loopback(app) as root:
        ids = {
            "receiver": subscribe(sim, "receiver", f"{root}/hooks", SECRET),
            "closed": subscribe(
                sim, "closed", f"http://127.0.0.1:{closed_port()}/", CLOSED_SECRET, ENDED
            ),
            "wrong_secret": subscribe(sim, "wrong", f"{root}/hooks", WRONG_SECRET, ENDED),
        }
        requests = [
            JobRequest(process="Echo", folder="Shared", inputs={"n": n}) for n in range(JOBS)
        ]
        async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
            with anyio.fail_after(30):
                results = await orch.run_jobs(requests)
        assert all(r.outcome is Outcome.SUCCESSFUL for r in results), results
        with anyio.fail_after(10):  # a delivery may be decided after run_jobs returned
            await sim.simulator.webhooks.wait_handled(JOBS * PER_JOB)
    return ids, {r.job.id for r in results if r.job is not None}


async def get_view(sim: SimulatorHandle) -> tuple[str, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(sim.root_url + "/_simulator/webhooks", headers=sim.admin_headers) as response,
    ):
        assert response.status == 200
        text = await response.text()
        return text, await response.json()


async def test_the_view_shows_sent_failed_and_dropped_deliveries_and_never_a_secret(
    start_simulator: Callable[..., Any],
) -> None:
    sim: SimulatorHandle = await start_simulator(
        scenario(), time_scale=50.0, faults={"webhook_drop_rate": 0.3}
    )
    with structlog.testing.capture_logs() as logs:
        ids, job_ids = await run_jobs_with_three_webhooks(sim)
    text, view = await get_view(sim)

    for secret in (SECRET, CLOSED_SECRET, WRONG_SECRET):
        assert secret not in text
    assert "not an Orchestrator API" in view["note"] and view["kept"] == 200
    tenant = view["tenants"]["test/T"]
    subscriptions = {s["id"]: s for s in tenant["subscriptions"]}
    assert set(subscriptions) == set(ids.values())
    assert subscriptions[ids["receiver"]]["events"] == sorted(hub_module.EVENT_TYPES)
    assert subscriptions[ids["closed"]]["events"] == ["job.completed"]
    assert all(s["signed"] and set(s) == {"id", "name", "url", "enabled", "events", "signed"}
               for s in subscriptions.values())  # fmt: skip

    deliveries = tenant["deliveries"]
    assert len(deliveries) == JOBS * PER_JOB  # fewer than kept: every one is there
    counts = Counter(d["outcome"] for d in deliveries)
    assert tenant["counts"] == view["counts"] == dict(sim.simulator.webhooks.counts) == counts
    assert counts["sent"] > 0 and counts["failed"] > 0 and counts["dropped"] > 0
    assert counts["dropped"] == sim.simulator.stats()["faults"]["webhook_drop"]
    by_outcome: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for d in deliveries:
        assert set(d) == {"time", "event", "job_id", "subscription_id", "url", "outcome",
                          "status", "error", "latency_ms"}  # fmt: skip
        assert d["job_id"] in job_ids and datetime.fromisoformat(d["time"]).tzinfo is not None
        assert d["url"] == subscriptions[d["subscription_id"]]["url"]
        by_outcome.setdefault((d["outcome"], d["subscription_id"]), []).append(d)
    # Sent: only to the receiver with its secret, answered 200.
    assert {s for o, s in by_outcome if o == "sent"} == {ids["receiver"]}
    for d in by_outcome[("sent", ids["receiver"])]:
        assert d["status"] == 200 and d["error"] is None and d["latency_ms"] >= 0
        assert d["event"] in {"job.started", "job.completed"}
    # Failed: no answer from the closed port (the error says why), 401 from the receiver.
    assert {s for o, s in by_outcome if o == "failed"} == {ids["closed"], ids["wrong_secret"]}
    for d in by_outcome[("failed", ids["closed"])]:
        assert d["status"] is None and d["error"].startswith("ClientConnectorError: ")
        assert d["event"] == "job.completed" and d["latency_ms"] >= 0
    for d in by_outcome[("failed", ids["wrong_secret"])]:
        assert d["status"] == 401 and d["error"] is None
    for (outcome, _), dropped in by_outcome.items():
        if outcome == "dropped":
            assert all(d["status"] is d["error"] is d["latency_ms"] is None for d in dropped)

    # One warning per failing webhook, naming it and what to check; the rest at info.
    failures = [e for e in logs if e["event"] == "async_orch.simulator.webhook_failed"]
    warned = [e for e in failures if e["log_level"] == "warning"]
    assert sorted(e["subscription"] for e in warned) == sorted([ids["closed"], ids["wrong_secret"]])
    notes = {e["subscription"]: e["note"] for e in warned}
    assert "is a receiver listening at this URL" in notes[ids["closed"]]
    assert "answered HTTP 401" in notes[ids["wrong_secret"]]
    assert all("/_simulator/webhooks" in note for note in notes.values())
    assert len(failures) == counts["failed"]
    assert len(failures) > len(warned)  # later failures were logged, at info
    assert all(e["log_level"] == "info" for e in failures if e not in warned)


async def test_the_deliveries_kept_are_bounded_and_the_counts_go_on(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "DELIVERIES_KEPT", 7)
    sim: SimulatorHandle = await start_simulator(
        scenario(), time_scale=50.0, faults={"webhook_drop_rate": 0.3}
    )
    await run_jobs_with_three_webhooks(sim)
    _, view = await get_view(sim)
    tenant = view["tenants"]["test/T"]
    assert view["kept"] == 7 and len(tenant["deliveries"]) == 7
    assert sum(tenant["counts"].values()) == JOBS * PER_JOB  # counted, though not all kept


async def test_a_webhook_disabled_after_its_events_were_queued_is_not_sent(
    start_simulator: Callable[..., Any],
) -> None:
    """dispatch --webhook-listen with --simulator disables its webhook before its
    receiver closes: an event still on its way is then not posted to the closed
    port (which logged a warning after a run that went well)."""
    sim: SimulatorHandle = await start_simulator(scenario())
    hub = sim.simulator.webhooks
    url = f"http://127.0.0.1:{closed_port()}/"
    subscription = hub.create(
        sim.simulator.tenants[0],
        {
            "Name": "closing",
            "Url": url,
            "Secret": SECRET,
            "Enabled": True,
            "SubscribeToAllEvents": True,
            "AllowInsecureSsl": False,
        },
    )
    tenant = subscription.tenant
    async with aiohttp.ClientSession() as session:
        subscription.enabled = False
        await hub._deliver(session, subscription, "job.completed", 1, b"{}")
        assert list(hub.deliveries[tenant]) == []
        assert sum(hub.counts.values()) == 0
        subscription.enabled = True  # the same delivery, enabled: tried and failed
        await hub._deliver(session, subscription, "job.completed", 1, b"{}")
    [delivery] = hub.deliveries[tenant]
    assert delivery["outcome"] == "failed" and delivery["url"] == url
