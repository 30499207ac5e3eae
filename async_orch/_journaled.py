"""Run a batch under a :class:`~async_orch._job_store.JobStore`, and resume it.

Behind ``OrchestratorClient.run_jobs(..., journal=...)``,
``OrchestratorClient.resume_jobs`` and the CLI's ``dispatch`` (``--journal``,
``--resume``): one path for all three.

Exactly-once across crashes (``_journal.py`` has the theory): every request is
stored with its Reference before anything starts; every job is stored from
the ``on_started`` hook, which runs before any other await. A resume then
reports nothing twice and starts nothing twice:

1. jobs stored and final are left as they are;
2. jobs stored but not final are watched again (re-attached), never started;
   so are jobs a run ended because calls about them were refused (their folder's
   access lost mid-run): it never learnt how they ended;
3. requests with no job stored are looked up by Reference (:func:`reconcile`):
   the process may have died between StartJobs and the store's write. If the
   last run did not end by itself, one of its StartJobs may still be completed
   by the server until the reconcile window has passed since the store was
   taken: those not found are looked up once more after it. Only requests still
   not found are started.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from async_orch._config import Settings
from async_orch._errors import (
    FOLDER_REFUSALS,
    ConfigurationError,
    InvalidRequestError,
    RequestError,
)
from async_orch._job_store import JobStore
from async_orch._jobs import (
    Abandoned,
    JobHandle,
    JobRequest,
    JobResult,
    Outcome,
    checked_requests,
)
from async_orch._journal import (
    ENDED_BY_REFUSAL,
    JobRecord,
    Journal,
    JournalTarget,
    RequestRecord,
    plan_resume,
)
from async_orch._logs import get_logger
from async_orch._models import Job
from async_orch._options import Hooks, StopPolicy
from async_orch._resources import OrchestratorAPI
from async_orch._retries import sort_found_jobs
from async_orch._server_clock import UNKNOWN_OFFSET_MARGIN
from async_orch._starting import batch_references
from async_orch._states import JobState

if TYPE_CHECKING:
    from async_orch._client import OrchestratorClient

__all__ = [
    "JournalArg",
    "ended_by_refusal",
    "reconcile",
    "records_for",
    "refused_result",
    "resume_plan",
    "resume_with_journal",
    "run_stored",
    "run_with_journal",
    "stored_row",
    "target_of",
]

log = get_logger("async_orch.journaled")

#: A journal as the library takes it: a path (the SQLite journal) or a store.
JournalArg = str | os.PathLike[str] | JobStore

#: The request fields a store keeps; a resume starts a request from these alone.
_STORED_FIELDS = frozenset({"process", "folder", "inputs", "reference", "timeout"})


def target_of(settings: Settings) -> JournalTarget:
    """The tenant ``settings`` connect to, as a store names it."""
    where = settings.orchestrator
    return JournalTarget(url=where.base, organization=where.organization, tenant=where.tenant)


def records_for(requests: Sequence[JobRequest], batch_id: str) -> list[RequestRecord]:
    """Store records with every Reference fixed now (the user's or ``ao-<batch>-<i>``).

    Raises InvalidRequestError for a request using a field the store does not
    keep (a resume could not start it the same way).
    """
    requests = checked_requests(requests)
    for position, request in enumerate(requests):
        default = JobRequest(process=request.process, folder=request.folder)
        extra = [
            f.name
            for f in fields(JobRequest)
            if f.name not in _STORED_FIELDS and getattr(request, f.name) != getattr(default, f.name)
        ]
        if extra:
            raise InvalidRequestError(
                f"requests[{position}] sets {', '.join(extra)}, which a journal does not "
                "keep (a resume starts a request from its process, folder, inputs, "
                "reference and timeout); leave it out, or run this request without a journal"
            )
    references = batch_references(requests, prefix=f"ao-{batch_id}")
    return [
        RequestRecord(
            index=index,
            reference=reference,
            folder=str(request.folder),
            process=request.process,
            inputs=dict(request.inputs) if request.inputs is not None else None,
            timeout=request.timeout,
        )
        for index, (request, reference) in enumerate(zip(requests, references, strict=True))
    ]


def _request_of(record: RequestRecord) -> JobRequest:
    return JobRequest(
        process=record.process,
        folder=record.folder,
        inputs=record.inputs,
        reference=record.reference,
        timeout=record.timeout,
    )


def stored_row(record: RequestRecord, result: JobResult) -> dict[str, object]:
    """The row a store keeps for ``result`` of the request ``record``."""
    row = result.to_dict()
    row.update(index=record.index, reference=record.reference, process=record.process)
    if ended_by_refusal(result):
        row[ENDED_BY_REFUSAL] = True  # a resume watches it again (JobRecord.refused)
    return row


def ended_by_refusal(result: JobResult) -> bool:
    """Whether the batch ended ``result``'s job because calls about it were refused
    (its folder's access, or a permission in it, lost mid-run), not because the
    server said it ended: the job was never read, and its outcome is unknown."""
    refusal = isinstance(result.error, FOLDER_REFUSALS)
    return refusal and result.handle is not None and result.job is None


# -- I/O ---------------------------------------------------------------------------------


async def reconcile(
    api: OrchestratorAPI,
    store: JobStore,
    lookup: Sequence[RequestRecord],
    *,
    refused: dict[int, RequestError] | None = None,
    to_server: Callable[[datetime], datetime] = lambda local: local - UNKNOWN_OFFSET_MARGIN,
) -> list[RequestRecord]:
    """Look requests with no stored job up by Reference; store what is found.

    Returns the requests that truly never started (no job of theirs has their
    Reference). A job found by a Reference is adopted only if it can be the
    batch's (:func:`~async_orch._retries.sort_found_jobs`: created after the
    store was, give or take the clock tolerance, when the store says when it
    was created, and of the request's process); a request whose Reference names
    only other jobs is returned too, and its error put in ``refused`` by index.

    The store's creation time is this machine's clock; ``to_server`` (the
    transport's ``ServerClock.earliest_server_time``) puts it on the server's, as
    CreationTime is, with the offset seen by this process when each answer is
    judged: that assumes this machine's clock did not step between the run that
    created the store and this one (the clock tolerance absorbs a small step).
    """
    by_folder: dict[str, list[RequestRecord]] = defaultdict(list)
    for record in lookup:
        by_folder[record.folder].append(record)
    created = _created_at(store)
    found: set[int] = set()
    for folder_ref, records in by_folder.items():
        folder = await api.resolve_folder(folder_ref)
        by_reference = {r.reference: r for r in records}
        jobs_of: dict[str, list[Job]] = defaultdict(list)
        # One call per URL's worth of References (list_jobs splits the list).
        for job in await api.list_jobs(folder, references=list(by_reference)):
            if job.reference in by_reference:
                jobs_of[job.reference].append(job)
        # Converted after the lookup answered: its Date is one more sample.
        not_before = None if created is None else to_server(created)
        for reference, jobs in jobs_of.items():
            match = by_reference[reference]
            release = await api.resolve_release(folder, match.process)  # cached
            sorted_jobs = sort_found_jobs(jobs, not_before=not_before, process=release.name)
            if (refusal := sorted_jobs.refusal(reference, folder.fully_qualified_name)) is not None:
                if refused is not None:
                    refused[match.index] = refusal
                continue
            for job in sorted_jobs.ours:
                handle = JobHandle.of(job, folder, reference=match.reference)
                store.record_started(match.index, handle, state=job.state.value)
            found.add(match.index)
            if refused is not None:
                refused.pop(match.index, None)
    log.info("async_orch.reconciled", looked_up=len(lookup), found=len(found))
    return [r for r in lookup if r.index not in found]


def _created_at(store: JobStore) -> datetime | None:
    """When the store was created (the SQLite journal says; a store of your own may
    have a ``created`` ISO 8601 text), else None: then job times are not checked."""
    created = getattr(store, "created", None)
    if not isinstance(created, str):
        return None
    try:
        when = datetime.fromisoformat(created)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


async def resume_plan(
    api: OrchestratorAPI,
    store: JobStore,
    *,
    window_ends: float,
    say: Callable[[str], None] = lambda _: None,
    name: str = "the journal",
    waiting: Callable[[str | None, float], None] = lambda what, until: None,
    to_server: Callable[[datetime], datetime] = lambda local: local - UNKNOWN_OFFSET_MARGIN,
) -> tuple[list[RequestRecord], list[JobRecord], list[tuple[RequestRecord, RequestError]]]:
    """Sort a store for a resume and look up what has no job (module docstring);
    return the requests to start, the jobs to re-attach to, and the requests
    refused because their Reference names another job (recorded not started in
    the store; never started: the Reference must identify one job).

    Args:
        window_ends: on ``time.monotonic``, when no StartJobs of the last run can
            be completed by the server any more (the reconcile window after the
            store was taken).
        say: told what happens, one line at a time (the CLI prints them).
        waiting: told what the reconcile wait is for and when it ends (on
            ``time.monotonic``) as it begins, then (None, 0) when it is over.
        to_server: this machine's time on the server's clock (the transport's
            ``ServerClock.earliest_server_time``; :func:`reconcile`).
    """
    plan = plan_resume(store.requests(), store.jobs(), path=_path_of(store))
    say(
        f"resuming {name}: {len(plan.finished)} jobs finished, {len(plan.reattach)} to "
        f"re-attach to, {len(plan.lookup)} to look up by Reference"
    )
    refused_errors: dict[int, RequestError] = {}
    never_started = await reconcile(
        api, store, plan.lookup, refused=refused_errors, to_server=to_server
    )
    # Not found by Reference: never posted, or posted and still to be completed by
    # the server (a start in doubt), which only the reconcile window tells apart.
    finished = store.last_run_finished()
    in_doubt = frozenset() if finished else _starts_in_doubt(store)
    doubtful = in_doubt is None or bool(in_doubt & {r.reference for r in never_started})
    if never_started and not finished and not doubtful:
        say(
            f"{len(never_started)} not found by Reference; the last run ended early "
            "with none of their StartJobs in doubt: starting them now"
        )
    if never_started and doubtful:
        wait = window_ends - time.monotonic()
        if wait > 0:
            # A library caller hears nothing from ``say``: the wait is logged too.
            log.info(
                "async_orch.resume_waiting_reconcile_window",
                seconds=round(wait, 1),
                not_found=len(never_started),
            )
            say(
                f"{len(never_started)} not found by Reference; the stopped run may have "
                "sent their StartJobs, which the server can still complete: looking them "
                f"up again in {wait:.0f} s (the reconcile window, "
                "ASYNC_ORCH_RECONCILE_WINDOW) before starting them"
            )
            waiting(
                f"the reconcile window: looking {len(never_started)} requests up by "
                "Reference again before starting them",
                window_ends,
            )
            try:
                await anyio.sleep(wait)
            finally:
                waiting(None, 0.0)
        never_started = await reconcile(
            api, store, never_started, refused=refused_errors, to_server=to_server
        )
    refused = [(r, refused_errors[r.index]) for r in never_started if r.index in refused_errors]
    never_started = [r for r in never_started if r.index not in refused_errors]
    for record, error in refused:
        store.record_not_started(record.index, info=str(error))
    if refused:
        more = f" (and {len(refused) - 1} more like it)" if len(refused) > 1 else ""
        say(f"not starting request {refused[0][0].index}: {refused[0][1]}{more}")
    adopted = len(plan.lookup) - len(never_started) - len(refused)
    plan = plan_resume(store.requests(), store.jobs(), path=_path_of(store))
    refused_text = f", {len(refused)} refused (Reference in use)" if refused else ""
    say(
        f"found {adopted} by Reference{refused_text}; starting {len(never_started)}, "
        f"watching {len(plan.reattach)}"
    )
    store.record_event(
        "resumed",
        found_by_reference=adopted,
        refused=len(refused),
        to_start=len(never_started),
        reattached=len(plan.reattach),
    )
    return never_started, plan.reattach, refused


async def run_stored(
    orch: OrchestratorClient,
    store: JobStore,
    *,
    start: Sequence[RequestRecord],
    reattach: Sequence[JobRecord],
    timeout: float | None = None,
    stop: StopPolicy | None = None,
    hooks: Hooks | None = None,
) -> list[JobResult]:
    """Start ``start``, watch them and ``reattach``, storing everything as it goes.

    Results carry the stored request's index and request (a re-attached job's
    too), in that order. The caller's hooks are called after the store's write.
    A failed write ends the batch and is raised alone (a
    :class:`~async_orch._journal.JournalWriteError` for the SQLite journal).
    """
    hooks = hooks or Hooks()
    # Keyed by handle, not by id: a server that forgot its jobs gives their ids
    # to new ones, and a resume then watches both (the handles' References differ).
    origin: dict[JobHandle, RequestRecord] = {}
    stored = {r.index: r for r in store.requests()}
    for job in reattach:
        origin[job.handle] = stored[job.request_index]
    # A re-attached job's result keeps the attempts its start took (journaled then).
    attempts_of = {j.handle: j.attempts for j in reattach if j.attempts is not None}

    # Once a write has failed the batch is ending because of it: the hooks then
    # write nothing more (it would fail again, and be logged per job).
    def on_attempts(handle: JobHandle, attempts: int) -> None:
        attempts_of[handle] = attempts

    def on_started(index: int, handle: JobHandle) -> None:
        origin[handle] = start[index]
        if store.failure is None:
            store.record_started(
                start[index].index, handle, state=None, attempts=attempts_of.get(handle)
            )
        if hooks.on_started is not None:
            hooks.on_started(start[index].index, handle)

    def on_state(handle: JobHandle, old: JobState | None, new: JobState) -> None:
        if store.failure is None:
            store.record_state(origin[handle].index, handle, new.value)
        if hooks.on_state is not None:
            hooks.on_state(handle, old, new)

    def on_abandoned(abandoned: Abandoned) -> None:
        # The results the stream held unread carry this run's indices, and the
        # journal keeps their jobs unfinished (a resume reads them): not given.
        if hooks.on_abandoned is not None:
            hooks.on_abandoned(replace(abandoned, results=()))

    def on_left(abandoned: Abandoned) -> None:
        # The batch ended early, and no StartJobs of it is in flight any more: the
        # References it names in doubt are the only starts the server may still
        # complete, so a resume waits out the reconcile window only for them.
        if store.failure is None:
            store.record_event(
                "abandoned",
                reason=abandoned.reason,
                stopped=[h.job_id for h in abandoned.stopped],
                left_running=[h.job_id for h in abandoned.left_running],
                ended=[h.job_id for h in abandoned.ended],
                uncertain_references=list(abandoned.uncertain_references),
            )

    results: list[JobResult] = []
    orch.transport.ensure_open()
    try:
        # The dispatcher's own stream (stream_jobs without the default folder:
        # every stored request names its folder), to hear each start's attempts.
        async with orch.dispatcher.stream_results(
            [_request_of(r) for r in start],
            handles=[j.handle for j in reattach],
            timeout=timeout,
            stop=stop,
            hooks=replace(
                hooks,
                on_started=on_started,
                on_state=on_state,
                on_abandoned=on_abandoned if hooks.on_abandoned is not None else None,
            ),
            on_attempts=on_attempts,
            on_left=on_left,
        ) as stream:
            async for result in stream:
                if result.handle in attempts_of and not result.attempts:
                    result = replace(result, attempts=attempts_of[result.handle])
                results.append(_store_result(store, start, origin, result))
    except BaseException:
        # Every start in flight may have failed on it at once (an exception
        # group of many): the store's failure is the one thing to say.
        if store.failure is not None:
            raise store.failure from None
        raise
    results.sort(key=lambda r: (r.index, r.job_id or 0))
    return results


def _store_result(
    store: JobStore,
    start: Sequence[RequestRecord],
    origin: Mapping[JobHandle, RequestRecord],
    result: JobResult,
) -> JobResult:
    """Store ``result``; return it as the stored request's result."""
    if result.handle is None:  # only requests of this run start no job
        record = start[result.index]
        store.record_not_started(
            record.index,
            info=result.info or "not started",
            outcome=result.outcome.value,  # not_started or uncertain
        )
    else:
        record = origin[result.handle]
        job = result.job
        state = job.raw_state if job else (result.state.value if result.state else None)
        store.record_final(
            record.index,
            result.handle,
            outcome=result.outcome.value,
            state=state,
            result=stored_row(record, result),
        )
    return replace(result, index=record.index, request=_request_of(record))


# -- the library's entry points ------------------------------------------------------


async def run_with_journal(
    orch: OrchestratorClient,
    requests: Sequence[JobRequest],
    journal: JournalArg,
    *,
    timeout: float | None,
    stop: StopPolicy | None,
    hooks: Hooks | None,
) -> list[JobResult]:
    """``run_jobs(requests, journal=...)``: a new batch, stored before it starts."""
    batch_id = uuid.uuid4().hex[:10]
    records = records_for(requests, batch_id)  # bad input fails before any I/O
    target = target_of(orch.settings)
    if isinstance(journal, str | os.PathLike):
        with Journal.create(
            Path(journal), target=target, batch_id=batch_id, requests=records
        ) as created:
            return await _run_to_end(orch, created, records, [], timeout, stop, hooks)
    with _only_batch_of(journal):
        journal.target.check_same(target, name=repr(journal))
        journal.record_requests(records)
        return await _run_to_end(orch, journal, records, [], timeout, stop, hooks)


async def resume_with_journal(
    orch: OrchestratorClient,
    journal: JournalArg,
    *,
    timeout: float | None,
    stop: StopPolicy | None,
    hooks: Hooks | None,
) -> list[JobResult]:
    """``resume_jobs(journal)``: finish a stored batch (module docstring)."""
    if isinstance(journal, str | os.PathLike):
        with Journal.open(Path(journal)) as opened:
            return await _resume(orch, opened, time.monotonic(), timeout, stop, hooks)
    with _only_batch_of(journal):
        return await _resume(orch, journal, time.monotonic(), timeout, stop, hooks)


#: The stores a batch of this process is writing (by id: a store need not be hashable).
_STORES_IN_USE: set[int] = set()


@contextmanager
def _only_batch_of(store: JobStore) -> Iterator[None]:
    """Refuse a second batch on a store a batch of this process is writing: two
    resumes of one store would look up the same requests, find nothing, and both
    start them. (The SQLite journal's lock keeps other processes out; a store of
    your own must keep them out itself.)

    Raises:
        ConfigurationError: ``store`` is in use.
    """
    if id(store) in _STORES_IN_USE:
        raise ConfigurationError(
            f"the journal {_path_of(store) or repr(store)} is in use by another batch of "
            "this process (a run_jobs or resume_jobs on it has not ended); only one batch "
            "at a time may write a journal: wait for that one to end"
        )
    _STORES_IN_USE.add(id(store))
    try:
        yield
    finally:
        _STORES_IN_USE.discard(id(store))


async def _resume(
    orch: OrchestratorClient,
    store: JobStore,
    taken_at: float,
    timeout: float | None,
    stop: StopPolicy | None,
    hooks: Hooks | None,
) -> list[JobResult]:
    name = str(_path_of(store) or repr(store))
    store.target.check_same(target_of(orch.settings), name=name)
    settings = orch.settings
    window = settings.retry.window_after(settings.timeout.total)
    start, reattach, refused = await resume_plan(
        orch.api,
        store,
        window_ends=taken_at + window,
        name=name,
        to_server=orch.transport.server_clock.earliest_server_time,
    )
    results = await _run_to_end(orch, store, start, reattach, timeout, stop, hooks)
    results += [refused_result(record, error) for record, error in refused]
    results.sort(key=lambda r: (r.index, r.job_id or 0))
    return results


def _starts_in_doubt(store: JobStore) -> frozenset[str] | None:
    """The References whose StartJobs the server may still complete from a last
    run that did not end by itself (None: it cannot tell, so every request not
    found is waited for): after an early end recorded while its process lived,
    the starts it named in doubt. ``starts_in_doubt`` is the SQLite journal's; a
    store without it is asked only ``last_run_finished``, as before."""
    ask = getattr(store, "starts_in_doubt", None)
    if ask is None:
        return None
    found: frozenset[str] | None = ask()
    return found


def refused_result(record: RequestRecord, error: RequestError) -> JobResult:
    """The result of a stored request a resume did not start (``error`` says why)."""
    return JobResult(
        index=record.index,
        request=_request_of(record),
        outcome=Outcome.NOT_STARTED,
        error=error,
    )


async def _run_to_end(
    orch: OrchestratorClient,
    store: JobStore,
    start: Sequence[RequestRecord],
    reattach: Sequence[JobRecord],
    timeout: float | None,
    stop: StopPolicy | None,
    hooks: Hooks | None,
) -> list[JobResult]:
    results = await run_stored(
        orch, store, start=start, reattach=reattach, timeout=timeout, stop=stop, hooks=hooks
    )
    # Only a run that ended by itself says so: a resume after any other end waits
    # out the reconcile window before starting what it cannot find.
    store.record_event("finished", interrupted=False)
    return results


def _path_of(store: JobStore) -> Path | None:
    path = getattr(store, "path", None)
    return path if isinstance(path, Path) else None
