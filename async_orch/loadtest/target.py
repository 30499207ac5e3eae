"""What a load test drives: an embedded simulator, a simulator at a URL, or a tenant.

A target knows whether it is a simulator, and if so how to read its counters
(``GET /_simulator/stats``, or in-process for the embedded one) and its time
scale. A URL counts as a simulator only if its admin API answers like one; any
other URL is a real tenant, and the command line then insists on confirmation
and a cap on jobs. The admin API wants the simulator's admin token: it is read
from ``ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN`` (without it, a simulator at a URL
counts as a tenant).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from async_orch._config import ClientCredentials, RetryPolicy, Settings
from async_orch._sessions import new_session

__all__ = ["Target", "active_faults", "embedded_simulator", "probe_simulator", "url_target"]

StatsReader = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Target:
    """Where the load goes.

    Attributes:
        settings: how the client connects.
        description: shown in the report ("embedded simulator", the URL, ...).
        simulator_stats: reads the simulator's counters (None: a real tenant).
        time_scale: simulated seconds per real second (1 for a tenant).
        faults: the simulator's fault settings when known.
    """

    settings: Settings
    description: str
    simulator_stats: StatsReader | None = None
    time_scale: float = 1.0
    faults: Mapping[str, Any] | None = None

    @property
    def is_simulator(self) -> bool:
        return self.simulator_stats is not None


@asynccontextmanager
async def embedded_simulator(
    *,
    scenario: str | Path | None = None,
    time_scale: float | None = None,
    faults: Mapping[str, Any] | None = None,
) -> AsyncIterator[Target]:
    """Run a simulator in this process for the load test (port 0, loopback)."""
    from async_orch.simulator import run_simulator

    async with run_simulator(scenario, time_scale=time_scale, faults=faults) as sim:
        held = sim.simulator.faults.settings
        # This simulator completes any request within its fault delays, so an
        # ambiguous start need not wait the default reconcile window (timeout + 30 s).
        window = held.slow_seconds + held.late_completion_seconds + 1.0

        async def stats() -> dict[str, Any]:
            return sim.simulator.stats()

        yield Target(
            settings=Settings(
                url=sim.url,
                credentials=ClientCredentials(
                    client_id=sim.client_id, client_secret=sim.client_secret
                ),
                retry=RetryPolicy(reconcile_window=window),
            ),
            description=f"embedded simulator ({sim.simulator.scenario.name}) at {sim.url}",
            simulator_stats=stats,
            time_scale=sim.simulator.scenario.time_scale,
            faults=active_faults(sim.simulator.faults.settings.to_dict()),
        )


def active_faults(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The simulator's fault settings that differ from the defaults (all off)."""
    from async_orch.simulator.faults import FaultSettings

    defaults = FaultSettings().to_dict()
    return {k: v for k, v in settings.items() if defaults.get(k) != v}


def _admin_headers() -> dict[str, str]:
    token = os.environ.get("ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN", "")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _root(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def probe_simulator(
    url: str, *, timeout: float = 5.0, ca_bundle: str | None = None
) -> dict[str, Any] | None:
    """The simulator's ``/_simulator/scenario`` if the URL's server is one, else None."""
    try:
        async with (
            new_session(
                [url], ca_bundle=ca_bundle, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as session,
            session.get(f"{_root(url)}/_simulator/scenario", headers=_admin_headers()) as response,
        ):
            if response.status != 200:
                return None
            data = json.loads(await response.read())
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    if isinstance(data, dict) and "tenants" in data and "time_scale" in data:
        return data
    return None


async def url_target(settings: Settings) -> Target:
    """A target at ``settings.url``: a simulator if it answers as one, else a tenant."""
    described = await probe_simulator(settings.url, ca_bundle=settings.ca_bundle)
    if described is None:
        return Target(settings=settings, description=settings.url)
    root = _root(settings.url)

    async def stats() -> dict[str, Any]:
        async with (
            new_session(
                [root], ca_bundle=settings.ca_bundle, timeout=aiohttp.ClientTimeout(total=30)
            ) as session,
            session.get(f"{root}/_simulator/stats", headers=_admin_headers()) as response,
        ):
            response.raise_for_status()
            data: dict[str, Any] = json.loads(await response.read())
            return data

    return Target(
        settings=settings,
        description=f"simulator at {settings.url}",
        simulator_stats=stats,
        time_scale=float(described.get("time_scale", 1.0)),
        faults=active_faults(described.get("faults") or {}),
    )
