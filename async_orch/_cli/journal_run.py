"""Run a batch under a journal: fresh dispatches and resumes share this code.

A run is: requests to start (each with its Reference already fixed and
journaled), jobs to re-attach to (started by an earlier run), and the journal
that hears of every job as it starts and ends. Ctrl-C (SIGINT) or SIGTERM ends
the run early: the jobs are stopped or left running (``--on-interrupt``), the
journal is brought up to date, and the caller writes what is known.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import anyio

from async_orch._cli.output import COLUMNS, result_row
from async_orch._client import OrchestratorClient
from async_orch._errors import ConfigurationError, OrchestratorError
from async_orch._jobs import (
    Abandoned,
    JobRequest,
    JobResult,
    Outcome,
    Summary,
    count_jobs,
    iso_text,
)
from async_orch._journal import JobRecord, Journal, RequestRecord
from async_orch._journaled import run_stored, stored_row
from async_orch._logs import get_logger
from async_orch._models import Job
from async_orch._options import Hooks, ProgressCallback, StopPolicy
from async_orch._poller import identity_change

__all__ = [
    "RunOptions",
    "default_journal_path",
    "exit_code",
    "job_row",
    "journal_rows",
    "refresh_unfinished",
    "run_journaled",
]

log = get_logger("async_orch.cli.journal_run")

#: Seconds allowed, after an interrupt, to read the last states of unfinished jobs.
REFRESH_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """How a journaled run behaves (the ``running`` flags of dispatch)."""

    timeout: float | None = None
    stop_on_timeout: bool = False
    stop_grace: float = 30.0
    pending_timeout: float | None = None
    stop_on_interrupt: bool = False
    on_suspended: Literal["timeout", "report", "wait"] = "timeout"


# -- pure helpers ------------------------------------------------------------------


def default_journal_path(
    environ: Mapping[str, str], home: Path, *, batch_id: str, now: datetime
) -> Path:
    """$ASYNC_ORCH_JOURNAL_DIR, else $XDG_STATE_HOME/async-orch/journals (~/.local/state)."""
    if environ.get("ASYNC_ORCH_JOURNAL_DIR"):
        folder = Path(environ["ASYNC_ORCH_JOURNAL_DIR"])
    else:
        state = environ.get("XDG_STATE_HOME") or str(home / ".local" / "state")
        folder = Path(state) / "async-orch" / "journals"
    return folder / f"{now:%Y%m%d-%H%M%S}-{batch_id}.sqlite"


#: The journal event of a dispatch --simulator: its server ended with that command.
EMBEDDED_SIMULATOR_EVENT = "embedded_simulator"


def refuse_embedded_simulator_journal(journal: Journal, what: str) -> None:
    """Refuse to ``what`` (resume, refresh, stop) the jobs of a journal whose
    dispatch ran on an embedded simulator: that server, and its jobs, are gone."""
    if any(event["kind"] == EMBEDDED_SIMULATOR_EVENT for event in journal.events()):
        raise ConfigurationError(
            f"cannot {what} the jobs of {journal.path}: it was made by dispatch --simulator, "
            "whose embedded simulator ended with that command, and its jobs with it; for "
            "flows that outlive one command (journal, resume, jobs, stop), start "
            "`async-orch simulator` in another terminal, paste the export UIPATH_... lines "
            "it prints, and dispatch without --simulator"
        )


def journal_rows(journal: Journal) -> list[dict[str, Any]]:
    """One result row per job (or per request that started none), in request order.

    Jobs not final yet get outcome ``unfinished`` and their last known state.
    """
    jobs_of: dict[int, list[JobRecord]] = defaultdict(list)
    for job in journal.jobs():
        jobs_of[job.request_index].append(job)
    rows: list[dict[str, Any]] = []
    for request in journal.requests():
        base = {
            "index": request.index,
            "reference": request.reference,
            "folder": request.folder,
            "process": request.process,
        }
        if not jobs_of[request.index]:
            rows.append(
                {
                    **base,
                    "job_id": None,
                    "outcome": request.outcome or "unfinished",
                    "state": None,
                    "info": request.info,
                    "outputs": None,
                }
            )
        for job in jobs_of[request.index]:
            if job.result is not None:
                # The folder as resolved (its full path), not as the request named it
                # (an Id or a Key, say); a row of an older journal may lack it.
                folder = job.result.get("folder") or job.handle.folder_path or request.folder
                rows.append({**job.result, **base, "folder": folder})
            else:
                rows.append(
                    {
                        **base,
                        "folder": job.handle.folder_path or request.folder,
                        "job_id": job.job_id,
                        "job_key": job.handle.job_key,
                        "outcome": "unfinished",
                        "state": job.state,
                        "info": None,
                        "outputs": None,
                        "attempts": job.attempts,
                        "stop_sent": job.stop_sent,
                    }
                )
    return [{column: row.get(column) for column in COLUMNS} for row in rows]


def summary_of(rows: Sequence[Mapping[str, Any]]) -> Summary:
    """The :class:`Summary` of result rows: counts by outcome, and the jobs asked to
    stop that finished anyway (told apart from those that stopped)."""
    counts = Counter(str(r.get("outcome")) for r in rows)
    despite = sum(
        1
        for r in rows
        if r.get("stop_sent") and r.get("outcome") in (Outcome.SUCCESSFUL, Outcome.FAULTED)
    )
    return Summary(total=len(rows), by_outcome=dict(counts), finished_despite_stop=despite)


def exit_code(rows: Sequence[Mapping[str, Any]]) -> int:
    """0 when every job succeeded, else 1 (faulted, stopped, timed out, unfinished)."""
    return 0 if rows and all(r.get("outcome") == Outcome.SUCCESSFUL.value for r in rows) else 1


def job_row(index: int, job: Job, *, folder: str) -> dict[str, Any]:
    """A result row for a job read from Orchestrator (``unfinished`` while it runs)."""
    outcome = Outcome.of_final(job.state)
    result = JobResult(index=index, request=None, outcome=outcome or Outcome.UNKNOWN, job=job)
    row = result_row(result)
    row.update(
        folder=job.folder_name or folder,
        job_id=job.id,
        job_key=job.key,
        reference=job.reference,
        outcome=outcome.value if outcome else "unfinished",
    )
    return row


# -- I/O ---------------------------------------------------------------------------


class _Interrupts:
    """Turns the first SIGINT/SIGTERM into a cancellation of the run; a second one
    exits at once (the journal already holds everything committed so far)."""

    def __init__(self, stream: TextIO, *, stop: bool) -> None:
        self.interrupted = False
        self.scope = anyio.CancelScope()
        self._stream = stream
        self._stop = stop

    async def watch(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                if self.interrupted:
                    self._stream.write("interrupted again: exiting now\n")
                    self._stream.flush()
                    sys.stdout.flush()
                    os._exit(130)
                self.interrupted = True
                what = (
                    "stopping the jobs started (Ctrl-C again to exit at once)"
                    if self._stop
                    else "leaving the jobs started running"
                )
                self._stream.write(f"\ninterrupted: {what}\n")
                self._stream.flush()
                self.scope.cancel()


async def run_journaled(
    orch: OrchestratorClient,
    journal: Journal,
    *,
    start: Sequence[RequestRecord],
    reattach: Sequence[JobRecord],
    options: RunOptions,
    on_progress: ProgressCallback | None,
    stream: TextIO,
) -> bool:
    """Start ``start``, watch them and ``reattach``, journaling as it goes (the
    library's ``run_stored``), until done or interrupted.

    Returns True if the run was interrupted (the journal is up to date either way).
    """
    interrupts = _Interrupts(stream, stop=options.stop_on_interrupt)

    def on_abandoned(abandoned: Abandoned) -> None:
        if journal.failure is None:
            _report_abandoned(journal, abandoned, stream, interrupted=interrupts.interrupted)

    async with anyio.create_task_group() as signals:
        signals.start_soon(interrupts.watch)
        with interrupts.scope:
            await run_stored(
                orch,
                journal,
                start=start,
                reattach=reattach,
                timeout=options.timeout,
                stop=StopPolicy(
                    on_timeout=options.stop_on_timeout,
                    on_cancel=options.stop_on_interrupt,
                    grace=options.stop_grace,
                    pending_timeout=options.pending_timeout,
                    on_suspended=options.on_suspended,
                ),
                hooks=Hooks(on_progress=on_progress, on_abandoned=on_abandoned),
            )
        if interrupts.interrupted:
            journal.record_event("interrupted", stopped=options.stop_on_interrupt)
            with anyio.move_on_after(REFRESH_TIMEOUT):
                await refresh_unfinished(orch, journal)
        signals.cancel_scope.cancel()
    return interrupts.interrupted


def _report_abandoned(
    journal: Journal, abandoned: Abandoned, stream: TextIO, *, interrupted: bool
) -> None:
    """Say what an early end left behind (the library then logs it at info only;
    ``run_stored`` has recorded it in the journal)."""
    if abandoned.stop_sent:
        records = {(j.job_id, j.handle.job_key): j for j in journal.jobs()}
        for handle in (*abandoned.stopped, *abandoned.left_running):
            strategy = abandoned.stop_sent.get(handle.job_id)
            record = records.get((handle.job_id, handle.job_key))
            if strategy is not None and record is not None:
                journal.record_stop_sent(record.request_index, record.handle, strategy)
    lines = []
    if abandoned.stopped:
        lines.append(f"{count_jobs(len(abandoned.stopped))} stopped")
    if abandoned.left_running:
        lines.append(f"{count_jobs(len(abandoned.left_running))} may still be running")
    if abandoned.uncertain_references:
        lines.append(
            f"{len(abandoned.uncertain_references)} starts got no answer "
            "(a resume looks their References up)"
        )
    if lines and not interrupted:  # an interrupt ends with the same advice anyway
        lines.append(f"the journal has them all: async-orch dispatch --resume {journal.path}")
    for line in lines:
        stream.write(line + "\n")
    stream.flush()


def _names(job: Job, record: JobRecord) -> bool:
    """Whether ``job``, read from the server, is the journaled ``record``."""
    return job.id == record.job_id and not identity_change(record.handle, job)


async def refresh_unfinished(
    orch: OrchestratorClient, journal: Journal, *, left_running: bool = False
) -> None:
    """After an interrupt: read the jobs not final in the journal once more, so it
    holds their latest state (and outcome and outputs, if they ended meanwhile).
    With ``left_running``, also the jobs reported without ending (timed out, stuck
    Pending, suspended; their outcome stays, their state is updated)."""
    unfinished = [j for j in journal.jobs() if not j.final or (left_running and j.left_running)]
    records = {r.index: r for r in journal.requests()}
    by_folder: dict[int, list[JobRecord]] = defaultdict(list)
    for job in unfinished:
        by_folder[job.handle.folder_id].append(job)
    for folder_id, jobs in by_folder.items():
        try:
            by_id: dict[int, list[JobRecord]] = defaultdict(list)
            for job in jobs:
                by_id[job.job_id].append(job)
            # One call per URL's worth of ids (list_jobs splits the list).
            for seen in await orch.api.list_jobs(folder_id, ids=sorted(by_id)):
                # Two journaled jobs may share an id (a server that forgot the
                # first gave its id out again): only the one it still names is
                # updated; the other is left for a resume to report lost.
                record = next((j for j in by_id.get(seen.id, ()) if _names(seen, j)), None)
                if record is None:
                    continue
                if record.final:  # left running: its state (and end) is news
                    state = seen.raw_state or seen.state.value
                    ended = seen.end_time if seen.state.is_terminal else None
                    journal.record_later_state(
                        record.request_index,
                        record.handle,
                        state,
                        ended=iso_text(ended),
                        info=seen.info if seen.state.is_terminal else None,
                    )
                    continue
                outcome = Outcome.of_final(seen.state)
                if outcome is None:
                    journal.record_state(
                        record.request_index, record.handle, seen.raw_state or seen.state.value
                    )
                    continue
                full = await orch.api.get_job(folder_id, seen.id)  # for its outputs
                request = records[record.request_index]
                result = JobResult(
                    index=request.index,
                    request=JobRequest(process=request.process, folder=request.folder),
                    outcome=outcome,
                    handle=record.handle,
                    job=full,
                    detected=datetime.now(UTC),  # when this read saw it ended
                    attempts=record.attempts or 0,
                    stop_sent=record.stop_sent,
                )
                journal.record_final(
                    record.request_index,
                    record.handle,
                    outcome=outcome.value,
                    state=full.raw_state or full.state.value,
                    result=stored_row(request, result),
                )
        except OrchestratorError as exc:
            log.warning("async_orch.cli.refresh_failed", folder_id=folder_id, error=str(exc))
