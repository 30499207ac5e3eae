"""The two I/O seams: small protocols the I/O-free layers depend on.

* :class:`HTTPSender`: send one HTTP request, read the whole response (httpx's
  ``AsyncBaseTransport``, gidgethub's ``abc._request``). :class:`~async_orch._transport.Transport`
  and :class:`~async_orch._auth.TokenManager` send through it. The library's
  implementation is :class:`~async_orch._http.AiohttpSender`, over an aiohttp
  session; tests pass a scripted fake (``tests/fakes.py``).
* :class:`JobsAPI`: the job calls the dispatching layers make (exactly those:
  :class:`~async_orch._dispatcher.Dispatcher`, :class:`~async_orch._poller.JobWatcher`,
  :class:`~async_orch._starting.Starter`, :class:`~async_orch._reference_lookups.ReferenceLookups`).
  The library's implementation is :class:`~async_orch._resources.OrchestratorAPI`;
  tests pass an in-memory fake.

Both are structural (``typing.Protocol``): an implementation need not inherit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from async_orch._http import Response
from async_orch._models import CreatedJob, Folder, Job, Release, StartRequest
from async_orch._states import JobState

__all__ = ["FolderRef", "HTTPSender", "JobsAPI", "RangeAnswer", "StateRows"]

#: A folder as users name it: numeric Id, Key (GUID) or path ("Finance/Invoices").
FolderRef = int | str | Folder

#: (Id, State) rows of a list call, as ``$select=Id,State`` returns them.
StateRows: TypeAlias = list[tuple[int, JobState]]


@dataclass(frozen=True, slots=True)
class RangeAnswer:
    """One page of a range query: its (Id, State) ``rows``, and ``cut``: the server
    said more rows match than it returned (``@odata.nextLink``, or ``@odata.count``
    above the rows), so the page ends at its last row, as a full page does;
    ``received``: how many rows the server sent, unreadable ones (left out of
    ``rows``) included, which is what tells whether the page was full;
    ``unreadable``: the Ids of the rows left out that had one (say, a row without
    a State): listed, so not ended, but their state is unknown."""

    rows: StateRows
    cut: bool = False
    received: int | None = None  # None: as many as rows
    unreadable: tuple[int, ...] = ()


class HTTPSender(Protocol):
    """Sends one request and reads the whole response; retries nothing.

    Implementations raise only async-orch errors: :class:`~async_orch._errors.TransportError`
    (or :class:`~async_orch._errors.RequestTimeoutError`) with ``may_have_reached_server``
    when there is no usable response, :class:`~async_orch._errors.ClientClosedError`
    when closed, :class:`~async_orch._errors.ConfigurationError` when the environment
    makes the request impossible (a .netrc entry clashing with the bearer token).
    Any HTTP status is a :class:`~async_orch._http.Response`, not an error.
    """

    @property
    def closed(self) -> bool:
        """True once nothing more can be sent (say, the session was closed)."""
        ...

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
        """Send ``method url`` (``params``: the query) and return the whole response.

        With ``max_body`` (an attachment's content), a success (status < 400) whose
        body is longer raises :class:`~async_orch._blobs.BlobTooLargeError`, having
        read no further."""
        ...


class JobsAPI(Protocol):
    """The Orchestrator job calls the dispatcher, watchers and starter make.

    Errors are async-orch errors (:class:`~async_orch._errors.OrchestratorError`
    subclasses); see :class:`~async_orch._resources.OrchestratorAPI` for each call's.
    """

    async def resolve_folder(self, ref: FolderRef) -> Folder:
        """The folder of an Id, Key or path (FolderNotFoundError if none)."""
        ...

    async def resolve_release(self, folder: FolderRef, process: str) -> Release:
        """The process (release) of that name, Key or ProcessKey in a folder."""
        ...

    async def create_jobs(
        self, folder: FolderRef, request: StartRequest
    ) -> Sequence[CreatedJob | Job]:
        """One StartJobs POST, never retried by the implementation: the jobs it
        created (a :class:`~async_orch._models.CreatedJob` holds all a start reads)."""
        ...

    async def jobs_by_reference(self, folder: FolderRef, references: Sequence[str]) -> list[Job]:
        """The folder's jobs with any of ``references``, in one list call, tried once."""
        ...

    async def job_states(self, folder: FolderRef, ids: Sequence[int]) -> dict[int, JobState]:
        """The State of each job of ``ids`` the list returns (one list call)."""
        ...

    async def unfinished_jobs(
        self, folder: FolderRef, low: int, high: int, *, top: int, also: Sequence[int] = ()
    ) -> RangeAnswer:
        """Id and State of the folder's unfinished jobs with ``low <= Id <= high``
        or an Id in ``also``, ordered by Id, at most ``top`` (one list call)."""
        ...

    async def get_job(self, folder: FolderRef, job_id: int) -> Job:
        """One job with its arguments (not rate limited)."""
        ...

    async def with_outputs(self, folder: FolderRef, job: Job) -> Job:
        """``job`` with its outputs read from its OutputFile attachment, if it has one."""
        ...

    async def stop_jobs(self, folder: FolderRef, job_ids: Sequence[int], *, strategy: str) -> None:
        """StopJobs with ``strategy`` "SoftStop" or "Kill" (idempotent)."""
        ...
