"""`async-orch jobs` (show jobs by id, Reference or journal) and `async-orch stop`
(stop the unfinished jobs of a journal)."""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from async_orch._cli.common import (
    add_connection_flags,
    configure_logging,
    connection,
    exit_codes,
    non_negative,
    run_command,
)
from async_orch._cli.journal_run import (
    exit_code,
    job_row,
    journal_rows,
    refresh_unfinished,
    refuse_embedded_simulator_journal,
)
from async_orch._cli.output import FORMATS, check_writable, emit_rows, output_path
from async_orch._client import OrchestratorClient
from async_orch._errors import (
    FOLDER_REFUSALS,
    ConfigurationError,
    NotFoundError,
)
from async_orch._journal import JobRecord, Journal
from async_orch._journaled import target_of
from async_orch._resources import STOP_JOBS_CHUNK

__all__ = ["add_jobs_parser", "add_stop_parser", "run_jobs", "run_stop"]

#: Seconds between reads of stopped jobs while ``stop`` waits for them to end.
STOP_POLL_INTERVAL = 1.0

JOBS_EXAMPLES = (
    exit_codes(
        "0    every job shown succeeded",
        "1    some are unfinished, faulted, stopped, timed out or unknown",
    )
    + """
examples:
  async-orch jobs --journal batch.sqlite                 # as last recorded, no network
  async-orch jobs --journal batch.sqlite --refresh       # read unfinished jobs again first
  async-orch jobs --folder Shared --id 923593107623 --id 923593107624
  async-orch jobs --folder Shared --reference invoice-2024-001
"""
)

STOP_EXAMPLES = (
    exit_codes(
        "0    every job of the journal had succeeded: nothing to stop",
        "1    some jobs were stopped, faulted, or are still unfinished after --wait",
    )
    + """
examples:
  async-orch stop --journal batch.sqlite          # SoftStop every unfinished job
  async-orch stop --journal batch.sqlite --kill   # end them at once
"""
)


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    out = parser.add_argument_group("output")
    out.add_argument("--format", choices=FORMATS, default=None, help="jsonl, csv or table")
    out.add_argument(
        "--output",
        "-o",
        type=output_path,
        metavar="FILE",
        help="write rows here (default, or -: stdout)",
    )


def add_jobs_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "jobs",
        usage="%(prog)s (--journal PATH [--refresh] | [--folder PATH] --id N... | "
        "--reference REF...) [options]",
        help="show jobs by id, by Reference or from a journal",
        description="Show jobs with their state and outputs: from a dispatch journal, or "
        "read from Orchestrator by id or by Reference.",
        epilog=JOBS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--journal", type=Path, help="a dispatch journal")
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="with --journal: read the unfinished jobs from Orchestrator first (and record them)",
    )
    parser.add_argument(
        "--folder",
        help="folder of the jobs given by --id or --reference (default: UIPATH_FOLDER_PATH "
        "or the profile's folder)",
    )
    parser.add_argument("--id", type=int, action="append", default=[], help="job id (repeat)")
    parser.add_argument("--reference", action="append", default=[], help="Reference (repeat)")
    _add_output_flags(parser)
    add_connection_flags(parser)


def add_stop_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "stop",
        usage="%(prog)s --journal PATH [--kill] [--wait SECONDS] [options]",
        help="stop the unfinished jobs of a journal",
        description="Stop every job of a dispatch journal that is not final yet, or that "
        "the batch reported without ending (timed out, stuck Pending, suspended), then "
        "record their states in the journal.",
        epilog=STOP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--journal", type=Path, required=True, help="a dispatch journal")
    parser.add_argument(
        "--kill", action="store_true", help="Kill instead of SoftStop (the workflow gets no say)"
    )
    parser.add_argument(
        "--wait",
        type=non_negative,
        default=60.0,
        metavar="SECONDS",
        help="wait up to this long for the jobs to end, then show them (default 60; 0: no wait)",
    )
    _add_output_flags(parser)
    add_connection_flags(parser)


def run_jobs(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    return run_command(lambda: _jobs(args))


def run_stop(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    return run_command(lambda: _stop(args))


async def _jobs(args: argparse.Namespace) -> int:
    check_writable(args.output, flag="--output")  # written last: fail before the run
    if args.journal is not None:
        if args.id or args.reference:
            raise ConfigurationError("give either --journal or --id/--reference, not both")
        # Showing a journal only reads it: no lock, so it works while a dispatch
        # writes it. --refresh writes the states it reads, so it takes the lock
        # like every writer: one writer at a time keeps the rule simple, and a
        # running dispatch keeps its journal up to date anyway (the refusal then
        # points to reading it without --refresh).
        with Journal.open(args.journal, read_only=not args.refresh) as journal:
            if args.refresh:
                async with _journal_client(args, journal, "refresh") as orch:
                    await refresh_unfinished(orch, journal)
            shown = journal_rows(journal)
            _write(shown, args)
        return exit_code(shown)
    if not (args.id or args.reference):
        raise ConfigurationError(
            "say which jobs: --journal PATH, or --folder F with --id/--reference"
        )
    rows: list[dict[str, Any]] = []
    async with connection(args) as settings, OrchestratorClient(settings) as orch:
        folder_name: str | None = args.folder or settings.folder
        if not folder_name:
            raise ConfigurationError(
                "--id and --reference need --folder (jobs live in folders), "
                "or a default folder (UIPATH_FOLDER_PATH or the profile's folder)"
            )
        folder = await orch.api.resolve_folder(folder_name)
        # A folder the user did not type may well be the wrong one: say where it came from.
        origin = _folder_origin(args, folder_name, os.environ)
        elsewhere = f"(the folder from {origin}); give --folder F if the job is in another"
        ids = list(args.id)
        for reference in args.reference:
            found = await orch.api.list_jobs(folder, reference=reference)
            if not found:
                raise ConfigurationError(
                    f"no job with Reference {reference!r} in folder {folder.fully_qualified_name!r}"
                    + (f" {elsewhere}" if args.folder is None else "")
                )
            ids.extend(job.id for job in found)
        for index, job_id in enumerate(ids):
            try:
                job = await orch.api.get_job(folder, job_id)  # by id: outputs included
            except NotFoundError as exc:
                if args.folder is not None:
                    raise
                raise ConfigurationError(
                    # The server's message may end its sentence: one stop, not ".:".
                    f"{str(exc).rstrip('.')}: job {job_id} was looked up in folder "
                    f"{folder.fully_qualified_name!r} {elsewhere}"
                ) from None
            rows.append(job_row(index, job, folder=folder.fully_qualified_name))
    _write(rows, args)
    return exit_code(rows)


async def _stop(args: argparse.Namespace) -> int:
    check_writable(args.output, flag="--output")  # written last: fail before the run
    # stop writes the journal (the stop_sent event, then states and outcomes), so
    # it takes the lock. It is refused while a dispatch or resume runs on the
    # journal, and rightly so: that run may still start jobs, which a stop sent
    # now would miss while seeming to have stopped everything. The refusal says
    # to let that run end or stop it first; this command then stops whatever it
    # left running.
    with Journal.open(args.journal) as journal:
        async with _journal_client(args, journal, "stop") as orch:
            # Jobs not final, and jobs the batch reported without ending them (timed
            # out, stuck Pending, suspended, ended by a refusal): they may still run
            # or wait in the tenant. Read first: one that ended since the batch let
            # go of it is recorded so and not sent a stop (what StopJobs does to an
            # ended job is not documented), nor counted as stopped.
            await refresh_unfinished(orch, journal, left_running=True)
            unfinished = [j for j in journal.jobs() if not j.final or j.left_running]
            by_folder: dict[int, list[JobRecord]] = defaultdict(list)
            for job in unfinished:
                by_folder[job.handle.folder_id].append(job)
            strategy = "Kill" if args.kill else "SoftStop"
            sent: list[JobRecord] = []
            for jobs in by_folder.values():
                sent += await _send_stop(orch, jobs, strategy)
            for job in sent:  # sent: each row says so (stop_sent)
                journal.record_stop_sent(job.request_index, job.handle, strategy)
            journal.record_event("stop_sent", strategy=strategy, jobs=len(sent))
            unfinished_jobs = "unfinished job" if len(sent) == 1 else "unfinished jobs"
            print(f"{strategy} sent to {len(sent)} {unfinished_jobs}", file=sys.stderr)
            await refresh_unfinished(orch, journal, left_running=True)
            # A SoftStop leaves the workflow time to end; read again until it has
            # (for the jobs it was sent to: a refused folder's are not waited for).
            stopping = {(j.request_index, j.job_id) for j in sent}
            with anyio.move_on_after(args.wait):
                while any(
                    (j.request_index, j.job_id) in stopping and (not j.final or j.left_running)
                    for j in journal.jobs()
                ):
                    await anyio.sleep(STOP_POLL_INTERVAL)
                    await refresh_unfinished(orch, journal, left_running=True)
        rows = journal_rows(journal)
        _write(rows, args)
    return exit_code(rows)


async def _send_stop(
    orch: OrchestratorClient, jobs: list[JobRecord], strategy: str
) -> list[JobRecord]:
    """Send ``strategy`` to ``jobs`` (of one folder); return those it was sent to. The
    folder's refusal (its access, or a permission in it, lost: the jobs a batch
    ended unknown by a refusal are among those stopped) is said, and the other
    folders' jobs are stopped still: HR's 403 ended the command before Shared's
    timed-out jobs were stopped (attack h10b). Other errors end the command."""
    sent: list[JobRecord] = []
    folder = jobs[0].handle
    for start in range(0, len(jobs), STOP_JOBS_CHUNK):
        chunk = jobs[start : start + STOP_JOBS_CHUNK]
        try:
            await orch.api.stop_jobs(folder.folder_id, [j.job_id for j in chunk], strategy=strategy)
        except FOLDER_REFUSALS as exc:
            print(
                f"could not stop {len(jobs) - len(sent)} jobs of folder {folder.folder_path}: "
                f"{exc}",
                file=sys.stderr,
            )
            break
        sent += chunk
    return sent


def _folder_origin(args: argparse.Namespace, folder: str, environ: Mapping[str, str]) -> str:
    """Where the folder the jobs are looked up in came from (for a not-found hint)."""
    if args.folder is not None:
        return "--folder"
    for variable in ("UIPATH_FOLDER_KEY", "UIPATH_FOLDER_PATH"):
        if environ.get(variable, "").strip() == folder:
            return variable
    return "the profile's folder"


@asynccontextmanager
async def _journal_client(
    args: argparse.Namespace, journal: Journal, what: str
) -> AsyncIterator[OrchestratorClient]:
    """A client for a journal's tenant (its URL unless told otherwise), checked."""
    if args.simulator:
        raise ConfigurationError(
            "an embedded simulator (--simulator) ends with its run; its jobs are gone"
        )
    refuse_embedded_simulator_journal(journal, what)
    async with connection(args, default_url=journal.target.url) as settings:
        journal.check_target(target_of(settings))
        async with OrchestratorClient(settings) as orch:
            yield orch


def _write(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    emit_rows(rows, fmt=args.format, output=args.output, stream=sys.stdout)
