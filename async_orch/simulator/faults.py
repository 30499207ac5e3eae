"""Fault injection: decide, per request, whether the simulator misbehaves and how.

All faults are off by default. They are set in a scenario's ``[faults]`` table, with
``async-orch simulator --fault key=value``, or at run time with
``POST /_simulator/faults``. Decisions come from a seeded RNG, so the same sequence
of requests meets the same faults. Time-based faults (429 bursts, token revocation)
run on the real clock, like the rate limit. Faults never touch the admin API.

Settings (all optional; rates are fractions of requests, 0..1):

* ``server_error_rate`` (0): answer with a 5xx chosen from ``server_error_statuses``
  (default ``[500, 502, 503]``; 500 carries the JSON error body, 502/503/504 a short
  text body, as a gateway would).
* ``throttle_rate`` (0): answer 429 with ``Retry-After: 1``.
* ``throttle_burst_seconds`` / ``throttle_burst_every`` (0 / 0): answer every request
  with 429 during the first N seconds of every M seconds (both > 0 to enable).
* ``drop_rate`` (0): close the connection without an answer.
* ``slow_rate`` (0) / ``slow_seconds`` (1.0): delay the answer by that many real seconds.
* ``revoke_tokens_every`` (0): revoke every issued token each N real seconds.
* ``ambiguous_start_rate`` (0): StartJobs creates the jobs, then fails to answer:
  ``ambiguous_start_mode`` ``"drop"`` (close the connection, the default) or ``"504"``.
* ``late_completion_rate`` (0) / ``late_completion_seconds`` (1.0) /
  ``late_completion_scope`` (``"start_jobs"`` or ``"all"``): the request is read in
  full at once, then processed only after that many real seconds, and completed
  even if the client hung up or timed out meanwhile; a client still waiting gets
  the answer. ASSUMPTION (modelled behaviour, not documented by UiPath): a gateway
  in front of the service holds the whole request and forwards it whatever its
  client does, so a StartJobs the client gave up on can still create its jobs.
  Without this fault the simulator drops such a request: reading its body fails
  once the client is gone.
* ``include_token_endpoint`` (false): also apply the rate faults to the token endpoints.
* ``webhook_drop_rate`` (0): webhook deliveries lost on the way (not sent). Orchestrator
  neither stores nor retries events, so a failed delivery is lost (docs.uipath.com
  about-webhooks; orchestrator-api.md §8).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from async_orch._errors import ConfigurationError
from async_orch.simulator.validation import Table

__all__ = [
    "FaultInjector",
    "FaultKind",
    "FaultPlan",
    "FaultSettings",
    "parse_fault_assignment",
]

_GATEWAY_STATUSES = (500, 502, 503, 504)


class FaultKind(enum.StrEnum):
    """What was injected; the keys of the ``faults`` counters in the stats."""

    SERVER_ERROR = "server_error"
    THROTTLE = "throttle"
    DROP = "drop"
    SLOW = "slow"
    TOKEN_REVOCATION = "token_revocation"
    AMBIGUOUS_START = "ambiguous_start"
    LATE_COMPLETION = "late_completion"
    WEBHOOK_DROP = "webhook_drop"


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSettings:
    """Which faults to inject; the defaults inject nothing. See the module docstring."""

    server_error_rate: float = 0.0
    server_error_statuses: tuple[int, ...] = (500, 502, 503)
    throttle_rate: float = 0.0
    throttle_burst_seconds: float = 0.0
    throttle_burst_every: float = 0.0
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 1.0
    revoke_tokens_every: float = 0.0
    ambiguous_start_rate: float = 0.0
    ambiguous_start_mode: str = "drop"
    late_completion_rate: float = 0.0
    late_completion_seconds: float = 1.0
    late_completion_scope: str = "start_jobs"
    include_token_endpoint: bool = False
    webhook_drop_rate: float = 0.0

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, where: str = "faults", base: FaultSettings | None = None
    ) -> FaultSettings:
        """Read settings from a table; keys not given keep their value in *base*."""
        base = base or cls()
        table = Table(data, where)
        table.reject_unknown(f.name for f in dataclasses.fields(cls))
        statuses = table.data.get("server_error_statuses", list(base.server_error_statuses))
        if (
            not isinstance(statuses, list | tuple)
            or not statuses
            or any(s not in _GATEWAY_STATUSES for s in statuses)
        ):
            raise table.fail("server_error_statuses", "a non-empty array of 500, 502, 503, 504")
        settings = cls(
            server_error_rate=_rate(table, "server_error_rate", base.server_error_rate),
            server_error_statuses=tuple(int(s) for s in statuses),
            throttle_rate=_rate(table, "throttle_rate", base.throttle_rate),
            throttle_burst_seconds=table.number(
                "throttle_burst_seconds", base.throttle_burst_seconds
            ),
            throttle_burst_every=table.number("throttle_burst_every", base.throttle_burst_every),
            drop_rate=_rate(table, "drop_rate", base.drop_rate),
            slow_rate=_rate(table, "slow_rate", base.slow_rate),
            slow_seconds=table.number("slow_seconds", base.slow_seconds),
            revoke_tokens_every=table.number("revoke_tokens_every", base.revoke_tokens_every),
            ambiguous_start_rate=_rate(table, "ambiguous_start_rate", base.ambiguous_start_rate),
            ambiguous_start_mode=table.choice(
                "ambiguous_start_mode", base.ambiguous_start_mode, ("drop", "504")
            ),
            late_completion_rate=_rate(table, "late_completion_rate", base.late_completion_rate),
            late_completion_seconds=table.number(
                "late_completion_seconds", base.late_completion_seconds
            ),
            late_completion_scope=table.choice(
                "late_completion_scope", base.late_completion_scope, ("start_jobs", "all")
            ),
            include_token_endpoint=table.boolean(
                "include_token_endpoint", base.include_token_endpoint
            ),
            webhook_drop_rate=_rate(table, "webhook_drop_rate", base.webhook_drop_rate),
        )
        if settings.throttle_burst_seconds > settings.throttle_burst_every > 0:
            raise ConfigurationError(
                f"{where}: throttle_burst_seconds ({settings.throttle_burst_seconds:g}) "
                f"must not exceed throttle_burst_every ({settings.throttle_burst_every:g})"
            )
        return settings

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["server_error_statuses"] = list(self.server_error_statuses)
        return data

    @property
    def active(self) -> bool:
        """True if any fault is switched on."""
        return self != FaultSettings(
            server_error_statuses=self.server_error_statuses,
            slow_seconds=self.slow_seconds,
            ambiguous_start_mode=self.ambiguous_start_mode,
            late_completion_seconds=self.late_completion_seconds,
            late_completion_scope=self.late_completion_scope,
            include_token_endpoint=self.include_token_endpoint,
        )


def _rate(table: Table, key: str, default: float) -> float:
    return table.number(key, default, maximum=1.0)


def parse_fault_assignment(text: str) -> tuple[str, Any]:
    """Parse one ``key=value`` from the command line (``--fault drop_rate=0.05``)."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or not raw:
        raise ConfigurationError(f"--fault expects key=value (e.g. drop_rate=0.05), got {text!r}")
    value: Any
    if key in ("ambiguous_start_mode", "late_completion_scope"):
        value = raw  # a name ("504" is a mode name here, not a number)
    elif raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    elif "," in raw:
        value = [int(part) for part in raw.split(",") if part.strip()]
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
    if key == "server_error_statuses" and isinstance(value, int):
        value = [value]
    return key, value


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What to do with one request.

    ``delay`` is applied first (slow response); then ``outcome`` is one of
    ``"none"``, ``"server_error"`` (answer ``status``), ``"throttle"`` (429 with
    ``retry_after``), ``"drop"`` (close the connection unanswered) or
    ``"ambiguous"`` (StartJobs only: do the work, then drop or answer 504).
    ``late`` (seconds, 0 for none) comes before all that: the request is read in
    full, then held that long, and served even if its client hung up.
    """

    outcome: str = "none"
    delay: float = 0.0
    status: int | None = None
    retry_after: int | None = None
    late: float = 0.0


NO_FAULT = FaultPlan()


class FaultInjector:
    """Seeded per-request fault decisions plus the counters of what was injected."""

    def __init__(self, settings: FaultSettings, *, seed: int, now: float) -> None:
        self.settings = settings
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(f"faults:{seed}")
        self._epoch = now
        self._last_revocation = now

    def update(self, settings: FaultSettings, *, now: float) -> None:
        """Replace the settings; time-based faults restart their cycle at *now*."""
        self.settings = settings
        self._epoch = now
        self._last_revocation = now

    def record(self, kind: FaultKind, amount: int = 1) -> None:
        self.counts[kind.value] += amount

    def revocation_due(self, now: float) -> bool:
        """True (once per period) when every token must be revoked."""
        every = self.settings.revoke_tokens_every
        if every <= 0 or now - self._last_revocation < every:
            return False
        self._last_revocation = now
        return True

    def plan(self, *, now: float, token_route: bool, start_jobs: bool) -> FaultPlan:
        """Decide the fate of one request; counts every fault it decides on."""
        s = self.settings
        if token_route and not s.include_token_endpoint:
            return NO_FAULT
        delay = s.slow_seconds if self._hit(s.slow_rate) else 0.0
        if delay:
            self.record(FaultKind.SLOW)
        outcome = FaultPlan(delay=delay)
        if self._hit(s.drop_rate):
            outcome = FaultPlan("drop", delay)
            self.record(FaultKind.DROP)
        elif self._hit(s.server_error_rate):
            status = self._rng.choice(s.server_error_statuses)
            outcome = FaultPlan("server_error", delay, status=status)
            self.record(FaultKind.SERVER_ERROR)
        elif (burst_left := self._burst_left(now)) is not None:
            outcome = FaultPlan("throttle", delay, retry_after=burst_left)
            self.record(FaultKind.THROTTLE)
        elif self._hit(s.throttle_rate):
            outcome = FaultPlan("throttle", delay, retry_after=1)
            self.record(FaultKind.THROTTLE)
        elif start_jobs and self._hit(s.ambiguous_start_rate):
            outcome = FaultPlan("ambiguous", delay)
            self.record(FaultKind.AMBIGUOUS_START)
        if (start_jobs or s.late_completion_scope == "all") and self._hit(s.late_completion_rate):
            outcome = dataclasses.replace(outcome, late=s.late_completion_seconds)
            self.record(FaultKind.LATE_COMPLETION)
        return outcome

    def _hit(self, rate: float) -> bool:
        # Draw only for enabled faults: with every fault off the RNG is never touched.
        return rate > 0 and self._rng.random() < rate

    def _burst_left(self, now: float) -> int | None:
        s = self.settings
        if s.throttle_burst_seconds <= 0 or s.throttle_burst_every <= 0:
            return None
        phase = (now - self._epoch) % s.throttle_burst_every
        if phase >= s.throttle_burst_seconds:
            return None
        return max(1, math.ceil(s.throttle_burst_seconds - phase))
