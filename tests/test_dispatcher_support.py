"""Helpers shared by the dispatcher, poller and client dispatch tests (no tests here).

* :func:`scenario`: a simulator scenario built for a test (folders, capacity, timings,
  rate limit, an ``Echo`` process and a ``Slow`` one that never ends by itself).
* :func:`fast_settings`: client settings for a simulator, with short retry waits.
* :func:`fast_poll`: a poll policy that checks jobs every few tens of milliseconds.
* :func:`leave_after_first`: a caller that breaks out of ``iter_jobs`` after one result.

The in-memory API (``FakeAPI``) lives in ``fakes.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from async_orch._client import OrchestratorClient
from async_orch._config import ClientCredentials, RetryPolicy, Settings
from async_orch._jobs import JobRequest, JobResult
from async_orch._options import StopPolicy
from async_orch._planner import PollPolicy
from async_orch.simulator import Scenario, SimulatorHandle, parse_scenario

FOLDERS = ("Shared", "Finance", "Finance/Comptabilité", "HR")
START_JOBS = "POST /odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
STOP_JOBS = "POST /odata/Jobs/UiPath.Server.Configuration.OData.StopJobs"
LIST_JOBS = "GET /odata/Jobs"
GET_JOB = "GET /odata/Jobs({key})"
NEVER = 10_000_000.0  # simulated seconds: a job that outlives any test

#: The test tenant and its client (``fast_settings``'s credentials), for scenario texts.
TENANT_T = """[[tenants]]
organization = "test"
name = "T"
[[tenants.credentials]]
client_id = "app"
client_secret = "secret"
scopes = ["OR.Folders.Read", "OR.Execution.Read", "OR.Jobs"]
"""


def scenario(
    *,
    folders: Sequence[str] = FOLDERS,
    capacity: int = 25,
    echo: tuple[float, float] = (1.0, 2.0),
    jobs_list: int = 100,
    pickup_delay: float = 2.0,
    soft_stop_delay: float = 5.0,
    kill_delay: float = 1.0,
    seed: int = 7,
) -> Scenario:
    """A one-tenant scenario; every folder has Echo (``echo`` seconds) and Slow."""
    parents = {f.rsplit("/", 1)[0] for f in folders if "/" in f}
    missing = parents - set(folders)
    assert not missing, f"declare parent folders too: {missing}"
    folder_tables = "\n".join(
        f'[[tenants.folders]]\npath = "{path}"\ncapacity = {capacity}\nrobots = 2\n'
        for path in folders
    )
    text = f"""
seed = {seed}
[engine]
pickup_delay = {pickup_delay}
soft_stop_delay = {soft_stop_delay}
kill_delay = {kill_delay}

{TENANT_T}
[tenants.rate_limit]
jobs_list = {jobs_list}
window_seconds = 60

[[tenants.processes]]
name = "Echo"
duration = [{echo[0]}, {echo[1]}]
outputs = "echo"

[[tenants.processes]]
name = "Slow"
duration = {NEVER}
outputs = "echo"

{folder_tables}
"""
    return parse_scenario(text, name="test-scenario")


def fast_client(sim: SimulatorHandle) -> OrchestratorClient:
    """A client of ``sim`` with :func:`fast_settings` and :func:`fast_poll`."""
    return OrchestratorClient(fast_settings(sim), poll=fast_poll())


def fast_settings(sim: SimulatorHandle, *, attempts: int = 5) -> Settings:
    return Settings(
        url=sim.url,
        credentials=ClientCredentials(client_id=sim.client_id, client_secret=sim.client_secret),
        # The simulator answers at once (or never): a short reconcile window is enough.
        retry=RetryPolicy(
            attempts=attempts,
            wait_initial=0.01,
            wait_max=0.05,
            wait_jitter=0.01,
            reconcile_window=0.3,
        ),
    )


def fast_poll(*, budget: float = 600.0) -> PollPolicy:
    return PollPolicy(
        list_budget_per_minute=budget,
        min_interval=0.02,
        max_interval=0.3,
        interval_growth=0.1,
        probe_rate_per_second=100.0,
        rate_limit_pause=1.0,
    )


def requests_to(sim: SimulatorHandle, endpoint: str) -> int:
    """Requests the simulator received on an endpoint, whatever their status."""
    return sum(sim.simulator.stats()["requests"].get(endpoint, {}).values())


def engine_jobs(sim: SimulatorHandle) -> list[Any]:
    """Every job of the simulator's first tenant (the engine's own records)."""
    runtime = sim.simulator.tenants[0]
    runtime.engine.advance(sim.simulator.sim_now())
    return list(runtime.engine.jobs())


async def leave_after_first(
    client: OrchestratorClient, requests: Sequence[JobRequest], *, stop: StopPolicy
) -> JobResult:
    """Open ``client``, take the first result of ``iter_jobs(requests, stop=stop)``
    and break out, closing the generator (which ends the batch) before the client."""
    async with (
        client as orch,
        contextlib.aclosing(orch.iter_jobs(requests, stop=stop)) as results,
    ):
        async for result in results:
            return result
    raise AssertionError("iter_jobs gave no result")
