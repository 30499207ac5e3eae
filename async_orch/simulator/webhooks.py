"""Webhooks: subscriptions (``/odata/Webhooks``) and the delivery of signed job events.

Modelled from docs.uipath.com orchestrator ("About webhooks", "Types of events")
and the OpenAPI description (``Webhooks_Get``, ``Webhooks_Post``, ``WebhookDto``):

- A subscription is tenant-wide: ``Url``, ``Secret`` (optional, up to 100
  characters), ``Enabled``, ``SubscribeToAllEvents`` or ``Events`` (``[{"EventType":
  "job.completed"}]``). Scopes OR.Webhooks or OR.Webhooks.Read/.Write.
- Events sent here: job.started, job.completed, job.faulted, job.stopped, each a
  POST of ``{"Type", "EventId", "Timestamp", "Job": {...}, "TenantId",
  "OrganizationUnitId", "FolderId"}``. ASSUMPTION: these types carry one job under
  ``Job`` (job.created's documented example uses ``Jobs``). ``InputArguments`` and
  ``OutputArguments`` are sent as null ("may be null or {}").
- The body is signed when the subscription has a secret: ``X-UiPath-Signature`` =
  base64(HMAC-SHA256(secret as UTF-8, raw body)).
- Events are not stored or retried: a delivery that fails is lost, and the
  ``webhook_drop_rate`` fault loses a share of them on purpose.
- ``Timestamp`` is the real wall-clock time of sending, not simulated time: a
  receiver checks freshness against its own clock, at any time scale.

Not modelled: the circuit breaker that disables a webhook for an hour after a
failed delivery.

The simulator's own record of deliveries (not Orchestrator's): the last
:data:`DELIVERIES_KEPT` of each tenant (time, event, job, subscription, URL,
outcome, HTTP status or error, latency) and their counts, served by ``GET
/_simulator/webhooks`` (admin.py). ASSUMPTION: how the real service shows
deliveries is not in ../shared/orchestrator-api.md, which says only that events are
neither stored nor retried; this view is for seeing what the simulator sent. A
subscription's first failed delivery is logged at warning, the rest at info: a
wrong receiver URL shows without flooding the log.

Jobs live on simulated time and the engine only moves when asked
(``engine.py``), so :meth:`WebhookHub.run` advances the tenants that have
subscriptions as their next job event falls due, and sends what changed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio

from async_orch._logs import get_logger
from async_orch._states import JobState
from async_orch.simulator.dto import source_type
from async_orch.simulator.faults import FaultKind
from async_orch.simulator.problems import INVALID_REQUEST, ApiProblem

if TYPE_CHECKING:
    from async_orch.simulator.core import Simulator, TenantRuntime
    from async_orch.simulator.engine import Job

__all__ = ["DELIVERIES_KEPT", "EVENT_TYPES", "Subscription", "WebhookHub"]

log = get_logger("async_orch.simulator.webhooks")

_TYPE_OF_STATE = {
    JobState.RUNNING: "job.started",
    JobState.SUCCESSFUL: "job.completed",
    JobState.FAULTED: "job.faulted",
    JobState.STOPPED: "job.stopped",
}
EVENT_TYPES = frozenset(_TYPE_OF_STATE.values())
# ASSUMPTION: how many deliveries the service has in flight at once is not
# documented; events are sent as they happen (about-webhooks), so this is set high
# enough not to hold events back at ~1,000 job ends a second (aiohttp's default
# limit of 100 connections a session).
_SENDERS = 100
_IDLE_WAIT = 0.25  # real seconds between looks at the clock when nothing is due
_SEND_TIMEOUT = 10.0
DELIVERIES_KEPT = 200  # per tenant, for GET /_simulator/webhooks: memory stays bounded


@dataclass(slots=True, kw_only=True)
class Subscription:
    """One WebhookDto of a tenant."""

    id: int
    tenant: str  # its tenant's key
    key: str
    name: str
    url: str
    secret: str | None
    enabled: bool
    all_events: bool
    events: frozenset[str]
    allow_insecure_ssl: bool
    description: str | None

    def wants(self, event_type: str) -> bool:
        return self.enabled and (self.all_events or event_type in self.events)

    def dto(self) -> dict[str, Any]:
        # UNCONFIRMED: whether the service echoes Secret; it is left out here.
        return {
            "Key": self.key,
            "Name": self.name,
            "Description": self.description,
            "Url": self.url,
            "Enabled": self.enabled,
            "SubscribeToAllEvents": self.all_events,
            "AllowInsecureSsl": self.allow_insecure_ssl,
            "Events": [{"EventType": e} for e in sorted(self.events)],
            "Id": self.id,
        }


class WebhookHub:
    """Every tenant's subscriptions, and the queue of events to deliver."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self.subscriptions: dict[str, list[Subscription]] = {}  # by tenant key
        self._next_id = 1
        self._queue: deque[tuple[Subscription, str, int, bytes]] = deque()
        self._rng = random.Random(f"webhooks:{sim.scenario.seed}")
        # Drops draw from a stream of their own: the n-th delivery meets the same
        # decision whatever else (EventIds, Keys) was drawn in between.
        self._drop_rng = random.Random(f"webhook-drops:{sim.scenario.seed}")
        self._wake: anyio.Event | None = None  # set while run() waits
        self._counted: anyio.Event | None = None  # set when an event is sent, failed or dropped
        # Per tenant key: the last deliveries, newest last, and their counts.
        self.deliveries = {
            t.key: deque[dict[str, Any]](maxlen=DELIVERIES_KEPT) for t in sim.tenants
        }
        self.tenant_counts: dict[str, Counter[str]] = {t.key: Counter() for t in sim.tenants}
        self._warned: set[int] = set()  # subscriptions whose failure was logged at warning
        for index, tenant in enumerate(sim.tenants):
            tenant.engine.on_change = self._observer(tenant, index + 1)

    # -- subscriptions (the OData endpoints) ----------------------------------

    def create(self, tenant: TenantRuntime, body: object) -> Subscription:
        """Validate a WebhookDto and subscribe it; raises ApiProblem (400) if invalid."""
        if not isinstance(body, dict):
            raise _invalid("the body must be a WebhookDto JSON object")
        missing = [
            name
            for name in ("Name", "Url", "Enabled", "SubscribeToAllEvents", "AllowInsecureSsl")
            if name not in body
        ]
        if missing:
            raise _invalid(f"WebhookDto requires {', '.join(missing)}")
        name, url, secret = body["Name"], body["Url"], body.get("Secret")
        if not isinstance(name, str) or not 0 < len(name) <= 128:
            raise _invalid("Name must be a string of 1 to 128 characters")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _invalid("Url must be an absolute http(s) URL")
        if len(url) > 2000:
            raise _invalid("Url must be at most 2000 characters")
        if secret is not None and (not isinstance(secret, str) or len(secret) > 100):
            raise _invalid("Secret must be a string of at most 100 characters")
        flags = {k: body[k] for k in ("Enabled", "SubscribeToAllEvents", "AllowInsecureSsl")}
        if not all(isinstance(v, bool) for v in flags.values()):
            raise _invalid("Enabled, SubscribeToAllEvents and AllowInsecureSsl must be booleans")
        events = body.get("Events") or []
        if not isinstance(events, list) or not all(
            isinstance(e, dict) and isinstance(e.get("EventType"), str) for e in events
        ):
            raise _invalid('Events must be a list of {"EventType": "job.completed"} objects')
        subscription = Subscription(
            id=self._next_id,
            tenant=tenant.key,
            key=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            name=name,
            url=url,
            secret=secret or None,
            enabled=flags["Enabled"],
            all_events=flags["SubscribeToAllEvents"],
            events=frozenset(e["EventType"].lower() for e in events),
            allow_insecure_ssl=flags["AllowInsecureSsl"],
            description=body.get("Description")
            if isinstance(body.get("Description"), str)
            else None,
        )
        self._next_id += 1
        self.subscriptions.setdefault(tenant.key, []).append(subscription)
        self._poke()
        log.info("async_orch.simulator.webhook_created", tenant=tenant.key, id=subscription.id)
        return subscription

    # -- events ----------------------------------------------------------------

    def _observer(self, tenant: TenantRuntime, tenant_id: int) -> Callable[[Job], None]:
        def changed(job: Job) -> None:
            event_type = _TYPE_OF_STATE.get(job.state)
            if event_type is None:
                return
            targets = [s for s in self.subscriptions.get(tenant.key, ()) if s.wants(event_type)]
            if not targets:
                return
            body = json.dumps(_payload(job, event_type, tenant_id, self._rng)).encode("utf-8")
            self._queue.extend((s, event_type, job.id, body) for s in targets)
            self._poke()

        return changed

    def _count(self, tenant: str, delivery: dict[str, Any]) -> None:
        """Keep the delivery (the last DELIVERIES_KEPT of its tenant), count its outcome."""
        self.deliveries[tenant].append(delivery)
        outcome = delivery["outcome"]
        self.tenant_counts[tenant][outcome] += 1
        if self._counted is not None:
            self._counted.set()

    @property
    def counts(self) -> Counter[str]:
        """Deliveries sent, failed and dropped, every tenant's together."""
        return sum(self.tenant_counts.values(), Counter())

    async def wait_handled(self, count: int) -> None:
        """Wait until ``count`` events were sent, failed or dropped in all (a delivery
        may be decided after the request that ended its job was answered)."""
        while self.counts.total() < count:
            self._counted = anyio.Event()
            await self._counted.wait()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Advance subscribed tenants as their jobs' events fall due; deliver events."""
        sim = self._sim
        slots = anyio.Semaphore(_SENDERS)

        async def deliver(
            subscription: Subscription, event_type: str, job_id: int, body: bytes
        ) -> None:
            try:
                await self._deliver(session, subscription, event_type, job_id, body)
            finally:
                slots.release()

        session = aiohttp.ClientSession(trust_env=False)
        try:
            async with anyio.create_task_group() as tasks:
                while True:
                    # Made before the queue is read: an event queued meanwhile (by a
                    # request that advanced the engine) ends the wait below at once.
                    self._wake = anyio.Event()
                    now = sim.sim_now()
                    due = math.inf
                    for tenant in sim.tenants:
                        if tenant.key in self.subscriptions:
                            tenant.engine.advance(now)
                            nxt = tenant.engine.next_event_time()
                            due = min(due, math.inf if nxt is None else nxt)
                    while self._queue:
                        # Every event a free sender can take leaves now: awaiting a slot
                        # for each one (a trip round a busy event loop each) fell behind
                        # at ~1,000 job ends a second and held events back by seconds
                        # (benchmarks/bench_detection.py).
                        try:
                            slots.acquire_nowait()
                        except anyio.WouldBlock:
                            await slots.acquire()
                        tasks.start_soon(deliver, *self._queue.popleft())
                    wait = (due - sim.sim_now()) / sim.scenario.time_scale
                    with anyio.move_on_after(max(0.0, min(wait, _IDLE_WAIT))):
                        await self._wake.wait()
        finally:
            with anyio.CancelScope(shield=True):  # run() ends by cancellation
                await session.close()

    async def _deliver(
        self,
        session: aiohttp.ClientSession,
        subscription: Subscription,
        event_type: str,
        job_id: int,
        body: bytes,
    ) -> None:
        sim = self._sim
        if not subscription.enabled:
            # Disabled since the event was queued: not sent (an assumption; the
            # real service's handling of events queued before is not documented).
            return
        delivery: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": event_type,
            "job_id": job_id,
            "subscription_id": subscription.id,
            "url": subscription.url,
            "outcome": "dropped",
            "status": None,
            "error": None,
            "latency_ms": None,
        }
        rate = sim.faults.settings.webhook_drop_rate
        if rate > 0 and self._drop_rng.random() < rate:
            sim.faults.record(FaultKind.WEBHOOK_DROP)
            self._count(subscription.tenant, delivery)
            return
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if subscription.secret is not None:
            headers["X-UiPath-Signature"] = sign(subscription.secret, body)
        started = time.monotonic()
        try:
            async with session.post(
                subscription.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=_SEND_TIMEOUT),
                ssl=not subscription.allow_insecure_ssl,
            ) as response:
                await response.read()
                delivery["status"] = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery["error"] = f"{type(exc).__name__}: {exc}".removesuffix(": ")
        delivery["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        # Not stored, not retried: a failed delivery is lost (module docstring).
        ok = delivery["status"] is not None and delivery["status"] < 300
        delivery["outcome"] = "sent" if ok else "failed"
        if not ok:
            self._log_failure(subscription, delivery)
        self._count(subscription.tenant, delivery)

    def _log_failure(self, subscription: Subscription, delivery: dict[str, Any]) -> None:
        facts = {"tenant": subscription.tenant, "subscription": subscription.id}
        facts |= {k: delivery[k] for k in ("url", "status", "error")}
        if subscription.id in self._warned:
            log.info("async_orch.simulator.webhook_failed", **facts)
            return
        # Warning once per subscription (a wrong URL is seen without -v), info after
        # (a line at warning per event would flood the log).
        self._warned.add(subscription.id)
        status = delivery["status"]
        why = (
            "nothing answered: is a receiver listening at this URL (dispatch --webhook-listen)?"
            if status is None
            else f"the receiver answered HTTP {status} (401: it expects another secret)."
        )
        log.warning(
            "async_orch.simulator.webhook_failed",
            **facts,
            note=f"{why} Later failures of this webhook are logged at info; "
            "GET /_simulator/webhooks lists the last deliveries",
        )

    def view(self) -> dict[str, Any]:
        """What ``GET /_simulator/webhooks`` answers: per tenant, the subscriptions (no
        secret), the last deliveries (newest first) and the counts."""
        return {
            "note": "the simulator's own record, not an Orchestrator API: Orchestrator "
            "neither stores nor retries webhook deliveries",
            "kept": DELIVERIES_KEPT,
            "counts": _outcomes(self.counts),
            "tenants": {
                key: {
                    "subscriptions": [
                        {
                            "id": s.id,
                            "name": s.name,
                            "url": s.url,
                            "enabled": s.enabled,
                            "events": sorted(EVENT_TYPES if s.all_events else s.events),
                            "signed": s.secret is not None,
                        }
                        for s in self.subscriptions.get(key, ())
                    ],
                    "deliveries": list(reversed(deliveries)),
                    "counts": _outcomes(self.tenant_counts[key]),
                }
                for key, deliveries in self.deliveries.items()
            },
        }


def sign(secret: str, body: bytes) -> str:
    """``X-UiPath-Signature``: base64 of HMAC-SHA256 of the raw body, keyed with the secret."""
    return base64.b64encode(
        hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    ).decode()


def _payload(job: Job, event_type: str, tenant_id: int, rng: random.Random) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    return {
        "Type": event_type,
        "EventId": f"{rng.getrandbits(128):032x}",
        "Timestamp": stamp,
        "Job": {
            "Id": job.id,
            "Key": job.key,
            "State": job.state.value,
            "Source": job.source,
            "SourceType": source_type(job.source),
            "BatchExecutionKey": job.batch_execution_key,
            "ReleaseName": job.release.name,
            "Type": "Unattended",
            "InputArguments": None,
            "OutputArguments": None,
        },
        "TenantId": tenant_id,
        "OrganizationUnitId": job.folder.id,
        "FolderId": job.folder.id,
    }


def _outcomes(counts: Counter[str]) -> dict[str, int]:
    return {k: counts[k] for k in ("sent", "failed", "dropped")}


def _invalid(message: str) -> ApiProblem:
    # UNCONFIRMED: Orchestrator's errorCode for an invalid WebhookDto.
    return ApiProblem(400, message, INVALID_REQUEST)
