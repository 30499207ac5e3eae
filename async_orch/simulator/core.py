"""The :class:`Simulator`: all state of a run (tenants, tokens, faults, counters).

It holds no sockets: :meth:`Simulator.make_app` builds the aiohttp application and
:func:`async_orch.simulator.runner.run_simulator` serves it. Two clocks are
injectable: ``clock`` (real seconds, monotonic: rate limits, token lifetimes,
time-based faults, and the source of simulated time) and ``wall_clock`` (the epoch
at which simulated time starts, so timestamps look current). Tests pass a
controllable ``clock`` and move it forward instead of sleeping.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from async_orch.logs import get_logger
from async_orch.simulator.clock import SimClock
from async_orch.simulator.engine import JobEngine
from async_orch.simulator.faults import FaultInjector, FaultKind, FaultSettings
from async_orch.simulator.ratelimit import RollingWindowLimiter
from async_orch.simulator.scenario import Scenario, TenantSpec, load_scenario
from async_orch.simulator.stats import RequestStats
from async_orch.simulator.tokens import TokenStore
from async_orch.simulator.world import World, build_world

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["Simulator", "TenantRuntime"]

log = get_logger("async_orch.simulator")

_FIRST_JOB_ID = 458_210_117  # real cloud job ids are in the hundreds of millions
_JOB_IDS_PER_TENANT = 10_000_000


@dataclass(slots=True)
class TenantRuntime:
    """One tenant's live state."""

    spec: TenantSpec
    world: World
    engine: JobEngine
    limiter: RollingWindowLimiter
    started_at: float  # simulated time when the run began

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def base_path(self) -> str:
        """The cloud-shaped Orchestrator base path of this tenant (not URL-quoted)."""
        return f"/{self.spec.organization}/{self.spec.name}/orchestrator_"


class Simulator:
    """A simulated Orchestrator service playing the tenants of a scenario.

    Args:
        scenario: a :class:`Scenario`, a TOML path, or None / "demo" for the demo.
        time_scale: simulated seconds per real second (overrides the scenario).
        seed: RNG seed (overrides the scenario).
        faults: fault settings; a mapping is applied over the scenario's faults.
        clock: real monotonic seconds (injectable for tests).
        wall_clock: epoch seconds at which simulated time starts.
    """

    def __init__(
        self,
        scenario: Scenario | str | Path | None = None,
        *,
        time_scale: float | None = None,
        seed: int | None = None,
        faults: FaultSettings | Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario)
        if faults is not None and not isinstance(faults, FaultSettings):
            faults = FaultSettings.from_mapping(faults, base=scenario.faults)
        self.scenario = scenario.with_overrides(seed=seed, time_scale=time_scale, faults=faults)
        self.clock = clock
        self.sim_clock = SimClock(clock, time_scale=self.scenario.time_scale, epoch=wall_clock())
        started = self.sim_clock.now()
        self.tenants: list[TenantRuntime] = []
        for index, spec in enumerate(self.scenario.tenants):
            world = build_world(spec, index=index)
            engine = JobEngine(
                world,
                timings=self.scenario.timings,
                seed=f"{self.scenario.seed}:{spec.key}",
                first_job_id=_FIRST_JOB_ID + index * _JOB_IDS_PER_TENANT,
            )
            limiter = RollingWindowLimiter(
                spec.rate_limit.jobs_list, spec.rate_limit.window_seconds
            )
            self.tenants.append(TenantRuntime(spec, world, engine, limiter, started))
        self.tokens = TokenStore()
        self.faults = FaultInjector(self.scenario.faults, seed=self.scenario.seed, now=clock())
        self.requests = RequestStats()

    # -- time ----------------------------------------------------------------

    def real_now(self) -> float:
        return self.clock()

    def sim_now(self) -> float:
        return self.sim_clock.now()

    # -- lookups ---------------------------------------------------------------

    def tenant(self, organization: str, name: str) -> TenantRuntime | None:
        """The tenant at ``/{organization}/{name}/`` (case-insensitive)."""
        key = f"{organization}/{name}".casefold()
        return next((t for t in self.tenants if t.key.casefold() == key), None)

    def tenant_by_key(self, key: str) -> TenantRuntime | None:
        return next((t for t in self.tenants if t.key.casefold() == key.casefold()), None)

    # -- control (used by the admin API and by tests in-process) ---------------

    def make_app(self) -> web.Application:
        """Build the aiohttp application serving this simulator."""
        from async_orch.simulator.app import build_app

        return build_app(self)

    def set_faults(
        self, settings: FaultSettings | Mapping[str, Any], *, clear: bool = False
    ) -> FaultSettings:
        """Change faults at run time; a mapping updates the current (or cleared) ones."""
        if not isinstance(settings, FaultSettings):
            base = FaultSettings() if clear else self.faults.settings
            settings = FaultSettings.from_mapping(settings, base=base)
        self.faults.update(settings, now=self.clock())
        log.info("async_orch.simulator.faults_set", **settings.to_dict())
        return settings

    def clear_faults(self) -> None:
        self.set_faults(FaultSettings())

    def revoke_tokens(self, tenant_key: str | None = None) -> int:
        """Revoke every live token (of one tenant); counted as a token_revocation fault."""
        count = self.tokens.revoke(tenant_key=tenant_key)
        self.faults.record(FaultKind.TOKEN_REVOCATION)
        log.info("async_orch.simulator.tokens_revoked", tenant=tenant_key or "*", count=count)
        return count

    def revoke_if_due(self) -> None:
        """Apply the periodic token revocation fault, if one is due."""
        if self.faults.revocation_due(self.clock()):
            self.revoke_tokens()

    def reset_stats(self) -> None:
        """Zero the request, rejection and fault counters (jobs are kept)."""
        self.requests.reset()
        self.faults.counts.clear()

    # -- reporting -------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters, with the jobs brought up to date first.

        ``requests``: {endpoint template: {status: count}} (status "dropped" for a
        connection closed unanswered); ``rejections``: 401/403/429 refusals by
        authentication, scope or the rate limit; ``faults``: injected faults by kind;
        ``jobs``: created, by_state, by_reference (jobs per Reference) and
        duplicate_references (References used in more than one StartJobs call, with
        the number of calls); ``tenants``: the job counts per tenant.
        """
        now = self.sim_now()
        by_state: Counter[str] = Counter()
        by_reference: Counter[str] = Counter()
        calls: Counter[str] = Counter()
        tenants = {}
        for tenant in self.tenants:
            tenant.engine.advance(now)
            states = tenant.engine.state_counts()
            references = tenant.engine.reference_counts()
            by_state.update(states)
            by_reference.update(references)
            calls.update(tenant.engine.reference_calls())
            tenants[tenant.key] = {
                "jobs_created": sum(states.values()),
                "jobs_by_state": states,
                "jobs_by_reference": references,
            }
        return {
            **self.requests.snapshot(),
            "faults": {kind.value: self.faults.counts.get(kind.value, 0) for kind in FaultKind},
            "jobs": {
                "created": sum(by_state.values()),
                "by_state": dict(sorted(by_state.items())),
                "by_reference": dict(by_reference),
                # References used by more than one StartJobs call: work started twice.
                "duplicate_references": {r: n for r, n in calls.items() if n > 1},
            },
            "tenants": tenants,
        }

    def describe(self) -> dict[str, Any]:
        """What a user needs to connect: tenants, credentials, folders, processes."""
        return {
            "name": self.scenario.name,
            "seed": self.scenario.seed,
            "time_scale": self.scenario.time_scale,
            "faults": self.faults.settings.to_dict(),
            "tenants": [_describe_tenant(t) for t in self.tenants],
        }


def _describe_tenant(tenant: TenantRuntime) -> dict[str, Any]:
    spec = tenant.spec
    return {
        "organization": spec.organization,
        "tenant": spec.name,
        "tenancy_name": spec.tenancy_name,
        "base_path": tenant.base_path,
        "expires_in": spec.expires_in,
        "rate_limit": {
            "jobs_list": spec.rate_limit.jobs_list,
            "window_seconds": spec.rate_limit.window_seconds,
        },
        "credentials": [
            {"client_id": c.client_id, "client_secret": c.client_secret, "scopes": list(c.scopes)}
            for c in spec.credentials
        ],
        "refresh_tokens": [
            {"client_id": r.client_id, "refresh_token": r.refresh_token}
            for r in spec.refresh_tokens
        ],
        "users": [{"username": u.username, "password": u.password} for u in spec.users],
        "folders": [
            {
                "id": f.id,
                "key": f.key,
                "path": f.path,
                "capacity": f.capacity,
                "robots": [{"id": r.id, "name": r.name} for r in f.robots],
                "processes": [
                    {"name": r.name, "key": r.key, "version": r.version} for r in f.releases
                ],
            }
            for f in tenant.world
        ],
    }
