"""Helpers shared by the dispatcher, poller and client dispatch tests (no tests here).

* :func:`scenario`: a simulator scenario built for a test (folders, capacity, timings,
  rate limit, an ``Echo`` process and a ``Slow`` one that never ends by itself).
* :func:`fast_settings`: client settings for a simulator, with short retry waits.
* :func:`fast_poll`: a poll policy that checks jobs every few tens of milliseconds.
* :class:`FakeAPI`: an in-memory stand-in for :class:`OrchestratorAPI` whose
  StartJobs can be held at a gate, to observe limits without HTTP.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from async_orch.config import ClientCredentials, RetryPolicy, Settings
from async_orch.errors import FolderNotFoundError, ProcessNotFoundError
from async_orch.models import Folder, Job, Release, StartRequest
from async_orch.planner import PollPolicy
from async_orch.simulator import Scenario, SimulatorHandle, parse_scenario
from async_orch.states import JobState

FOLDERS = ("Shared", "Finance", "Finance/Comptabilité", "HR")
START_JOBS = "POST /odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
STOP_JOBS = "POST /odata/Jobs/UiPath.Server.Configuration.OData.StopJobs"
LIST_JOBS = "GET /odata/Jobs"
GET_JOB = "GET /odata/Jobs({key})"
NEVER = 10_000_000.0  # simulated seconds: a job that outlives any test


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

[[tenants]]
organization = "test"
name = "T"
[tenants.rate_limit]
jobs_list = {jobs_list}
window_seconds = 60
[[tenants.credentials]]
client_id = "app"
client_secret = "secret"
scopes = ["OR.Folders.Read", "OR.Execution.Read", "OR.Jobs"]

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


# -- an in-memory API ---------------------------------------------------------------


@dataclass
class FakeJob:
    id: int
    folder: Folder
    reference: str | None
    inputs: dict[str, Any] | None
    state: JobState = JobState.PENDING
    obeys_soft_stop: bool = True


@dataclass
class FakeAPI:
    """What the dispatcher and watcher call on OrchestratorAPI, in memory.

    ``gate``: when set to an unset Event, StartJobs waits for it (after counting
    itself in flight), so tests can look at how many calls are in flight.
    ``start_errors``: exceptions StartJobs raises, in turn, before succeeding;
    with ``create_before_error`` the jobs are created first (an ambiguous start).
    ``finish_on_start``: new jobs are Successful at once.
    """

    folders: Sequence[str] = FOLDERS
    processes: Sequence[str] = ("Echo",)
    gate: anyio.Event | None = None
    start_errors: list[BaseException] = field(default_factory=list)
    create_before_error: bool = False
    list_errors: list[BaseException] = field(default_factory=list)
    finish_on_start: bool = False
    jobs: dict[int, FakeJob] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    in_flight_by_folder: dict[str, int] = field(default_factory=dict)
    max_by_folder: dict[str, int] = field(default_factory=dict)
    changed: anyio.Event = field(default_factory=anyio.Event)
    _ids: Any = field(default_factory=lambda: itertools.count(1000))

    def folder(self, path: str) -> Folder:
        index = list(self.folders).index(path)
        return Folder(id=100 + index, key=None, display_name=path, fully_qualified_name=path)

    async def resolve_folder(self, ref: Any) -> Folder:
        await anyio.lowlevel.checkpoint()
        if isinstance(ref, Folder):
            return ref
        if ref not in self.folders:
            raise FolderNotFoundError(f"folder {ref!r} not found", name=str(ref))
        return self.folder(ref)

    async def resolve_release(self, folder: Any, process: str) -> Release:
        await anyio.lowlevel.checkpoint()
        resolved = await self.resolve_folder(folder)
        if process not in self.processes:
            raise ProcessNotFoundError(f"process {process!r} not found", name=process)
        return Release(
            id=1, key=f"key-{process}", name=process, process_key=process, folder_id=resolved.id
        )

    def _signal(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def start_jobs(self, folder: Any, request: StartRequest) -> list[Job]:
        path = folder.fully_qualified_name
        self.calls.append(("start", path, request.reference))
        self.in_flight += 1
        self.in_flight_by_folder[path] = self.in_flight_by_folder.get(path, 0) + 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.max_by_folder[path] = max(
            self.max_by_folder.get(path, 0), self.in_flight_by_folder[path]
        )
        self._signal()
        try:
            if self.gate is not None:
                await self.gate.wait()
            await anyio.lowlevel.checkpoint()
            if self.start_errors and not self.create_before_error:
                raise self.start_errors.pop(0)
            created = [
                FakeJob(
                    id=next(self._ids),
                    folder=folder,
                    reference=request.reference,
                    inputs=request.input_arguments,
                    state=JobState.SUCCESSFUL if self.finish_on_start else JobState.PENDING,
                )
                for _ in range(request.jobs_count)
            ]
            for job in created:
                self.jobs[job.id] = job
            if self.start_errors:
                raise self.start_errors.pop(0)
            return [self._dto(job) for job in created]
        finally:
            self.in_flight -= 1
            self.in_flight_by_folder[path] -= 1
            self._signal()

    async def list_jobs(self, folder: Any, **query: Any) -> list[Job]:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("list", folder, tuple(sorted(query))))
        if self.list_errors:
            raise self.list_errors.pop(0)
        jobs = list(self.jobs.values())
        if query.get("reference") is not None:
            jobs = [j for j in jobs if j.reference == query["reference"]]
        if query.get("ids") is not None:
            jobs = [j for j in jobs if j.id in set(query["ids"])]
        return [self._dto(job, outputs=False) for job in jobs]

    async def job_states(self, folder: Any, ids: Sequence[int]) -> dict[int, JobState]:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("states", folder, tuple(ids)))
        if self.list_errors:
            raise self.list_errors.pop(0)
        return {i: self.jobs[i].state for i in ids if i in self.jobs}

    async def get_job(self, folder: Any, job_id: int) -> Job:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("get", folder, job_id))
        return self._dto(self.jobs[job_id])

    async def stop_jobs(self, folder: Any, job_ids: Sequence[int], *, strategy: str) -> None:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("stop", folder, tuple(job_ids), strategy))
        for job_id in job_ids:
            job = self.jobs[job_id]
            if job.state.is_terminal:
                continue
            if strategy == "Kill" or job.obeys_soft_stop:
                job.state = JobState.STOPPED
            else:
                job.state = JobState.STOPPING
        self._signal()

    def _dto(self, job: FakeJob, *, outputs: bool = True) -> Job:
        done = job.state is JobState.SUCCESSFUL
        return Job(
            id=job.id,
            key=f"key-{job.id}",
            state=job.state,
            reference=job.reference,
            folder_id=job.folder.id,
            output_arguments=dict(job.inputs or {}) if outputs and done else None,
        )

    def starts(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == "start"]

    def stops(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == "stop"]

    async def wait_until(self, predicate: Any) -> None:
        """Wait (on events, not time) until ``predicate()`` holds."""
        while not predicate():
            await self.changed.wait()
