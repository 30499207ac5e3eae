"""Typed fakes for the two I/O seams (:mod:`async_orch._seams`); no tests here.

* :class:`FakeAPI`: an in-memory :class:`~async_orch._seams.JobsAPI` (what the
  dispatcher, watchers and starter call) whose StartJobs can be held at a gate, to
  observe limits without HTTP. Tests that need a call to behave otherwise subclass it.
* :class:`FakeSender`: an :class:`~async_orch._seams.HTTPSender` that answers from a
  script (or a handler) and records every request, for Transport and TokenManager
  tests that need no aiohttp.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
from multidict import CIMultiDict

from async_orch._blobs import check_blob_size
from async_orch._errors import FolderNotFoundError, ProcessNotFoundError
from async_orch._http import Response
from async_orch._models import Folder, Job, Release, StartRequest
from async_orch._seams import FolderRef, HTTPSender, JobsAPI, RangeAnswer
from async_orch._states import JobState

FOLDERS = ("Shared", "Finance", "Finance/Comptabilité", "HR")

# -- the jobs API ---------------------------------------------------------------------


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
    ``list_errors``: exceptions the list calls (states, References) raise, in turn.
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
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def folder(self, path: str) -> Folder:
        index = list(self.folders).index(path)
        return Folder(id=100 + index, key=None, display_name=path, fully_qualified_name=path)

    def _folder_now(self, ref: FolderRef) -> Folder:
        if isinstance(ref, Folder):
            return ref
        if ref not in self.folders:
            raise FolderNotFoundError(f"folder {ref!r} not found", name=str(ref))
        assert isinstance(ref, str), "the fake knows folders by path only"
        return self.folder(ref)

    async def resolve_folder(self, ref: FolderRef) -> Folder:
        await anyio.lowlevel.checkpoint()
        return self._folder_now(ref)

    async def resolve_release(self, folder: FolderRef, process: str) -> Release:
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

    async def create_jobs(self, folder: FolderRef, request: StartRequest) -> list[Job]:
        resolved = self._folder_now(folder)
        path = resolved.fully_qualified_name
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
                    folder=resolved,
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

    async def jobs_by_reference(self, folder: FolderRef, references: Sequence[str]) -> list[Job]:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("references", folder, tuple(references)))
        if self.list_errors:
            raise self.list_errors.pop(0)
        wanted = set(references)
        return [self._dto(j, outputs=False) for j in self.jobs.values() if j.reference in wanted]

    async def job_states(self, folder: FolderRef, ids: Sequence[int]) -> dict[int, JobState]:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("states", folder, tuple(ids)))
        if self.list_errors:
            raise self.list_errors.pop(0)
        return {i: self.jobs[i].state for i in ids if i in self.jobs}

    async def unfinished_jobs(
        self, folder: FolderRef, low: int, high: int, *, top: int, also: Sequence[int] = ()
    ) -> RangeAnswer:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("unfinished", folder, (low, high)))
        if self.list_errors:
            raise self.list_errors.pop(0)
        # The watcher names folders by Key or Id, callers by path.
        rows = [
            (job.id, job.state)
            for job in self.jobs.values()
            if (low <= job.id <= high or job.id in also)
            and not job.state.is_terminal
            and folder
            in (job.folder, job.folder.id, job.folder.key, job.folder.fully_qualified_name)
        ]
        return RangeAnswer(sorted(rows)[:top])

    async def get_job(self, folder: FolderRef, job_id: int) -> Job:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("get", folder, job_id))
        return self._dto(self.jobs[job_id])

    async def with_outputs(self, folder: FolderRef, job: Job) -> Job:
        return job  # the fake's outputs are always inline

    async def stop_jobs(self, folder: FolderRef, job_ids: Sequence[int], *, strategy: str) -> None:
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

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait (on events, not time) until ``predicate()`` holds."""
        while not predicate():
            await self.changed.wait()


# -- the HTTP sender ------------------------------------------------------------------


@dataclass(frozen=True)
class SentRequest:
    """One request a :class:`FakeSender` was asked to send."""

    method: str
    url: str
    headers: Mapping[str, str]
    params: Mapping[str, str] | None
    body: bytes | None

    def json(self) -> Any:
        assert self.body is not None, "the request has no body"
        return json.loads(self.body)


def reply(
    status: int = 200,
    payload: Any = None,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A response: ``payload`` as JSON (with its Content-Type), or the raw ``body``."""
    all_headers: CIMultiDict[str] = CIMultiDict(headers or {})
    if body is None:
        body = b"" if payload is None else json.dumps(payload).encode()
        if payload is not None:
            all_headers.setdefault("Content-Type", "application/json")
    return Response(status, all_headers, body)


#: What a FakeSender does with a request: answer it, raise, or compute either.
Outcome = Response | BaseException
Handler = Callable[[SentRequest], Awaitable[Outcome]]


class FakeSender:
    """An :class:`~async_orch._seams.HTTPSender` that answers from a script.

    ``FakeSender(reply(...), TransportError(...), ...)``: each request gets the next
    outcome, in turn (an exception is raised); ``FakeSender(handler=...)``: each
    request is answered by awaiting ``handler(request)``. Every request is recorded
    in :attr:`requests`, and every send passes an anyio checkpoint.
    """

    def __init__(self, *script: Outcome, handler: Handler | None = None) -> None:
        assert not (script and handler), "a script or a handler, not both"
        self.script = list(script)
        self.handler = handler
        self.requests: list[SentRequest] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"FakeSender({len(self.requests)} sent)"

    def sent_to(self, url: str) -> list[SentRequest]:
        return [r for r in self.requests if r.url == url]

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        max_body: int | None = None,
    ) -> Response:
        request = SentRequest(method, url, dict(headers), params, body)
        self.requests.append(request)
        await anyio.lowlevel.checkpoint()
        if self.handler is not None:
            outcome = await self.handler(request)
        else:
            assert self.script, f"FakeSender has no answer left for {method} {url}"
            outcome = self.script.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        if max_body is not None and outcome.status < 400:
            check_blob_size(len(outcome.body), max_body, url)
        return Response(outcome.status, outcome.headers, outcome.body, url)


def _implements_the_seams(api: FakeAPI, sender: FakeSender) -> tuple[JobsAPI, HTTPSender]:
    """Never called: mypy checks here that the fakes implement the seams."""
    return api, sender
