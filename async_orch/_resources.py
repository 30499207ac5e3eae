"""Typed calls to the Orchestrator endpoints async-orch uses, over a Transport.

One method per operation (spec operationIds in brackets). Folder and process
names are resolved here and cached per client, so a batch of 500 jobs costs
one Folders call and one Releases call per (folder, process).

The folder header is chosen from what is known: a resolved folder's Key (it
is stable, whereas a folder's Id can change after a licence-plan change:
orchestrator-api.md §2, F6), else the Id, else the path (plain when ASCII,
Base64 UTF-16LE otherwise: ``protocol.folder_headers``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio

from async_orch._blobs import BlobAccess
from async_orch._errors import (
    BadRequestError,
    FolderNotFoundError,
    NotFoundError,
    ProcessNotFoundError,
    ResponseDecodeError,
    StartAnswerUnreadableError,
)
from async_orch._fatal import no_api_here
from async_orch._jsonvalues import shown
from async_orch._logs import get_logger
from async_orch._models import (
    CreatedJob,
    Folder,
    Job,
    Release,
    StartRequest,
    StartStrategy,
    created_job_of,
    needs_input_file,
    parse_job_state_rows,
)
from async_orch._protocol import folder_headers, rate_limit_remaining
from async_orch._seams import FolderRef, RangeAnswer, StateRows
from async_orch._states import JobState
from async_orch._transport import Transport
from async_orch._url_lists import (
    PAGE_SIZE,
    ListRoom,
    job_states_query,
    references_query,
    split_ids_to_fit,
    split_to_fit,
)

__all__ = [
    "ASSIGN_FOLDER_FIX",
    "FOLDER_NOT_ACCESSIBLE",
    "STOP_JOBS_CHUNK",
    "FolderRef",
    "OrchestratorAPI",
    "odata_quote",
]

log = get_logger("async_orch.api")

_JOBS = "odata/Jobs"
_START_JOBS = "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
_Row = TypeVar("_Row")  # how a start reads each created job (_start)
_STOP_JOBS = "odata/Jobs/UiPath.Server.Configuration.OData.StopJobs"
_VALIDATE_JOB = "odata/Jobs/UiPath.Server.Configuration.OData.ValidateDynamicJob"
_ATTACHMENTS = "odata/Attachments"
_PAGE = PAGE_SIZE  # the documented maximum $top
#: Job ids per StopJobs call (a JSON body, not a URL). ASSUMPTION: no documented cap
#: (orchestrator-api.md §8: the official SDK sends every id in one call).
STOP_JOBS_CHUNK = 100
#: Orchestrator's errorCode for "Folder does not exist or the user does not have access
#: to the folder" (400; orchestrator-api.md §8): also what an external application
#: gets for a folder it is not assigned to.
FOLDER_NOT_ACCESSIBLE = 1100
ASSIGN_FOLDER_FIX = (
    "if the folder exists, assign the external application (or user) to it in "
    "Orchestrator (the folder's access settings), or use a folder it is assigned to"
)
#: Largest attachment content read into memory. ASSUMPTION: Orchestrator documents
#: no output size limit; past this a download is a per-job error, not a crash.
MAX_ATTACHMENT_BYTES = 64 * 1024 * 1024
#: Attachment transfers at once per client: with the cap, this bounds their memory.
TRANSFER_CONCURRENCY = 4


def odata_quote(value: str) -> str:
    """Quote a string literal for $filter (single quotes doubled, per OData)."""
    return "'" + value.replace("'", "''") + "'"


def _ids_in(ids: Iterable[int]) -> str:
    """The $filter clause ``Id in (1,2,3)``."""
    return "Id in (" + ",".join(str(int(i)) for i in ids) + ")"


# The states a job has not ended in, as the Jobs list's State filter names them
# (the OpenAPI description's JobState enum, less Successful, Faulted and Stopped).
# A state added to the service later would be missing here: such a job looks
# ended to a range query and is read by id, which finds it unfinished; the planner
# then reads it by id at its own pace (_planner._RANGE_LISTED: keep them alike).
_UNFINISHED_STATES = ("Pending", "Running", "Stopping", "Terminating", "Suspended", "Resumed")
_FINAL_STATES = ("Successful", "Faulted", "Stopped")


def _in_range_with_state(low: int, high: int, also: Sequence[int], states: Sequence[str]) -> str:
    """The $filter clause for the jobs of an id range (and of ``also``) in one of
    ``states``."""
    wanted = " or ".join(f"State eq '{state}'" for state in states)
    ids = f"Id ge {int(low)} and Id le {int(high)}"
    if also:
        ids = f"{_ids_in(also)} or ({ids})"
    return f"({ids}) and ({wanted})"


def _is_guid(text: str) -> bool:
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(
        c in "0123456789abcdefABCDEF" for p in parts for c in p
    )


def closest_first(name: str, names: Iterable[str]) -> list[str]:
    """Every name, the ones most like ``name`` first (a typo's fix leads the list)."""
    pool = sorted(set(names))
    close = difflib.get_close_matches(name, pool, n=5, cutoff=0.5)
    return close + [n for n in pool if n not in close]


def _note_skipped(skipped: int, rows: int) -> None:
    """One line for the rows of a list answer that could not be read (their jobs
    are read by id instead). Only counts: a row may hold job data."""
    if skipped:
        log.info("async_orch.job_rows_skipped", skipped=skipped, rows=rows)


def _values(body: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise ResponseDecodeError(f"expected an OData list of {what}, got {str(body)[:200]!r}")
    rows: list[dict[str, Any]] = body["value"]
    return rows


def _page_was_cut(body: dict[str, Any], rows: int) -> bool:
    """Whether a list answer (its parsed ``body``) of ``rows`` rows says more rows match: an
    ``@odata.nextLink`` (OData v4 server-driven paging), or an ``@odata.count``
    above the rows. orchestrator-api.md §3 gives ``$top``'s maximum (1,000) and
    ``@odata.count`` (with ``$count=true``), and says nothing of a page cap below
    ``$top`` on Jobs or of nextLink (QueueItems refuses ``$top`` over 100 with a
    400, §4): that Jobs may cut a page and say so this way is an assumption, the
    OData v4 convention."""
    count = body.get("@odata.count")
    counted = isinstance(count, int) and not isinstance(count, bool) and count > rows
    return body.get("@odata.nextLink") is not None or counted


class OrchestratorAPI:
    """Typed resource calls (folders, releases, jobs, attachments): the type of
    [`OrchestratorClient.api`][async_orch.OrchestratorClient], for calls the batch
    functions do not cover, e.g. ``await orch.api.get_job(folder_id, job_id)``.

    Every call raises the error tree's errors ([`OrchestratorError`][async_orch.OrchestratorError]).
    The client builds it on its transport; there is no need to build one yourself.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        max_attachment_bytes: int = MAX_ATTACHMENT_BYTES,
        transfer_concurrency: int = TRANSFER_CONCURRENCY,
    ) -> None:
        self._transport = transport
        self.max_attachment_bytes = max_attachment_bytes
        # Told X-RateLimit-Remaining of every GET Jobs answer (None: the header was
        # absent): the client's list budget slows down when the tenant runs low.
        self.on_list_answer: Callable[[int | None], None] | None = None
        self._transfers = anyio.Semaphore(max(1, transfer_concurrency))
        # (folder Id, SHA-256 of the inputs) -> attachment Id: a StartJobs sent
        # again (after an unclear answer) reuses the upload.
        self._uploads: dict[tuple[int, str], str] = {}
        self._folders: list[Folder] | None = None
        self._folders_lock = anyio.Lock()
        # Every request resolves its folder: remember each answer (until a refresh).
        self._resolved: dict[int | str, Folder] = {}
        self._releases: dict[tuple[int, str], Release] = {}
        self._release_locks: dict[tuple[int, str], anyio.Lock] = {}

    # -- Folders [Folders_Get] -------------------------------------------------

    async def list_folders(self, *, refresh: bool = False) -> list[Folder]:
        """Every folder these credentials can see (cached after the first call)."""
        async with self._folders_lock:
            if self._folders is None or refresh:
                # Forgotten first, so lookups meanwhile wait here for the new list.
                self._resolved.clear()
                try:
                    rows = await self._get_all("odata/Folders", endpoint="GET Folders", headers={})
                except NotFoundError as exc:  # the API root itself is missing
                    raise no_api_here(exc) from exc
                self._folders = [Folder.from_api(row) for row in rows]
            return list(self._folders)

    def _known_folder(self, ref: FolderRef) -> Folder | None:
        """The folder ``ref`` names if known without a request (a Folder, or one
        resolved before), else None. Not a coroutine: the hot calls (a start, a
        read) try it before awaiting :meth:`resolve_folder`."""
        return ref if isinstance(ref, Folder) else self._resolved.get(ref)

    async def resolve_folder(self, ref: FolderRef) -> Folder:
        """Find a folder by Id, Key or full path; raise FolderNotFoundError otherwise."""
        resolved = self._known_folder(ref)
        if resolved is not None:
            return resolved
        assert not isinstance(ref, Folder)  # (_known_folder returns one as is)
        folders = await self.list_folders()
        found = _match_folder(folders, ref)
        if found is None:
            # A folder created after the cache was filled: look once more.
            folders = await self.list_folders(refresh=True)
            found = _match_folder(folders, ref)
        if found is not None:
            self._resolved[ref] = found
            return found
        close = closest_first(str(ref), [f.fully_qualified_name for f in folders])
        named = shown(ref) if isinstance(ref, str) else repr(ref)  # a long path is cut short
        raise FolderNotFoundError(
            f"folder {named} not found, or these credentials cannot see it: give its full "
            f"path with '/' between levels, its Key or its Id; {ASSIGN_FOLDER_FIX}",
            name=str(ref),
            candidates=close,
        )

    def _folder_refused(self, folder: Folder, error: BadRequestError) -> FolderNotFoundError:
        """The error for a folder Orchestrator refused with errorCode 1100."""
        # It may have been removed or unassigned since the folder list was read.
        self._folders = None
        self._resolved = {k: v for k, v in self._resolved.items() if v.id != folder.id}
        name = folder.fully_qualified_name
        return FolderNotFoundError(
            f"folder {name!r} (Id {folder.id}): Orchestrator answered errorCode 1100, "
            f"{error.message!r}; {ASSIGN_FOLDER_FIX}",
            name=name,
        )

    # -- Releases (processes) [Releases_Get] ------------------------------------

    async def resolve_release(self, folder: FolderRef, process: str) -> Release:
        """Find a process (release) in a folder by name, Key or ProcessKey (cached)."""
        resolved = await self.resolve_folder(folder)
        cache_key = (resolved.id, process)
        lock = self._release_locks.setdefault(cache_key, anyio.Lock())
        async with lock:
            cached = self._releases.get(cache_key)
            if cached is not None:
                return cached
            release = await self._find_release(resolved, process)
            self._releases[cache_key] = release
            return release

    async def _find_release(self, folder: Folder, process: str) -> Release:
        field = "Key" if _is_guid(process) else "Name"
        for filter_field in (field, "ProcessKey"):
            try:
                rows = await self._get_all(
                    "odata/Releases",
                    endpoint="GET Releases",
                    headers=self.folder_headers(folder),
                    params={"$filter": f"{filter_field} eq {odata_quote(process)}"},
                )
            except BadRequestError as exc:
                if exc.error_code != FOLDER_NOT_ACCESSIBLE:
                    raise
                raise self._folder_refused(folder, exc) from exc
            if rows:
                return Release.from_api(rows[0])
        rows = await self._get_all(
            "odata/Releases",
            endpoint="GET Releases",
            headers=self.folder_headers(folder),
            params={"$select": "Name"},
        )
        names = sorted({str(r.get("Name")) for r in rows})
        close = closest_first(process, names)
        raise ProcessNotFoundError(
            f"process {process!r} not found in folder {folder.fully_qualified_name!r} "
            "(use the process name shown in Orchestrator's Processes page of that folder)",
            name=process,
            candidates=close,
        )

    # -- Jobs ----------------------------------------------------------------

    async def start_jobs(self, folder: FolderRef, request: StartRequest) -> list[Job]:
        """Start jobs [Jobs_StartJobs]: one POST, never retried here.

        Raises ``TransportError`` with ``may_have_reached_server`` or an ``APIError``;
        whether and when to post again is :class:`~async_orch._retries.StartProtocol`'s
        decision (after an ambiguous failure it looks the jobs up by Reference first).
        ``StartAnswerUnreadableError``: a success status whose answer could not be read.
        """
        return await self._start(folder, request, Job.from_api)

    async def create_jobs(self, folder: FolderRef, request: StartRequest) -> list[CreatedJob | Job]:
        """:meth:`start_jobs`, reading of each created job only what a start needs
        (:func:`~async_orch._models.created_job_of`): what a batch calls."""
        return await self._start(folder, request, created_job_of)

    async def _start(
        self, folder: FolderRef, request: StartRequest, read: Callable[[dict[str, Any]], _Row]
    ) -> list[_Row]:
        """:meth:`start_jobs`, each created job's row read by ``read``."""
        resolved = self._known_folder(folder) or await self.resolve_folder(folder)
        body = request.to_api()
        info = body["startInfo"]
        if (text := _take_long_inputs(info)) is not None:
            # Upload them and send InputFile, as the official SDK does
            # (orchestrator-api.md §8).
            info["InputFile"] = await self._input_file(resolved, text)
        try:  # as _access_lost_as_not_found, without a generator a start
            response = await self._transport.request(
                "POST",
                _START_JOBS,
                json=body,
                headers=self.folder_headers(resolved),
                idempotent=False,
                endpoint="POST StartJobs",
                attempts=1,
            )
        except BadRequestError as exc:
            lost = _access_lost(resolved, exc, starting=True)
            if lost is None:
                raise
            raise lost from exc
        try:
            rows = [read(row) for row in _values(response.json(), "jobs")]
        except ResponseDecodeError as exc:
            # The jobs exist (a success status): only their Reference can name them.
            raise StartAnswerUnreadableError(
                f"StartJobs answered {response.status} but its answer could not be read "
                f"({exc}): the jobs it created are looked up by their Reference"
            ) from exc
        if not rows and request.strategy is not StartStrategy.ALL:
            # Every other strategy creates at least one job or refuses (an assumption:
            # orchestrator-api.md documents no empty success for them; All may find
            # no robot). A success listing none left its jobs out: only their
            # Reference can name them.
            raise StartAnswerUnreadableError(
                f"StartJobs answered {response.status} with no job for strategy "
                f"{request.strategy}: the jobs it created are looked up by their Reference"
            )
        return rows

    async def validate_start(self, folder: FolderRef, request: StartRequest) -> dict[str, Any]:
        """Whether ``request`` could start now [Jobs_ValidateDynamicJob]: the
        ``ValidationResultDto`` (IsValid, Errors, ErrorCodes). Nothing is started, so
        it may be retried. Inputs over 10,000 characters are left out: validating
        must not upload an attachment.
        """
        resolved = await self.resolve_folder(folder)
        body = request.to_api()
        _take_long_inputs(body["startInfo"])
        response = await self._transport.request(
            "POST",
            _VALIDATE_JOB,
            json=body,
            headers=self.folder_headers(resolved),
            idempotent=True,
            endpoint="POST ValidateDynamicJob",
        )
        answer = response.json()
        if not isinstance(answer, dict) or not isinstance(answer.get("IsValid"), bool):
            raise ResponseDecodeError(f"expected a ValidationResultDto, got {str(answer)[:200]!r}")
        return answer

    # -- Attachments [Attachments_Post, Attachments_GetById] ----------------------

    async def upload_attachment(self, folder: FolderRef, name: str, content: bytes) -> str:
        """Create an attachment and PUT ``content`` to its blob; return its Id.

        Needs the OR.Folders or OR.Folders.Write scope (spec: Attachments_Post).
        """
        resolved = await self.resolve_folder(folder)
        async with self._transfers:
            response = await self._transport.request(
                "POST",
                _ATTACHMENTS,
                json={"Name": name},
                headers=self.folder_headers(resolved),
                # A repeat only leaves an unused attachment behind: safe to retry.
                idempotent=True,
                endpoint="POST Attachments",
            )
            body = response.json()
            access = BlobAccess.from_api(body)
            attachment_id = body.get("Id")
            if not isinstance(attachment_id, str):
                raise ResponseDecodeError(f"attachment without an Id: {str(body)[:200]!r}")
            await self._transport.blob(
                access.verb or "PUT", access, body=content, max_bytes=64 * 1024, endpoint="PUT blob"
            )
        return attachment_id

    async def download_attachment(self, folder: FolderRef, key: str) -> bytes:
        """An attachment's content (at most ``max_attachment_bytes``)."""
        resolved = await self.resolve_folder(folder)
        async with self._transfers:
            response = await self._transport.request(
                "GET",
                f"{_ATTACHMENTS}({key})",
                headers=self.folder_headers(resolved),
                endpoint="GET Attachments({key})",
            )
            access = BlobAccess.from_api(response.json())
            return await self._transport.blob(
                "GET", access, max_bytes=self.max_attachment_bytes, endpoint="GET blob"
            )

    async def with_outputs(self, folder: FolderRef, job: Job) -> Job:
        """``job`` with its outputs read from its OutputFile when they came as one.

        Raises:
            OrchestratorError: the attachment could not be read or is not JSON text.
        """
        if job.output_file is None or job.output_arguments_raw is not None:
            return job
        if job.output_arguments is not None:
            return job
        content = await self.download_attachment(folder, job.output_file)
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ResponseDecodeError(f"the OutputFile is not UTF-8 text: {exc}") from None
        parsed = Job.from_api({"Id": job.id, "State": job.raw_state, "OutputArguments": text})
        if parsed.output_arguments is None:
            raise ResponseDecodeError(
                f"the OutputFile is not the JSON text of an object: {text[:80]!r}"
            )
        return dataclasses.replace(job, output_arguments=parsed.output_arguments)

    async def _input_file(self, folder: Folder, text: str) -> str:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        known = self._uploads.get((folder.id, digest))
        if known is None:
            known = await self.upload_attachment(
                folder, f"InputArguments-{digest[:16]}.json", text.encode("utf-8")
            )
            self._uploads[(folder.id, digest)] = known
        return known

    async def get_job(self, folder: FolderRef, job_id: int) -> Job:
        """One job with its Input/OutputArguments [Jobs_GetById] (not rate limited)."""
        return await self._get_job(folder, f"{_JOBS}({int(job_id)})", "GET Jobs({id})")

    async def get_job_by_key(self, folder: FolderRef, key: str) -> Job:
        """One job by its Key (GUID). The route is undocumented in the v20 spec but
        is what the official SDK uses (orchestrator-api.md §3.4)."""
        path = f"{_JOBS}/UiPath.Server.Configuration.OData.GetByKey(identifier={key})"
        return await self._get_job(folder, path, "GET Jobs/GetByKey")

    async def _get_job(self, folder: FolderRef, path: str, endpoint: str) -> Job:
        resolved = self._known_folder(folder) or await self.resolve_folder(folder)
        response = await self._transport.request(
            "GET", path, headers=self.folder_headers(resolved), endpoint=endpoint
        )
        body = response.json()
        if not isinstance(body, dict):
            raise ResponseDecodeError(f"expected a job, got {str(body)[:200]!r}")
        return Job.from_api(body)

    async def list_jobs(
        self,
        folder: FolderRef,
        *,
        ids: Sequence[int] | None = None,
        references: Sequence[str] | None = None,
        reference: str | None = None,
        states: Iterable[str] | None = None,
        filter: str | None = None,
        select: Sequence[str] | None = None,
        top: int | None = None,
    ) -> list[Job]:
        """Jobs of a folder [Jobs_Get]. This endpoint is rate limited per tenant
        (100/min for scripts): batch ids with ``ids=`` (or References with
        ``references=``) rather than calling per job. A long list is split over
        as many calls as its encoded URL length needs (:mod:`async_orch._url_lists`).

        The list returns InputArguments/OutputArguments as null; use get_job for them.
        """
        if ids is not None and references is not None:
            raise ValueError("list_jobs takes ids or references, not both")
        listed: tuple[str, list[str]] | None = None
        if ids is not None:
            listed = ("Id", [str(int(i)) for i in ids])
        elif references is not None:
            listed = ("Reference", [odata_quote(r) for r in references])
        if listed is not None and not listed[1]:
            return []
        resolved = await self.resolve_folder(folder)
        clauses = []
        if reference is not None:
            clauses.append(f"Reference eq {odata_quote(reference)}")
        if states is not None:
            clauses.append("State in (" + ",".join(odata_quote(s) for s in states) + ")")
        if filter:
            clauses.append(f"({filter})")

        def params_for(literals: Sequence[str]) -> dict[str, str]:
            in_list = [] if listed is None else [f"{listed[0]} in ({','.join(literals)})"]
            params = {"$filter": " and ".join(in_list + clauses)} if in_list + clauses else {}
            if select:
                params["$select"] = ",".join(select)
            return params

        rows: list[dict[str, Any]] = []
        runs = [[]] if listed is None else split_to_fit(listed[1], str, _room_of(params_for))
        for run in runs:
            rows += await self._get_all(
                _JOBS,
                endpoint="GET Jobs",
                headers=self.folder_headers(resolved),
                params=params_for(run),
                limit=None if top is None else top - len(rows),
            )
            if top is not None and len(rows) >= top:
                break
        return [Job.from_api(row) for row in rows]

    async def jobs_by_reference(self, folder: FolderRef, references: Sequence[str]) -> list[Job]:
        """The jobs of a folder with any of ``references`` [Jobs_Get], in one list
        call (``Reference in (...)``, orchestrator-api.md §3.4), tried once: the
        caller owns retries and charges the call to its list budget, so it sizes
        ``references`` to fit one call (``ListRoom.of(references_query)``); a
        longer list would be split.
        """
        if not references:
            return []
        resolved = await self.resolve_folder(folder)
        rows: list[dict[str, Any]] = []
        literals = [odata_quote(r) for r in references]
        for run in split_to_fit(literals, str, _room_of(references_query)):
            rows += await self._get_all(
                _JOBS,
                endpoint="GET Jobs",
                headers=self.folder_headers(resolved),
                params=references_query(run),
                attempts=1,
            )
        return [Job.from_api(row) for row in rows]

    async def job_states(self, folder: FolderRef, ids: Sequence[int]) -> dict[int, JobState]:
        """The State of each job of ``ids`` that the list returns [Jobs_Get].

        One ``$filter=Id in (...)`` call asking only for Id and State: the cheap
        way to watch many jobs of one folder (rate limited like list_jobs), tried
        once: the caller owns retries and charges each to its list budget. The
        poll planner sizes ``ids`` to fit one call (``ListRoom.of(job_states_query)``); a
        longer list would be split. Jobs the list does not return are missing
        from the result, and so are those whose row cannot be read (no integer Id,
        a null State...): one bad row does not void the answer about the others.
        """
        if not ids:
            return {}
        resolved = await self.resolve_folder(folder)
        states: dict[int, JobState] = {}
        numbers = [int(i) for i in ids]
        with _access_lost_as_not_found(resolved):
            for run in split_ids_to_fit(numbers, _room_of(job_states_query)):
                rows = await self._get_all(
                    _JOBS,
                    endpoint="GET Jobs",
                    headers=self.folder_headers(resolved),
                    params=job_states_query([str(i) for i in run]),
                    attempts=1,  # the poller owns retries: each one is charged to its budget
                )
                parsed, skipped, _ = parse_job_state_rows(rows)
                states.update(parsed)
                _note_skipped(skipped, len(rows))
        return states

    async def ended_jobs(
        self, folder: FolderRef, low: int, high: int, *, top: int, also: Sequence[int] = ()
    ) -> StateRows:
        """Id and State of the folder's jobs with ``low <= Id <= high`` (or an Id
        in ``also``) in a final state, ordered by Id, at most ``top`` rows: one
        page of one list call [Jobs_Get] (rate limited like list_jobs)."""
        return (await self._jobs_in_range(folder, low, high, top, also, _FINAL_STATES)).rows

    async def unfinished_jobs(
        self, folder: FolderRef, low: int, high: int, *, top: int, also: Sequence[int] = ()
    ) -> RangeAnswer:
        """Id and State of the folder's jobs with ``low <= Id <= high`` (or an Id
        in ``also``) that have not ended, ordered by Id, at most ``top`` rows: one
        page of one list call [Jobs_Get] (rate limited like list_jobs).

        However many jobs of the range ended, they take no rows: a job missing
        from a page that is not full (or below a full page's last Id) has ended,
        so one call settles any number of ended jobs; this is how the poller
        watches a big batch. A row that cannot be read is left out, as in
        :meth:`job_states`; the Ids of such rows are ``unreadable`` (their jobs were
        listed, so they did not end). ``cut``: the server said more rows match
        than the page holds (see :func:`_page_was_cut`).
        """
        return await self._jobs_in_range(folder, low, high, top, also, _UNFINISHED_STATES)

    async def _jobs_in_range(
        self,
        folder: FolderRef,
        low: int,
        high: int,
        top: int,
        also: Sequence[int],
        states: Sequence[str],
    ) -> RangeAnswer:
        """One page of the jobs of an id range in ``states``. UiPath's examples on
        Jobs show ``ge`` comparisons joined by ``and``, ``State eq 'Successful'``,
        ``$orderby`` and ``$top`` up to 1,000 (orchestrator-api.md §3.4, the OpenAPI
        description of Jobs_Get). ``or`` between ``State eq`` terms is plain OData
        v4, which the ASP.NET OData stack behind Orchestrator parses (§8), but it is
        not seen verbatim in UiPath's examples: an assumption, kept to operators
        the stock parser has (no ``in`` on an enum, no ``not``)."""
        resolved = await self.resolve_folder(folder)
        with _access_lost_as_not_found(resolved):
            response = await self._transport.request(
                "GET",
                _JOBS,
                params={
                    "$filter": _in_range_with_state(low, high, also, states),
                    "$select": "Id,State",
                    "$orderby": "Id asc",
                    "$top": str(top),
                },
                headers=self.folder_headers(resolved),
                endpoint="GET Jobs",
                attempts=1,  # the poller owns retries: each one is charged to its list budget
            )
        if self.on_list_answer is not None:
            self.on_list_answer(rate_limit_remaining(response.headers))
        body = response.json()
        values = _values(body, "GET Jobs")
        rows, skipped, unread = parse_job_state_rows(values)
        _note_skipped(skipped, len(values))
        rows.sort()  # ordered by the server already; cheap insurance for the page cursor
        cut = _page_was_cut(body, len(values))
        return RangeAnswer(rows, cut=cut, received=len(values), unreadable=tuple(unread))

    async def stop_jobs(
        self, folder: FolderRef, job_ids: Sequence[int], *, strategy: str = "SoftStop"
    ) -> None:
        """Stop jobs [Jobs_StopJobs]: SoftStop asks the workflow to stop, Kill ends it.

        Stopping is idempotent (a stopped job stays stopped), so it may be retried.
        """
        if strategy not in ("SoftStop", "Kill"):
            raise ValueError("strategy must be 'SoftStop' or 'Kill'")
        if not job_ids:
            return
        resolved = await self.resolve_folder(folder)
        await self._transport.request(
            "POST",
            _STOP_JOBS,
            json={"jobIds": [int(i) for i in job_ids], "strategy": strategy},
            headers=self.folder_headers(resolved),
            idempotent=True,
            endpoint="POST StopJobs",
        )

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def folder_headers(folder: Folder) -> dict[str, str]:
        """The folder header for a resolved folder: Key, which survives Id changes."""
        return dict(_resolved_folder_header(folder.key or folder.id))

    async def _get_all(
        self,
        path: str,
        *,
        endpoint: str,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        limit: int | None = None,
        attempts: int | None = None,
    ) -> list[dict[str, Any]]:
        """GET an OData list, following $skip pages of the documented maximum size."""
        rows: list[dict[str, Any]] = []
        while True:
            want = _PAGE if limit is None else min(_PAGE, limit - len(rows))
            page_params = dict(params or {})
            page_params["$top"] = str(want)
            if rows:
                page_params["$skip"] = str(len(rows))
            response = await self._transport.request(
                "GET",
                path,
                params=page_params,
                headers=headers,
                endpoint=endpoint,
                attempts=attempts,
            )
            if self.on_list_answer is not None and endpoint == "GET Jobs":
                self.on_list_answer(rate_limit_remaining(response.headers))
            page = _values(response.json(), endpoint)
            rows.extend(page)
            if len(page) < want or (limit is not None and len(rows) >= limit):
                return rows


def _take_long_inputs(info: dict[str, Any]) -> str | None:
    """Take InputArguments over 10,000 UTF-16 units out of a ``startInfo`` and
    return them (None: none, or short enough to send inline)."""
    text = info.get("InputArguments")
    if text is None or not needs_input_file(text):
        return None
    del info["InputArguments"]
    return str(text)


@contextmanager
def _access_lost_as_not_found(folder: Folder) -> Iterator[None]:
    """A call about the jobs of ``folder`` that answers errorCode 1100 raises
    :func:`_access_lost`'s error."""
    try:
        yield
    except BadRequestError as exc:
        lost = _access_lost(folder, exc)
        if lost is None:
            raise
        raise lost from exc


def _access_lost(
    folder: Folder, exc: BadRequestError, *, starting: bool = False
) -> FolderNotFoundError | None:
    """The error for a call about the jobs of ``folder`` that answered errorCode 1100,
    the folder having been readable before (the application was unassigned from it,
    or it was removed): a FolderNotFoundError naming it and the fix (``starting``: for
    StartJobs, whose 400 is a refusal, so nothing was started). None for another
    400. The folder stays cached, so each call asks again and the access may come
    back."""
    if exc.error_code != FOLDER_NOT_ACCESSIBLE:
        return None
    name = folder.fully_qualified_name
    what, then = (
        ("cannot start in", "nothing was started")
        if starting
        else (
            "can no longer read",
            "its jobs may still be running, their outcome unknown here (a "
            "journaled batch cut short by this is finished by a resume, "
            "resume_jobs or async-orch dispatch --resume, once the access is back)",
        )
    )
    return FolderNotFoundError(
        f"{what} folder {name!r}: Orchestrator answers errorCode 1100 "
        f"({exc.message}); {ASSIGN_FOLDER_FIX}; {then}",
        name=name,
    )


@functools.lru_cache(maxsize=256)
def _resolved_folder_header(folder: int | str) -> dict[str, str]:
    """``folder_headers`` of a resolved folder's Key or Id, worked out once per
    folder (two requests a job ask for it; callers get a copy)."""
    return folder_headers(folder)


def _match_folder(folders: list[Folder], ref: int | str) -> Folder | None:
    if isinstance(ref, int):
        return next((f for f in folders if f.id == ref), None)
    text = ref.strip().strip("/")
    if text.isdigit():
        by_id = next((f for f in folders if f.id == int(text)), None)
        if by_id is not None:
            return by_id
    if _is_guid(text):
        return next((f for f in folders if (f.key or "").lower() == text.lower()), None)
    exact = [f for f in folders if f.fully_qualified_name == text]
    if exact:
        return exact[0]
    # A unique case-insensitive match is accepted as a convenience (whether
    # Orchestrator itself compares folder names case-insensitively is UNCONFIRMED).
    folded = [f for f in folders if f.fully_qualified_name.casefold() == text.casefold()]
    return folded[0] if len(folded) == 1 else None


def _room_of(query: Callable[[Sequence[str]], Mapping[str, str]]) -> Callable[[], ListRoom]:
    """Fresh rooms for the calls whose query ``query`` builds from a list."""
    return lambda: ListRoom.of(query)
