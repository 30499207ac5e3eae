"""A local Orchestrator simulator: an aiohttp server for the API subset async-orch uses.

It plays one or more tenants of a scenario (see `async_orch.simulator.scenario`)
over real HTTP: token endpoints (client credentials, legacy refresh token,
on-premises), folders, releases, jobs, StartJobs/StopJobs, with Orchestrator's error
bodies, scopes, folder headers and the ``GET /odata/Jobs`` rate limit. Jobs run on
simulated time (``time_scale``), faults can be injected, and ``/_simulator/`` serves
counters for tests.

Usage:

    from async_orch.simulator import run_simulator

    async with run_simulator(time_scale=60) as sim:
        ...  # sim.url, sim.token_url, sim.client_id, sim.client_secret

Module map. Pure (no aiohttp): scenario (the file format) and validation, world
(folders, releases, robots), engine (the job life cycle) and outputs, faults,
ratelimit, tokens, clock, routes, folders (folder headers), start_request
(StartJobs/StopJobs bodies), odata, dto, problems (error bodies), stats. On
aiohttp: identity (token endpoints), orchestrator (OData endpoints), admin, app
(routing, faults), responses. core holds the Simulator; runner serves it.
"""

from __future__ import annotations

from async_orch.simulator.core import Simulator, TenantRuntime
from async_orch.simulator.faults import FaultKind, FaultSettings
from async_orch.simulator.runner import SimulatorHandle, run_simulator
from async_orch.simulator.scenario import Scenario, load_scenario, parse_scenario

__all__ = [
    "FaultKind",
    "FaultSettings",
    "Scenario",
    "Simulator",
    "SimulatorHandle",
    "TenantRuntime",
    "load_scenario",
    "parse_scenario",
    "run_simulator",
]
