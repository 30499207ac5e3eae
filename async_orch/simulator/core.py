"""The :class:`Simulator`: all state of a run (tenants, tokens, faults, counters).

It holds no sockets: :meth:`Simulator.make_app` builds the aiohttp application and
:func:`async_orch.simulator.runner.run_simulator` serves it. Two clocks are
injectable: ``clock`` (real seconds, monotonic: rate limits, token lifetimes,
time-based faults, and the source of simulated time) and ``wall_clock`` (the epoch
at which simulated time starts, so timestamps look current). Tests pass a
controllable ``clock`` and move it forward instead of sleeping.

With a state file (``state=``, see :mod:`state`), jobs, ids and simulated time
survive a restart. Without one, job ids start from a value derived from the
wall clock (assumption: real Orchestrator ids are large and only increase), so
two runs never hand out the same id; a client still holding ids from an earlier
run gets 404 for them, as from a server that lost its jobs.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from async_orch._errors import ConfigurationError
from async_orch._logs import get_logger
from async_orch.simulator.attachments import AttachmentStore
from async_orch.simulator.clock import SimClock
from async_orch.simulator.engine import JobEngine
from async_orch.simulator.faults import FaultInjector, FaultKind, FaultSettings
from async_orch.simulator.ratelimit import RollingWindowLimiter
from async_orch.simulator.scenario import ClientCredential, Scenario, TenantSpec, load_scenario
from async_orch.simulator.state import StateFile
from async_orch.simulator.stats import RequestStats
from async_orch.simulator.tokens import TokenStore
from async_orch.simulator.webhooks import WebhookHub
from async_orch.simulator.world import World, build_world

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["Simulator", "TenantRuntime", "redact"]

log = get_logger("async_orch.simulator")

_FIRST_JOB_ID = 458_210_117  # real cloud job ids are in the hundreds of millions
_JOB_IDS_PER_TENANT = 10_000_000
# Without a state file, ids start at _FIRST_JOB_ID + this many per second since
# 2024-01-01: a later run starts above an earlier one unless the earlier one
# created more than 10,000 jobs per second of its life (assumption, see above).
_ID_EPOCH = 1_704_067_200
_IDS_PER_SECOND = 10_000


def first_job_id(wall_now: float) -> int:
    """The first job id of a run without a state file, started at *wall_now*."""
    return _FIRST_JOB_ID + max(0, int((wall_now - _ID_EPOCH) * _IDS_PER_SECOND))


@dataclass(slots=True)
class TenantRuntime:
    """One tenant's live state."""

    spec: TenantSpec  # the scenario's, but for credentials changed by change_access
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
        scenario: a [`Scenario`][async_orch.simulator.Scenario], a TOML path, or None / "demo" for
            the demo.
        time_scale: simulated seconds per real second (overrides the scenario).
        seed: RNG seed (overrides the scenario).
        faults: fault settings; a mapping is applied over the scenario's faults.
        clock: real monotonic seconds (injectable for tests).
        wall_clock: epoch seconds at which simulated time starts.
        state: a state file (SQLite) to keep jobs across restarts; created if
            missing, replayed if written by an earlier run of the same scenario.

    Raises:
        ConfigurationError: a bad scenario, or a state file that cannot be used.
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
        state: str | Path | None = None,
    ) -> None:
        if not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario)
        if faults is not None and not isinstance(faults, FaultSettings):
            faults = FaultSettings.from_mapping(faults, base=scenario.faults)
        self.scenario = scenario.with_overrides(seed=seed, time_scale=time_scale, faults=faults)
        self.clock = clock
        self.state = StateFile(state, self.scenario) if state is not None else None
        wall_now = wall_clock()
        first_id = first_job_id(wall_now)
        if self.state is not None:
            first_id = int(self.state.meta.setdefault("first_job_id", str(first_id)))
        self.tenants: list[TenantRuntime] = []
        for index, spec in enumerate(self.scenario.tenants):
            world = build_world(spec, index=index)
            engine = JobEngine(
                world,
                timings=self.scenario.timings,
                seed=f"{self.scenario.seed}:{spec.key}",
                first_job_id=first_id + index * _JOB_IDS_PER_TENANT,
            )
            limiter = RollingWindowLimiter(
                spec.rate_limit.jobs_list,
                spec.rate_limit.window_seconds,
                other_per_minute=spec.rate_limit.other_per_minute,
            )
            self.tenants.append(TenantRuntime(spec, world, engine, limiter, wall_now))
        self.sim_clock = SimClock(
            clock, time_scale=self.scenario.time_scale, epoch=self._restore(wall_now)
        )
        self.tokens = TokenStore()
        self.faults = FaultInjector(self.scenario.faults, seed=self.scenario.seed, now=clock())
        self.requests = RequestStats()
        self.attachments = AttachmentStore()  # InputFile / uploaded attachments
        # After the state file's replay: replayed jobs send no events.
        self.webhooks = WebhookHub(self)

    def _restore(self, wall_now: float) -> float:
        """Replay the state file (if any) and return the simulated time to go on from."""
        if self.state is None:
            return wall_now
        meta = self.state.meta
        if self.state.fresh:
            sim_now = started = wall_now
        else:
            started = float(meta["started_at"])
            # Simulated time ran on while the simulator was down, at the old scale.
            sim_now = float(meta["sim_origin"]) + max(
                0.0, (wall_now - float(meta["wall_origin"])) * float(meta["time_scale"])
            )
            self._replay()
            sim_now = max([sim_now, *(t.engine.now for t in self.tenants)])
        for tenant in self.tenants:
            tenant.started_at = started
            tenant.engine.on_command = self._command_log(tenant.key)
        self.state.set_meta(
            first_job_id=meta["first_job_id"],
            started_at=repr(started),
            sim_origin=repr(sim_now),
            wall_origin=repr(wall_now),
            time_scale=repr(self.scenario.time_scale),
        )
        return sim_now

    def _replay(self) -> None:
        assert self.state is not None
        count = 0
        try:
            for key, command in self.state.commands():
                tenant = self.tenant_by_key(key)
                if tenant is None:
                    raise KeyError(f"tenant {key}")
                tenant.engine.replay(command)
                count += 1
        except (LookupError, ValueError, TypeError, sqlite3.Error) as exc:
            raise ConfigurationError(
                f"{self.state.path} cannot be replayed into this scenario ({exc!r} in "
                f"command {count + 1}); give a new state file"
            ) from None
        log.info("async_orch.simulator.state_restored", path=str(self.state.path), commands=count)

    def _command_log(self, tenant_key: str) -> Callable[[dict[str, Any]], None]:
        state = self.state
        assert state is not None

        def write(command: dict[str, Any]) -> None:
            state.append(tenant_key, command)

        return write

    def close(self) -> None:
        """Close the state file, if any (the runner does this on stop)."""
        if self.state is not None:
            self.state.close()

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

    def make_app(self, *, admin_token: str) -> web.Application:
        """Build the aiohttp application serving this simulator; the admin API
        (``/_simulator/``) asks for ``Authorization: Bearer <admin_token>``."""
        from async_orch.simulator.app import build_app

        return build_app(self, admin_token=admin_token)

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

    def change_access(
        self,
        tenant: TenantRuntime,
        client_id: str,
        *,
        scopes: tuple[str, ...] | EllipsisType = ...,
        folders: tuple[str, ...] | EllipsisType | None = ...,
    ) -> ClientCredential:
        """Give an external application these ``scopes`` and/or ``folders`` (declared
        folder paths, any case; None: every folder) from now on (``...``: unchanged).

        Folder access is checked per call: real tokens name no folder (they carry
        ``scope``, orchestrator-api.md §8), and an application not assigned to a
        folder gets 400/1100 for it (§8). So the application's live tokens see the
        new folders at their next call. Scopes live in the token: ASSUMPTION (not in
        orchestrator-api.md) that a token keeps the scopes it was issued with until
        it is renewed, as UiPath's uipath-typescript docs/FAQ.md says of a scope
        granted ("Scope Changes Not Taking Effect": the old token holds the old ones).

        Raises:
            ValueError: an unknown client id or folder path.
        """
        spec = tenant.spec
        old = next((c for c in spec.credentials if c.client_id == client_id), None)
        if old is None:
            known = ", ".join(c.client_id for c in spec.credentials) or "none"
            raise ValueError(f"unknown client_id {client_id!r} in {tenant.key}; known: {known}")
        if isinstance(folders, tuple):
            declared = {f.path.casefold(): f.path for f in spec.folders}
            unknown = [p for p in folders if p.casefold() not in declared]
            if unknown:
                raise ValueError(
                    f"unknown folder {unknown[0]!r} in {tenant.key}; declared: "
                    + ", ".join(declared.values())
                )
            folders = tuple(declared[p.casefold()] for p in folders)
        new = dataclasses.replace(
            old,
            scopes=old.scopes if scopes is ... else scopes,
            folders=old.folders if folders is ... else folders,
        )
        credentials = tuple(new if c is old else c for c in spec.credentials)
        tenant.spec = dataclasses.replace(spec, credentials=credentials)
        if folders is not ...:
            self.tokens.reassign(tenant_key=tenant.key, subject=client_id, folders=new.folders)
        log.info(
            "async_orch.simulator.access_changed",
            tenant=tenant.key,
            client_id=client_id,
            scopes=list(new.scopes),
            folders=list(new.folders) if new.folders is not None else "*",
        )
        return new

    def revoke_if_due(self) -> None:
        """Apply the periodic token revocation fault, if one is due."""
        if self.faults.revocation_due(self.clock()):
            self.revoke_tokens()

    def reset_stats(self) -> None:
        """Zero the request, rejection and fault counters.

        The jobs are the server's data, not counters: they are kept, and so are
        their counts in :meth:`stats` (a fresh simulator starts with none).
        """
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
        the number of calls); ``tenants``: the job counts and states per tenant.
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
            # Per tenant, states only: the References (one entry per job) are listed
            # once, under "jobs", or a large run's stats would carry them twice.
            tenants[tenant.key] = {"jobs_created": sum(states.values()), "jobs_by_state": states}
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


def redact(secret: str) -> str:
    """A secret shown as its first two characters, enough to tell which one it is."""
    return f"{secret[:2]}***" if len(secret) >= 8 else "***"


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
            "other_per_minute": spec.rate_limit.other_per_minute,
        },
        # Secrets are redacted: this goes over HTTP (the admin API) and into logs.
        "credentials": [
            {
                "client_id": c.client_id,
                "client_secret": redact(c.client_secret),
                "scopes": list(c.scopes),
                **({"folders": list(c.folders)} if c.folders is not None else {}),
            }
            for c in spec.credentials
        ],
        "refresh_tokens": [
            {"client_id": r.client_id, "refresh_token": redact(r.refresh_token)}
            for r in spec.refresh_tokens
        ],
        "users": [{"username": u.username, "password": redact(u.password)} for u in spec.users],
        **({"runtimes": tenant.engine.runtimes.describe()} if tenant.engine.runtimes else {}),
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
