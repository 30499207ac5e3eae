"""Serve a :class:`Simulator` over real HTTP on a local port.

Usage::

    async with run_simulator() as sim:          # the demo scenario, a free port
        print(sim.url)         # http://127.0.0.1:PORT/demo/DefaultTenant/orchestrator_
        print(sim.token_url)   # http://127.0.0.1:PORT/identity_/connect/token
        ...                    # sim.client_id / sim.client_secret, sim.simulator.stats()
        # the admin API (/_simulator/...) wants sim.admin_headers
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from async_orch._logs import get_logger
from async_orch.simulator.app import PARSER_LINE_LIMIT
from async_orch.simulator.core import Simulator
from async_orch.simulator.faults import FaultSettings
from async_orch.simulator.scenario import ClientCredential, Scenario

__all__ = ["SimulatorHandle", "run_simulator"]

log = get_logger("async_orch.simulator")


@dataclass(frozen=True, slots=True)
class SimulatorHandle:
    """A running simulator: where it listens and how to log in."""

    simulator: Simulator
    host: str
    port: int
    admin_token: str = ""  # the bearer token of the admin API (/_simulator/...)
    exposed: bool = False  # bound to an address other machines can reach

    @property
    def admin_headers(self) -> dict[str, str]:
        """The header the admin API asks for."""
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def base_url(self, tenant: str | None = None) -> str:
        """The cloud-shaped Orchestrator base of a tenant ("org/name"; default the first)."""
        runtime = self.simulator.tenant_by_key(tenant) if tenant else self.simulator.tenants[0]
        if runtime is None:
            raise KeyError(f"no tenant {tenant!r} in the scenario")
        spec = runtime.spec
        return f"{self.root_url}/{quote(spec.organization)}/{quote(spec.name)}/orchestrator_"

    @property
    def url(self) -> str:
        """The first tenant's Orchestrator base, e.g. ``http://127.0.0.1:PORT/demo/DefaultTenant/orchestrator_``."""
        return self.base_url()

    @property
    def onprem_url(self) -> str:
        """The on-premises-shaped base (``/odata/...`` at the root; tenant from the token)."""
        return self.root_url

    @property
    def token_url(self) -> str:
        return f"{self.root_url}/identity_/connect/token"

    @property
    def organization(self) -> str:
        return self.simulator.tenants[0].spec.organization

    @property
    def tenant(self) -> str:
        return self.simulator.tenants[0].spec.name

    @property
    def client_id(self) -> str:
        return self._first_credential().client_id

    @property
    def client_secret(self) -> str:
        return self._first_credential().client_secret

    @property
    def scopes(self) -> tuple[str, ...]:
        return self._first_credential().scopes

    def _first_credential(self) -> ClientCredential:
        for tenant in self.simulator.tenants:
            if tenant.spec.credentials:
                return tenant.spec.credentials[0]
        raise LookupError("the scenario defines no client credentials")


@asynccontextmanager
async def run_simulator(
    scenario: Scenario | str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    time_scale: float | None = None,
    faults: FaultSettings | Mapping[str, Any] | None = None,
    seed: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    state: str | Path | None = None,
    admin_token: str | None = None,
) -> AsyncIterator[SimulatorHandle]:
    """Start a simulator on *host*:*port* (0: a free port); stop it on exit.

    *state*: a state file that keeps jobs across restarts (see
    `async_orch.simulator.state`). *admin_token*: the bearer token the admin
    API asks for; None draws a random one (``handle.admin_token``).
    """
    admin_token = admin_token or secrets.token_urlsafe(24)
    simulator = Simulator(
        scenario,
        time_scale=time_scale,
        seed=seed,
        faults=faults,
        clock=clock,
        wall_clock=wall_clock,
        state=state,
    )
    try:
        runner = web.AppRunner(
            simulator.make_app(admin_token=admin_token),
            access_log=None,
            max_line_size=PARSER_LINE_LIMIT,  # the 414 decides (app.MAX_REQUEST_LINE)
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            exposed = not all(_is_loopback(address[0]) for address in runner.addresses)
            handle = SimulatorHandle(
                simulator, host, runner.addresses[0][1], admin_token=admin_token, exposed=exposed
            )
            if exposed:  # info: the CLI prints its own warning, once (sim.exposed)
                log.info("async_orch.simulator.exposed", host=host)
            log.info(
                "async_orch.simulator.started",
                url=handle.url,
                scenario=simulator.scenario.name,
                time_scale=simulator.scenario.time_scale,
            )
            yield handle
        finally:
            await runner.cleanup()
            log.info("async_orch.simulator.stopped")
    finally:
        simulator.close()


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False
