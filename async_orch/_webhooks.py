"""Orchestrator webhooks as an accelerator: verify, parse, and hand job events to the watchers.

Facts this module relies on (docs.uipath.com orchestrator, "About webhooks" and
"Types of events"; orchestrator-api.md §8):

- Every delivery is a POST whose raw body (UTF-8 JSON) is signed with the
  webhook's secret: ``X-UiPath-Signature`` holds the base64 of the
  HMAC-SHA256 of the body, keyed with the secret's UTF-8 bytes. A request
  whose signature does not match must not be processed.
- Common payload fields: ``Type`` ("job.completed", ...), ``EventId`` (unique
  per event), ``Timestamp`` (ISO 8601, UTC), ``TenantId``, and the folder as
  ``FolderId`` (common-properties table) or ``OrganizationUnitId`` (newer
  examples). Job events carry the job(s): ``Jobs`` (a list in job.created's
  example, an object in older ones); ASSUMPTION: job.started/completed/faulted/
  stopped carry one job under ``Job``. Both keys and both shapes are accepted.
- ``InputArguments``/``OutputArguments`` may be null or ``{}``, and events are
  not stored or retried: a failed delivery is lost. So an end event makes the
  watcher report the job's state at once (``on_state``) and read the job by id
  (which brings the outputs and finishes it); polling goes on (see
  :mod:`async_orch._push_pace`). An event whose job ``Key`` differs from the
  watched job's (another job under that id) is ignored.
- A failed delivery opens the webhook's circuit breaker for an hour, so events
  that are genuine but not wanted (duplicates, other types) are answered 200.

What counts as refused (not handed on): no signature or a wrong one (401), a body
that is not a JSON event (400), and a stale event (400): its ``Timestamp`` more
than ``max_age`` seconds from this machine's clock, either way, which bounds how
long a captured request can be replayed. A repeated ``EventId`` within that
window is a replay or a duplicate: answered 200 and ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from async_orch._errors import ConfigurationError
from async_orch._logs import get_logger
from async_orch._push_pace import PushPace
from async_orch._states import JobState

__all__ = [
    "SIGNATURE_HEADER",
    "JobEvent",
    "WebhookReceiver",
    "parse_events",
    "signature_of",
    "verify_signature",
]

log = get_logger("async_orch.webhooks")

SIGNATURE_HEADER = "X-UiPath-Signature"

#: Event types whose job has ended, and the state each one means when the payload
#: names none (types-of-events page).
FINAL_EVENT_STATES: Mapping[str, JobState] = {
    "job.completed": JobState.SUCCESSFUL,
    "job.faulted": JobState.FAULTED,
    "job.stopped": JobState.STOPPED,
}
_LIVE_EVENT_STATES: Mapping[str, JobState] = {"job.started": JobState.RUNNING}

_MAX_BODY = 1024 * 1024  # bytes; a job event is a few kB
_MAX_REMEMBERED = 100_000  # EventIds kept to spot replays (pruned by age first)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobEvent:
    """One job named by a verified, fresh webhook event."""

    type: str
    event_id: str
    timestamp: datetime
    job_id: int
    state: JobState
    folder_id: int | None  # FolderId / OrganizationUnitId, when the payload has one
    job_key: str | None = None  # the job's Key (a GUID), when the payload has one

    @property
    def ended(self) -> bool:
        """True for job.completed / job.faulted / job.stopped."""
        return self.type in FINAL_EVENT_STATES


def signature_of(secret: str, body: bytes) -> str:
    """The ``X-UiPath-Signature`` value for ``body``: base64(HMAC-SHA256(secret, body))."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time compare)."""
    if not header:
        return False
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)


def parse_events(body: bytes) -> tuple[str, str, datetime, list[JobEvent]]:
    """(Type, EventId, Timestamp, job events) of a payload; events only for job types.

    Raises:
        ValueError: not a JSON object with Type, EventId and an ISO 8601 Timestamp.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"the body is not UTF-8 JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("the body is not a JSON object")
    kind, event_id, stamp = data.get("Type"), data.get("EventId"), data.get("Timestamp")
    if not isinstance(kind, str) or not kind:
        raise ValueError("Type is missing")
    if isinstance(event_id, int) and not isinstance(event_id, bool):
        event_id = str(event_id)
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("EventId is missing")
    if not isinstance(stamp, str):
        raise ValueError("Timestamp is missing")
    try:
        timestamp = datetime.fromisoformat(stamp)
    except ValueError:
        raise ValueError(f"Timestamp {stamp!r} is not an ISO 8601 date") from None
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)  # documented as UTC ("...Z")
    kind = kind.lower()
    default = FINAL_EVENT_STATES.get(kind) or _LIVE_EVENT_STATES.get(kind)
    if default is None:
        return kind, event_id, timestamp, []
    folder = _int(data.get("FolderId"))
    if folder is None:
        folder = _int(data.get("OrganizationUnitId"))
    events = []
    for job in _jobs_of(data):
        job_id = _int(job.get("Id"))
        if job_id is None:
            continue
        state = JobState.parse(job.get("State"))
        if kind in FINAL_EVENT_STATES and not state.is_terminal:
            state = default  # the type says it ended; the by-id read will tell how
        elif state is JobState.UNKNOWN:
            state = default
        events.append(
            JobEvent(
                type=kind,
                event_id=event_id,
                timestamp=timestamp,
                job_id=job_id,
                state=state,
                folder_id=folder,
                job_key=key.lower() if isinstance(key := job.get("Key"), str) and key else None,
            )
        )
    return kind, event_id, timestamp, events


def _jobs_of(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for key in ("Job", "Jobs"):
        value = data.get(key)
        items = value if isinstance(value, list) else [value]
        found.extend(item for item in items if isinstance(item, dict))
    return found


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class WebhookReceiver:
    """An aiohttp handler for Orchestrator's webhook deliveries, feeding job watchers.

    Mount [`handle`][async_orch.WebhookReceiver.handle] in your own aiohttp application (any path,
    POST), or serve [`app`][async_orch.WebhookReceiver.app]; give the receiver to the client
    (``OrchestratorClient(settings, webhooks=receiver)``) so its batches see
    ended jobs as soon as the event arrives. Polling goes on regardless: an event
    lost on the way costs only the time until the next poll, and outputs always
    come from reading the job.

    Args:
        secret: the webhook's secret, as set in Orchestrator. Never logged.
        max_age: seconds an event's Timestamp may be off this machine's clock
            (either way) before it is refused as stale.
        slow_factor: while events for a folder arrive, its jobs are polled this
            many times less often (1 to 10).
        quiet_after: seconds without an event for a folder after which its
            polling is back to normal at once.
        wall_clock: epoch seconds (injectable for tests).
    """

    def __init__(
        self,
        secret: str,
        *,
        max_age: float = 300.0,
        slow_factor: float = 4.0,
        quiet_after: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(secret, str) or not secret:
            raise ConfigurationError(
                "the webhook secret must be a non-empty string (the one set on the webhook "
                "in Orchestrator): unsigned events are never accepted"
            )
        if not (0 < max_age < math.inf):
            raise ConfigurationError(f"max_age must be > 0 seconds, got {max_age}")
        self._secret = secret
        self.max_age = max_age
        # Validated here so that a bad option fails when the receiver is made.
        PushPace[int](slow_factor=slow_factor, quiet_after=quiet_after)
        self.slow_factor = slow_factor
        self.quiet_after = quiet_after
        self._wall_clock = wall_clock
        self._seen: dict[str, float] = {}  # EventId -> its timestamp (epoch seconds)
        self._subscribers: list[Callable[[JobEvent], None]] = []
        self.counts: Counter[str] = Counter()
        self._bad_signature_warned = -math.inf

    def __repr__(self) -> str:
        return f"WebhookReceiver(max_age={self.max_age:g}, counts={dict(self.counts)})"

    def new_pace(self) -> PushPace[int]:
        """A pace keeper with this receiver's settings (one per client)."""
        return PushPace(slow_factor=self.slow_factor, quiet_after=self.quiet_after)

    def subscribe(self, callback: Callable[[JobEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with every accepted job event; returns an unsubscribe function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def app(self, path: str | None = None) -> web.Application:
        """A standalone aiohttp application serving [`handle`][async_orch.WebhookReceiver.handle]
        at ``path`` (None: at every path, whatever URL the webhook was given)."""
        application = web.Application(client_max_size=_MAX_BODY)
        application.router.add_post(path or "/{tail:.*}", self.handle)
        return application

    async def handle(self, request: web.Request) -> web.Response:
        """Verify and take one delivery; see the module docstring for the answers."""
        body = await request.read()
        status, reason = self.receive(body, request.headers.get(SIGNATURE_HEADER))
        return web.Response(status=status, text=reason)

    def receive(self, body: bytes, signature: str | None) -> tuple[int, str]:
        """Take one delivery's raw body and signature header; return (status, reason)."""
        if not signature:
            return self._refuse(401, "unsigned", f"no {SIGNATURE_HEADER} header")
        if len(body) > _MAX_BODY or not verify_signature(self._secret, body, signature):
            return self._refuse(401, "bad_signature", "the signature does not match the body")
        try:
            kind, event_id, timestamp, events = parse_events(body)
        except ValueError as exc:
            return self._refuse(400, "malformed", str(exc))
        now = self._wall_clock()
        stamp = timestamp.timestamp()
        if abs(now - stamp) > self.max_age:
            return self._refuse(
                400,
                "stale",
                f"Timestamp {timestamp.isoformat()} is more than {self.max_age:g} s from "
                "this machine's clock (a replay, or a clock to set right)",
            )
        if event_id in self._seen:
            self.counts["duplicate"] += 1
            return 200, "duplicate event ignored"
        self._remember(event_id, stamp, now)
        if not events:
            self.counts["ignored"] += 1
            return 200, f"{kind}: not a job event this receiver uses"
        self.counts["accepted"] += 1
        for event in events:
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception as exc:  # a watcher's bug must not fail the delivery
                    log.warning("async_orch.webhook_callback_failed", error=repr(exc))
        return 200, "accepted"

    def _refuse(self, status: int, kind: str, reason: str) -> tuple[int, str]:
        self.counts[kind] += 1
        # Info: a stranger probing the URL should not fill the warnings.
        log.info("async_orch.webhook_refused", reason=kind, status=status)
        if kind == "bad_signature":
            # Signed, but not with our secret: most likely a secret that differs from
            # the webhook's in Orchestrator, and then every event is lost. Said once a
            # minute at most.
            now = time.monotonic()
            if now - self._bad_signature_warned >= 60.0:
                self._bad_signature_warned = now
                log.warning(
                    "async_orch.webhook_bad_signatures",
                    refused_so_far=self.counts[kind],
                    note="events signed with another secret are refused (said once a minute "
                    "at most; receiver.counts has the total): check that the secret given "
                    "(ASYNC_ORCH_WEBHOOK_SECRET) is the webhook's in Orchestrator",
                )
        return status, reason

    def _remember(self, event_id: str, stamp: float, now: float) -> None:
        if len(self._seen) >= _MAX_REMEMBERED:
            # Events older than max_age are refused anyway: forget their ids first.
            horizon = now - self.max_age
            self._seen = {k: t for k, t in self._seen.items() if t >= horizon}
            while len(self._seen) >= _MAX_REMEMBERED:
                self._seen.pop(next(iter(self._seen)))
        self._seen[event_id] = stamp
