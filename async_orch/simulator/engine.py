"""The job engine of one tenant: a pure, event-driven job life cycle.

Theory of operation
-------------------
Nothing runs in the background. Every request first calls :meth:`JobEngine.advance`
with the current simulated time; the engine then replays, in time order, every event
due until then. Time is always passed in, so tests drive the engine with plain
numbers and runs are reproducible.

Life cycle of a job (JobDto.State)::

    Pending --(robot slot free, then pickup_delay)--> Running --(duration)--> Successful
       |                                                 |                  or Faulted
       |                                                 |-- SoftStop --> Stopping
       |                                                 |        --(soft_stop_delay)--> Stopped
       |                                                 \\-- Kill --> Terminating
       |                                                          --(kill_delay)--> Stopped
       \\-- SoftStop or Kill --> Stopped (at once)

A process's ``lifecycle`` table (:mod:`lifecycle`) can change three things: how its
workflow answers SoftStop (checks the flag after some seconds, or never, and may
end Successful or Faulted meanwhile); a suspension (Running --> Suspended, robot
freed --(suspend_for, or ResumeJob)--> Resumed --(robot slot, pickup)--> Running);
and outputs too large for OutputArguments (OutputFile, or Faulted past a limit).

* Each folder has a robot *capacity*: at most that many jobs hold a slot (from the
  moment a robot picks them up until they end). Others wait in Pending, highest
  SpecificPriorityValue first, then first come first served.
* All randomness (job key, duration, outcome, outputs) is drawn from the tenant's
  seeded RNG when the job is created, so the same sequence of requests gives the
  same jobs.
* Events carry the job's *generation*; a stop bumps it, which cancels the job's
  pending "finish" event without searching the heap.
* Since every random value is drawn from the seeded RNG and time is passed in,
  the engine's state is a function of its commands (StartJobs and StopJobs, with
  their times): :meth:`JobEngine.replay` rebuilds it from the log that
  ``on_command`` receives, which is how a state file survives a restart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from async_orch._jsonvalues import utf16_length
from async_orch._states import JobState
from async_orch.simulator.lifecycle import OUTPUT_TOO_LARGE
from async_orch.simulator.outputs import FAULT_MESSAGES, compute_outputs
from async_orch.simulator.robots import RuntimePool
from async_orch.simulator.scenario import EngineTimings
from async_orch.simulator.world import Folder, Release, Robot, World

__all__ = [
    "PRIORITY_VALUES",
    "STOP_STRATEGIES",
    "Job",
    "JobEngine",
    "StartOrder",
    "UnknownJobError",
]

#: Receives each command (a JSON-ready dict) before it is applied; see replay().
CommandLog = Callable[[dict[str, Any]], None]

STOP_STRATEGIES = ("SoftStop", "Kill")
# SpecificPriorityValue implied by JobPriority. UNCONFIRMED: the exact mapping
# Orchestrator uses is not documented in our sources; only the order matters here.
PRIORITY_VALUES = {"Low": 15, "Normal": 45, "High": 85}

_START, _FINISH, _STOPPED = "start", "finish", "stopped"
_SUSPEND, _RESUME = "suspend", "resume"
# Attachment ids of large outputs: derived from the job Key, so that no random
# value is drawn (the demo's jobs stay as they were) and a replay gives the same.
_OUTPUT_FILE_NAMESPACE = uuid.UUID("5d0c3a4e-3f38-4c55-9a59-4f8e8f0b6a11")


class UnknownJobError(LookupError):
    """A job id that does not exist in the folder."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(job_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class StartOrder:
    """A validated StartJobs request: one job per entry of ``robots``."""

    folder: Folder
    release: Release
    robots: tuple[Robot | None, ...]  # None: any robot of the folder
    input_arguments: str | None = None
    input_file: str | None = None  # the InputFile attachment the inputs came from
    reference: str | None = None
    source: str = "Manual"
    job_priority: str = "Normal"
    specific_priority: int = PRIORITY_VALUES["Normal"]
    batch_execution_key: str | None = None
    runtime_type: str | None = None


@dataclass(slots=True, kw_only=True)
class Job:
    """One job and what the engine planned for it."""

    id: int
    key: str
    folder: Folder
    release: Release
    state: JobState
    creation_time: float
    last_modification_time: float
    batch_execution_key: str
    input_arguments: str | None
    input_file: str | None
    effective_inputs: dict[str, Any]
    reference: str | None
    source: str
    job_priority: str
    specific_priority: int
    runtime_type: str | None
    duration: float
    fault_message: str | None
    output_seed: int
    call: int  # which StartJobs call created the job (1, 2, ...)
    robot: Robot | None = None
    start_time: float | None = None
    end_time: float | None = None
    output_arguments: str | None = None
    output_file: str | None = None  # an attachment id: the outputs were too large
    output_text: str | None = None  # the outputs' JSON text (inline or as OutputFile)
    remaining: float | None = None  # seconds of work left once resumed
    suspended: bool = False  # suspended once already (it does not suspend again)
    info: str | None = None
    stop_strategy: str | None = None
    generation: int = 0
    has_slot: bool = False


@dataclass(slots=True)
class _FolderQueue:
    capacity: int
    busy: int = 0
    waiting: list[tuple[int, int]] = field(default_factory=list)  # (-priority, job id)
    next_robot: int = 0


class JobEngine:
    """All jobs of one tenant; see the module docstring."""

    def __init__(
        self,
        world: World,
        *,
        timings: EngineTimings,
        seed: str,
        first_job_id: int,
        on_command: CommandLog | None = None,
    ) -> None:
        self.world = world
        self.timings = timings
        self._rng = random.Random(seed)
        # Job Keys come from the seeded RNG; mixing in the first id keeps them
        # unique across runs whose ids differ (a GUID never repeats).
        self._key_salt = int.from_bytes(
            hashlib.sha256(str(first_job_id).encode()).digest()[:16], "big"
        )
        self._next_id = first_job_id
        self.on_command = on_command
        # Told of each job that started or ended (webhooks.py sends the events).
        self.on_change: Callable[[Job], None] | None = None
        self._jobs: dict[int, Job] = {}
        self._by_key: dict[str, Job] = {}
        self._by_output_file: dict[str, Job] = {}
        self._queues = {f.id: _FolderQueue(capacity=f.capacity) for f in world}
        # Machines and licences shared by the tenant's folders (robots.py), if declared.
        self.runtimes = _runtime_pool(world)
        self._events: list[tuple[float, int, int, int, str]] = []
        self._seq = 0
        self._calls = 0
        self.now = float("-inf")

    # -- queries -------------------------------------------------------------

    def job(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def job_by_key(self, key: str) -> Job | None:
        return self._by_key.get(key.strip().lower())

    def job_by_output_file(self, file_id: str) -> Job | None:
        """The job whose OutputFile is ``file_id`` (None if no job has it)."""
        return self._by_output_file.get(file_id.strip().lower())

    def jobs(self, folder_id: int | None = None) -> list[Job]:
        """Jobs in creation order, optionally only those of one folder."""
        return [j for j in self._jobs.values() if folder_id is None or j.folder.id == folder_id]

    def state_counts(self) -> dict[str, int]:
        return dict(Counter(j.state.value for j in self._jobs.values()))

    def reference_counts(self) -> dict[str, int]:
        """How many jobs were created with each Reference (jobs without one are left out)."""
        return dict(Counter(j.reference for j in self._jobs.values() if j.reference is not None))

    def reference_calls(self) -> dict[str, int]:
        """In how many distinct StartJobs calls each Reference was used.

        More than 1 means the same work was started twice (a blind retry).
        """
        calls: dict[str, set[int]] = {}
        for job in self._jobs.values():
            if job.reference is not None:
                calls.setdefault(job.reference, set()).add(job.call)
        return {reference: len(ids) for reference, ids in calls.items()}

    def running(self, folder_id: int) -> int:
        """Jobs holding a robot slot in the folder."""
        return self._queues[folder_id].busy

    def next_event_time(self) -> float | None:
        return self._events[0][0] if self._events else None

    # -- commands ------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Replay every event due at or before *now*, in time order."""
        while self._events and self._events[0][0] <= now:
            at, _, job_id, generation, kind = heapq.heappop(self._events)
            job = self._jobs[job_id]
            if generation != job.generation or job.state.is_terminal:
                continue  # cancelled by a stop, or outrun by another event
            self.now = max(self.now, at)
            if kind == _START:
                self._begin(job, at)
            elif kind == _FINISH:
                self._finish(job, at)
            elif kind == _SUSPEND:
                self._suspend(job, at)
            elif kind == _RESUME:
                self._resume(job, at)
            else:
                self._end_stopped(job, at)
        self.now = max(self.now, now)

    def replay(self, command: Mapping[str, Any]) -> None:
        """Apply a command that ``on_command`` received in an earlier run.

        Raises:
            KeyError, ValueError: the command names a folder, process or robot
                this world does not have (another scenario), or is malformed.
        """
        log, self.on_command = self.on_command, None  # already logged
        try:
            if command["op"] == "start":
                self.start_jobs(command["now"], self._decode_order(command))
            elif command["op"] == "stop":
                self.stop_jobs(
                    command["now"], command["folder"], command["ids"], command["strategy"]
                )
            elif command["op"] == "runtimes":
                self.change_runtimes(
                    command["now"],
                    machine=command["machine"],
                    online=command["online"],
                    licenses=command["licenses"],
                )
            elif command["op"] == "resume":
                self.resume_job(command["now"], command["key"])
            else:
                raise ValueError(f"unknown command {command['op']!r}")
        finally:
            self.on_command = log

    def start_jobs(self, now: float, order: StartOrder) -> list[Job]:
        """Create the jobs of *order* in Pending; return them."""
        if self.on_command is not None:
            self.on_command({"op": "start", "now": now, **_encode_order(order)})
        self.advance(now)
        spec = order.release.spec
        batch = order.batch_execution_key or str(self._uuid())
        defaults = json.loads(spec.input_arguments) if spec.input_arguments else {}
        given = json.loads(order.input_arguments) if order.input_arguments else {}
        created = []
        self._calls += 1
        for robot in order.robots:
            # Draw every random value now, in a fixed order: reproducibility.
            key = str(self._uuid())
            duration = self._rng.uniform(spec.duration.low, spec.duration.high)
            faulted = self._rng.random() < spec.fault_rate
            message = self._rng.choice(FAULT_MESSAGES)
            job = Job(
                id=self._next_id,
                key=key,
                folder=order.folder,
                release=order.release,
                state=JobState.PENDING,
                creation_time=now,
                last_modification_time=now,
                batch_execution_key=batch,
                # With an InputFile, JobDto.InputArguments is null (the text is in the file).
                input_arguments=order.input_arguments if order.input_file is None else None,
                input_file=order.input_file,
                effective_inputs={**defaults, **given},
                reference=order.reference,
                source=order.source,
                job_priority=order.job_priority,
                specific_priority=order.specific_priority,
                runtime_type=order.runtime_type,
                duration=duration,
                fault_message=message if faulted else None,
                output_seed=self._rng.getrandbits(32),
                call=self._calls,
                robot=robot,
            )
            self._next_id += 1
            self._jobs[job.id] = job
            self._by_key[job.key] = job
            heapq.heappush(self._queues[order.folder.id].waiting, (-job.specific_priority, job.id))
            created.append(job)
        self._dispatch(order.folder, now)
        return created

    def stop_jobs(self, now: float, folder_id: int, job_ids: list[int], strategy: str) -> None:
        """Stop jobs of one folder; all ids are checked before any job changes."""
        if strategy not in STOP_STRATEGIES:
            raise ValueError(f"strategy must be one of {STOP_STRATEGIES}, got {strategy!r}")
        self.advance(now)
        jobs = []
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is None or job.folder.id != folder_id:
                raise UnknownJobError(job_id)
            jobs.append(job)
        if self.on_command is not None:
            command = {"op": "stop", "now": now, "folder": folder_id, "ids": job_ids}
            self.on_command({**command, "strategy": strategy})
        for job in jobs:
            self._stop(job, strategy, now)

    def change_runtimes(
        self,
        now: float,
        *,
        machine: str | None = None,
        online: bool | None = None,
        licenses: int | None = None,
    ) -> None:
        """The admin fixes (or breaks) a machine or the licences; Pending jobs are re-evaluated.

        Raises:
            ValueError: the tenant declares no machines.
            KeyError: no machine of that name.
        """
        if self.runtimes is None:
            raise ValueError("this tenant declares no machines ([[tenants.machines]])")
        self.advance(now)
        self.runtimes.change(machine=machine, online=online, licenses=licenses)
        if self.on_command is not None:
            command = {"op": "runtimes", "now": now, "machine": machine, "online": online}
            self.on_command({**command, "licenses": licenses})
        self._dispatch_on_runtimes(now)

    def resume_job(self, now: float, key: str) -> bool:
        """Resume a Suspended job (ResumeJob); False if it is not Suspended.

        Raises:
            UnknownJobError: no job has this Key (``job_id`` is then 0).
        """
        self.advance(now)
        job = self.job_by_key(key)
        if job is None:
            raise UnknownJobError(0)
        if job.state is not JobState.SUSPENDED:
            return False
        if self.on_command is not None:
            self.on_command({"op": "resume", "now": now, "key": job.key})
        job.generation += 1  # cancels a scheduled resume
        self._resume(job, now)
        return True

    # -- transitions ---------------------------------------------------------

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128) ^ self._key_salt, version=4)

    def _decode_order(self, data: Mapping[str, Any]) -> StartOrder:
        folder = self.world.folder_by_id(data["folder"])
        if folder is None:
            raise KeyError(f"folder Id {data['folder']}")
        release = folder.release_by_key(data["release"])
        if release is None:
            raise KeyError(f"process Key {data['release']} in folder {folder.path!r}")
        return StartOrder(
            folder=folder,
            release=release,
            robots=tuple(None if r is None else self.world.robots[r] for r in data["robots"]),
            input_arguments=data["input_arguments"],
            input_file=data.get("input_file"),
            reference=data["reference"],
            source=data["source"],
            job_priority=data["job_priority"],
            specific_priority=data["specific_priority"],
            batch_execution_key=data["batch_execution_key"],
            runtime_type=data["runtime_type"],
        )

    def _schedule(self, at: float, job: Job, kind: str) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, job.id, job.generation, kind))

    def _dispatch(self, folder: Folder, at: float) -> None:
        """Give free robot slots of *folder* to waiting jobs."""
        if self.runtimes is not None:
            self._dispatch_on_runtimes(at)
            return
        queue = self._queues[folder.id]
        while queue.busy < queue.capacity and queue.waiting:
            _, job_id = heapq.heappop(queue.waiting)
            job = self._jobs[job_id]
            if job.state not in (JobState.PENDING, JobState.RESUMED):
                continue  # stopped while waiting
            queue.busy += 1
            job.has_slot = True
            if job.robot is None and folder.robots:
                job.robot = folder.robots[queue.next_robot % len(folder.robots)]
                queue.next_robot += 1
            self._schedule(at + self.timings.pickup_delay, job, _START)

    def _dispatch_on_runtimes(self, at: float) -> None:
        """Shared runtimes: repeatedly give one to the best waiting job of any folder that
        can get one (highest priority, then oldest); the others stay Pending."""
        pool = self.runtimes
        assert pool is not None
        while True:
            best: tuple[tuple[int, int], int] | None = None
            for folder_id, queue in self._queues.items():
                while queue.waiting and self._jobs[queue.waiting[0][1]].state not in (
                    JobState.PENDING,
                    JobState.RESUMED,
                ):
                    heapq.heappop(queue.waiting)  # stopped while waiting
                if not queue.waiting or pool.pending_reason(folder_id) is not None:
                    continue
                if best is None or queue.waiting[0] < best[0]:
                    best = (queue.waiting[0], folder_id)
            if best is None:
                return
            (_, job_id), folder_id = best
            queue = self._queues[folder_id]
            heapq.heappop(queue.waiting)
            job = self._jobs[job_id]
            taken = pool.acquire(job.id, folder_id)
            assert taken is not None  # pending_reason was None just above
            queue.busy += 1
            job.has_slot = True
            robot = job.robot
            if robot is None and job.folder.robots:
                robot = job.folder.robots[queue.next_robot % len(job.folder.robots)]
                queue.next_robot += 1
            if robot is not None:
                # The robot account runs on the machine that had the free runtime.
                job.robot = dataclasses.replace(robot, machine_id=taken[0], machine_name=taken[1])
            self._schedule(at + self.timings.pickup_delay, job, _START)

    def _free_slot(self, job: Job, at: float) -> None:
        if job.has_slot:
            job.has_slot = False
            self._queues[job.folder.id].busy -= 1
            if self.runtimes is not None:
                self.runtimes.release(job.id)
            self._dispatch(job.folder, at)

    def _begin(self, job: Job, at: float) -> None:
        job.state = JobState.RUNNING
        job.last_modification_time = at
        if job.remaining is not None:  # resumed: the rest of its work
            self._schedule(at + job.remaining, job, _FINISH)
            return
        job.start_time = at
        self._changed(job)
        suspend_after = job.release.spec.lifecycle.suspend_after
        if suspend_after is not None and suspend_after < job.duration:
            self._schedule(at + suspend_after, job, _SUSPEND)
        else:
            self._schedule(at + job.duration, job, _FINISH)

    def _suspend(self, job: Job, at: float) -> None:
        lifecycle = job.release.spec.lifecycle
        assert lifecycle.suspend_after is not None  # only scheduled when set
        remaining = job.duration - lifecycle.suspend_after
        if job.state is not JobState.RUNNING:
            # Asked to stop first: it goes on to its end (or its soft-stop check).
            self._schedule(at + remaining, job, _FINISH)
            return
        job.state = JobState.SUSPENDED
        job.suspended = True
        job.remaining = remaining
        job.last_modification_time = at
        # A suspended job waits for its event without a robot (long-running
        # workflows; orchestrator-api.md §3.5): its slot goes to the next job.
        self._free_slot(job, at)
        if lifecycle.suspend_for is not None:
            self._schedule(at + lifecycle.suspend_for, job, _RESUME)

    def _resume(self, job: Job, at: float) -> None:
        # ASSUMPTION: a resumed job waits in Resumed for a robot like a Pending
        # one (it may resume on another robot), then runs what was left.
        job.state = JobState.RESUMED
        job.last_modification_time = at
        job.robot = None
        queue = self._queues[job.folder.id]
        heapq.heappush(queue.waiting, (-job.specific_priority, job.id))
        self._dispatch(job.folder, at)

    def _finish(self, job: Job, at: float) -> None:
        job.end_time = job.last_modification_time = at
        if job.fault_message is not None:
            job.state = JobState.FAULTED
            job.info = job.fault_message
        else:
            outputs = compute_outputs(
                job.release.spec.outputs, job.effective_inputs, job.output_seed
            )
            # Compact, as .NET serializes it.
            text = json.dumps(outputs, ensure_ascii=False, separators=(",", ":"))
            self._set_outputs(job, text)
        self._free_slot(job, at)
        self._changed(job)

    def _changed(self, job: Job) -> None:
        if self.on_change is not None:
            self.on_change(job)

    def _set_outputs(self, job: Job, text: str) -> None:
        """Successful with ``text`` as outputs: inline, as an OutputFile, or too large."""
        lifecycle = job.release.spec.lifecycle
        length = utf16_length(text)
        if lifecycle.output_limit is not None and length > lifecycle.output_limit:
            job.state = JobState.FAULTED
            job.info = OUTPUT_TOO_LARGE
            return
        job.state = JobState.SUCCESSFUL
        job.info = "Job completed"
        job.output_text = text
        if lifecycle.output_file_over is not None and length > lifecycle.output_file_over:
            job.output_file = str(uuid.uuid5(_OUTPUT_FILE_NAMESPACE, job.key))
            self._by_output_file[job.output_file] = job
        else:
            job.output_arguments = text

    def _end_stopped(self, job: Job, at: float) -> None:
        job.state = JobState.STOPPED
        job.end_time = job.last_modification_time = at
        # UNCONFIRMED: the exact Info text Orchestrator sets on a stopped job.
        job.info = "Job was killed." if job.stop_strategy == "Kill" else "Job was stopped."
        self._free_slot(job, at)
        self._changed(job)

    def _stop(self, job: Job, strategy: str, now: float) -> None:
        lifecycle = job.release.spec.lifecycle
        if job.state in (JobState.PENDING, JobState.SUSPENDED, JobState.RESUMED):
            # ASSUMPTION for Suspended/Resumed: no workflow runs to ask, so the
            # stop takes effect at once, as for a Pending job.
            job.generation += 1  # cancels a scheduled pick-up or resume
            job.stop_strategy = strategy
            self._end_stopped(job, now)
        elif (
            job.state is JobState.RUNNING and strategy == "SoftStop" and lifecycle.models_soft_stop
        ):
            # Only the "should stop" flag is set (orchestrator-api.md §8): the work
            # goes on (its finish stays scheduled) until the workflow checks.
            job.state = JobState.STOPPING
            job.stop_strategy = strategy
            job.last_modification_time = now
            if lifecycle.soft_stop_check is not None:
                self._schedule(now + lifecycle.soft_stop_check, job, _STOPPED)
        elif job.state is JobState.RUNNING or (
            job.state is JobState.STOPPING and strategy == "Kill"
        ):
            job.generation += 1  # cancels the scheduled finish / soft stop
            job.stop_strategy = strategy
            job.last_modification_time = now
            if strategy == "Kill":
                job.state = JobState.TERMINATING
                self._schedule(now + self.timings.kill_delay, job, _STOPPED)
            else:
                job.state = JobState.STOPPING
                self._schedule(now + self.timings.soft_stop_delay, job, _STOPPED)
        # UNCONFIRMED: stopping a job that is already stopping or finished is
        # accepted and ignored here; the real service may answer an error.


def _runtime_pool(world: World) -> RuntimePool | None:
    model = world.tenant.runtimes
    if model is None:
        return None
    # Machine ids after the robots' own: unique in the tenant, the same on every run.
    first = max((r.machine_id for r in world.robots.values()), default=0) + 1
    return RuntimePool(model, {f.path: f.id for f in world}, first_machine_id=first)


def _encode_order(order: StartOrder) -> dict[str, Any]:
    """A StartOrder as JSON-ready data (see JobEngine.replay)."""
    return {
        "folder": order.folder.id,
        "release": order.release.key,
        "robots": [None if r is None else r.id for r in order.robots],
        "input_arguments": order.input_arguments,
        "input_file": order.input_file,
        "reference": order.reference,
        "source": order.source,
        "job_priority": order.job_priority,
        "specific_priority": order.specific_priority,
        "batch_execution_key": order.batch_execution_key,
        "runtime_type": order.runtime_type,
    }
