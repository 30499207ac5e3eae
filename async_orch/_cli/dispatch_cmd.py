"""`async-orch dispatch`: start many jobs across folders, watch them, write results."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from async_orch._cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_connection_flags,
    configure_logging,
    connection,
    exit_codes,
    first_error,
    list_budget,
    load_settings,
    non_negative,
    positive,
    positive_int,
    run_command,
)
from async_orch._cli.jobfile import requests_from_file, requests_from_flags
from async_orch._cli.journal_run import (
    EMBEDDED_SIMULATOR_EVENT,
    RunOptions,
    default_journal_path,
    exit_code,
    journal_rows,
    refuse_embedded_simulator_journal,
    run_journaled,
    summary_of,
)
from async_orch._cli.output import FORMATS, check_writable, emit_rows, output_path
from async_orch._cli.progress import ProgressDisplay
from async_orch._cli.webhook_server import (
    SECRET_ENV,
    WebhookRun,
    listen_address,
    serve_webhooks,
    subscribe_embedded,
)
from async_orch._client import OrchestratorClient
from async_orch._dispatcher import DispatchLimits
from async_orch._errors import ConfigurationError, RequestError
from async_orch._fatal import upload_scope_missing
from async_orch._jobs import JobRequest, checked_requests
from async_orch._journal import Journal, RequestRecord
from async_orch._journaled import records_for, resume_plan, target_of
from async_orch._options import SUSPENDED_POLICIES
from async_orch._planner import PollPolicy
from async_orch._redis_budget import RedisListBudget
from async_orch._webhooks import WebhookReceiver

if TYPE_CHECKING:
    from async_orch.simulator import SimulatorHandle

__all__ = ["add_parser", "run"]

EXAMPLES = (
    exit_codes(
        "0    every job succeeded (with --dry-run: every (folder, process) pair is valid)",
        "1    some jobs faulted, were stopped, timed out, stuck Pending or are unfinished",
        "     (with --dry-run: some pairs are not valid)",
    )
    + """
examples:
  async-orch dispatch --simulator --process Echo --folder Shared --folder HR \\
      --count 200 --inputs '{"customer": "ACME"}'
  async-orch dispatch --file jobs.csv --format csv --output results.csv
  async-orch dispatch --resume ~/.local/state/async-orch/journals/20250101-120000-1a2b3c.sqlite
  async-orch dispatch --file jobs.csv --dry-run
"""
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dispatch",
        usage="%(prog)s (--process NAME --folder PATH... | --file JOBS | --resume "
        "JOURNAL) [options]",
        help="start many jobs across folders and wait for them",
        description="Start many jobs across folders, watch them until they end, and write "
        "one result per job (state, parsed OutputArguments).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    jobs = parser.add_argument_group("jobs (from flags, or --file)")
    jobs.add_argument("--process", help="process name as shown in Orchestrator")
    jobs.add_argument(
        "--folder",
        action="append",
        default=[],
        help="folder path (repeat for several folders; jobs are spread round-robin; "
        "default: UIPATH_FOLDER_PATH or the profile's folder)",
    )
    jobs.add_argument(
        "--count", type=positive_int, default=1, help="how many jobs in all (default 1)"
    )
    jobs.add_argument("--inputs", help="InputArguments as a JSON object, e.g. '{\"n\": 1}'")
    jobs.add_argument("--reference-prefix", help="References become PREFIX-0, PREFIX-1, ...")
    jobs.add_argument(
        "--file", type=Path, help="jobs from a .csv (folder,process,inputs,reference) or .jsonl"
    )
    jobs.add_argument(
        "--dry-run",
        action="store_true",
        help="start nothing: ask Orchestrator (ValidateDynamicJob) whether each distinct "
        "(folder, process) could start a job now, one line each; exit 0 when all are "
        "valid, 1 when any is not. No journal is written",
    )
    run_group = parser.add_argument_group("running")
    run_group.add_argument("--timeout", type=positive, help="seconds for the whole batch")
    run_group.add_argument(
        "--job-timeout",
        type=positive,
        help="seconds each job may take from its start request (time Pending included)",
    )
    run_group.add_argument(
        "--stop-on-timeout",
        action="store_true",
        help="stop jobs that time out (SoftStop, then Kill after --stop-grace)",
    )
    run_group.add_argument(
        "--pending-timeout",
        type=positive,
        help="seconds a job may stay Pending (no robot took it) before it is reported "
        "stuck_pending; with --stop-on-timeout it is stopped too",
    )
    run_group.add_argument(
        "--on-suspended",
        choices=SUSPENDED_POLICIES,
        default="timeout",
        help="a job Suspended (waiting for a person or an event) at its deadline: "
        "timeout (default) like any other job; report it as suspended and leave it "
        "suspended, never stopped; wait until it ends (its deadline is lifted)",
    )
    run_group.add_argument(
        "--stop-grace",
        type=non_negative,
        default=30.0,
        help="seconds between SoftStop and Kill when stopping jobs (default 30)",
    )
    run_group.add_argument(
        "--max-in-flight",
        type=positive_int,
        default=16,
        help="StartJobs calls at once (default 16)",
    )
    run_group.add_argument(
        "--rate",
        type=positive,
        default=None,
        help="StartJobs calls per second at most (default: no limit)",
    )
    run_group.add_argument(
        "--on-interrupt",
        choices=("leave", "stop"),
        default="leave",
        help="on Ctrl-C: leave the started jobs running (default; --resume re-attaches "
        "to them) or stop them (SoftStop, then Kill after --stop-grace)",
    )
    run_group.add_argument(
        "--webhook-listen",
        type=listen_address,
        metavar="HOST:PORT",
        help="also receive Orchestrator's webhook events here (any path; signed with the "
        f"secret in ${SECRET_ENV}) to see ended jobs sooner; polling goes on, slower while "
        "events arrive. With --simulator the webhook is created for you (and the secret "
        "drawn if unset)",
    )
    run_group.add_argument(
        "--list-budget",
        type=list_budget,
        default=None,
        help="GET Jobs list calls per minute for polling, 1 to 100 (the tenant's limit, shared "
        "with every other client), or 0 to read each job by id instead; default 60",
    )
    run_group.add_argument(
        "--list-budget-redis",
        metavar="URL",
        default=None,
        help="share the list budget with every worker on this Redis (redis://HOST:PORT/DB): "
        "the workers of one tenant together make at most --list-budget list calls a minute "
        "(needs the redis extra)",
    )
    journal = parser.add_argument_group("journal and resume")
    journal.add_argument(
        "--journal",
        type=Path,
        help="write the journal here (default: a new file under "
        "$ASYNC_ORCH_JOURNAL_DIR or ~/.local/state/async-orch/journals; shown at start)",
    )
    journal.add_argument(
        "--resume",
        type=Path,
        metavar="JOURNAL",
        help="finish the dispatch of a journal: re-attach to the jobs it started, look up "
        "by Reference those whose start was not recorded, start the rest",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--format", choices=FORMATS, default=None, help="jsonl, csv or table")
    out.add_argument(
        "--output",
        "-o",
        type=output_path,
        metavar="FILE",
        help="write results here (default, or -: stdout)",
    )
    out.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress or messages, only errors (and the journal's path when it was "
        "not given with --journal)",
    )
    add_connection_flags(parser)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    return run_command(lambda: _dispatch(args))


def _requests(args: argparse.Namespace) -> list[JobRequest]:
    if args.file is not None:
        if args.process or args.folder:
            raise ConfigurationError("give jobs either with --file or with --process/--folder")
        return requests_from_file(args.file, timeout=args.job_timeout)
    if not args.process:
        raise ConfigurationError("say which process to run: --process NAME (or --file)")
    return requests_from_flags(
        process=args.process,
        folders=args.folder or _default_folders(args),
        count=args.count,
        inputs=args.inputs,
        reference_prefix=args.reference_prefix,
        timeout=args.job_timeout,
    )


def _default_folders(args: argparse.Namespace) -> list[str]:
    """The settings' default folder (UIPATH_FOLDER_PATH, a profile's folder), if any."""
    if args.simulator:
        return []  # the embedded simulator's settings name no folder
    folder = load_settings(args, environ=os.environ).folder
    return [] if folder is None else [folder]


def _webhook_secret(args: argparse.Namespace) -> str | None:
    """The secret --webhook-listen needs (checked before anything starts); None without it."""
    if args.webhook_listen is None:
        return None
    secret = os.environ.get(SECRET_ENV, "")
    if not secret and args.simulator:
        return secrets.token_urlsafe(32)  # the embedded simulator's webhook gets it too
    if not secret:
        raise ConfigurationError(
            f"--webhook-listen needs the webhook's secret (as set on the webhook in "
            f"Orchestrator) in the environment variable {SECRET_ENV}"
        )
    return secret


def _receiver(secret: str | None) -> WebhookReceiver | None:
    return None if secret is None else WebhookReceiver(secret)


@asynccontextmanager
async def _listening(
    args: argparse.Namespace,
    webhooks: WebhookRun | None,
    secret: str | None = None,
    embedded: Sequence[SimulatorHandle] = (),
) -> AsyncIterator[None]:
    """Serve the run's receiver (subscribed to the embedded simulator, if any); its
    counts are the run's last line."""
    if webhooks is None or secret is None:
        yield
        return
    host, port = args.webhook_listen
    async with serve_webhooks(webhooks.receiver, host, port) as url:
        disable = [subscribe_embedded(sim, url, secret) for sim in embedded]
        _say(args, f"receiving webhook events at {url}")
        try:
            yield
        finally:
            for off in disable:
                off()  # before the receiver closes: nothing is sent to a closed port
    _say(args, webhooks.describe())


@asynccontextmanager
async def _client(
    args: argparse.Namespace, settings: Any, webhooks: WebhookReceiver | None = None
) -> AsyncIterator[OrchestratorClient]:
    poll = (
        PollPolicy()
        if args.list_budget is None
        else PollPolicy(list_budget_per_minute=args.list_budget)
    )
    limits = DispatchLimits(max_in_flight=args.max_in_flight, starts_per_second=args.rate)
    shared: RedisListBudget | None = None
    if args.list_budget_redis is not None:
        if not poll.list_budget_per_minute:
            raise ConfigurationError(
                "--list-budget-redis needs list calls: a --list-budget above 0"
            )
        # One budget per tenant: its base URL names it (organization and tenant in it).
        shared = RedisListBudget(
            args.list_budget_redis,
            per_minute=int(poll.list_budget_per_minute),
            key=settings.orchestrator.base,
        )
    try:
        if shared is not None:
            await shared.check()  # a refused password or database: one line, exit 2
        async with OrchestratorClient(
            settings, limits=limits, poll=poll, list_budget=shared, webhooks=webhooks
        ) as orch:
            yield orch
    finally:
        if shared is not None:
            await shared.aclose()


def _heartbeat(
    display: ProgressDisplay, orch: OrchestratorClient
) -> AbstractAsyncContextManager[None]:
    """Say what is awaited while nothing changes (never silent)."""
    display.set_health(lambda: orch.transport.health)
    display.set_list_pace(orch.dispatcher.list_pace)
    return display.beating()


def _options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        timeout=args.timeout,
        stop_on_timeout=args.stop_on_timeout,
        stop_grace=args.stop_grace,
        pending_timeout=args.pending_timeout,
        stop_on_interrupt=args.on_interrupt == "stop",
        on_suspended=args.on_suspended,
    )


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


async def _dispatch(args: argparse.Namespace) -> int:
    if args.resume is not None:
        return await _resume(args)
    if args.dry_run:
        return await _dry_run(args)
    batch_id = uuid.uuid4().hex[:10]
    requests = checked_requests(_requests(args))  # bad input fails before any I/O
    records = records_for(requests, batch_id)
    check_writable(args.output, flag="--output")  # written last: fail before the run
    path = args.journal or default_journal_path(
        os.environ, Path.home(), batch_id=batch_id, now=datetime.now(UTC)
    )
    how_to_resume = f"resume it with --resume {path}, or choose another path with --journal"
    Journal.check_new_path(path, how_to_resume=how_to_resume)  # before any network call
    secret = _webhook_secret(args)
    receiver = _receiver(secret)
    # With --simulator the CLI creates the webhook itself (subscribe_embedded).
    webhooks = None if receiver is None else WebhookRun(receiver, created_here=args.simulator)
    display = ProgressDisplay(sys.stderr, live=sys.stderr.isatty(), quiet=args.quiet)
    embedded: list[SimulatorHandle] = []  # with --simulator
    async with (
        connection(args, on_simulator=embedded.append) as settings,
        _listening(args, webhooks, secret, embedded),
        _client(args, settings, receiver) as orch,
        _heartbeat(display, orch),
    ):
        # Refused before the journal is created: a refused batch leaves nothing behind.
        if (missing := upload_scope_missing(settings, requests)) is not None:
            raise missing
        await _check_names(orch, records)  # a typo is one clear error before anything starts
        if args.reference_prefix:
            await _warn_reused_prefix(args, orch, records[0])
        elif args.file is not None:
            await _warn_reused_references(
                orch, [rec for req, rec in zip(requests, records, strict=True) if req.reference]
            )
        with Journal.create(
            path,
            target=target_of(settings),
            batch_id=batch_id,
            requests=records,
            how_to_resume=how_to_resume,
        ) as journal:
            if args.simulator:  # so jobs/stop/--resume can say why they cannot work
                journal.record_event(EMBEDDED_SIMULATOR_EVENT, url=settings.url)
            _say(args, f"dispatching {len(records)} jobs to {settings.url}")
            if not args.quiet or args.journal is None:
                # Even when quiet: without it a generated journal could not be resumed.
                print(f"journal: {path}", file=sys.stderr, flush=True)
            with _rows_even_if_it_fails(args, journal, display):
                interrupted = await run_journaled(
                    orch,
                    journal,
                    start=records,
                    reattach=[],
                    options=_options(args),
                    on_progress=display.update,
                    stream=sys.stderr,
                )
            return _finish(args, journal, display, interrupted, webhooks)


async def _dry_run(args: argparse.Namespace) -> int:
    """Validate each distinct (folder, process) with Orchestrator; start nothing."""
    requests = _requests(args)
    records_for(requests, "dry-run")  # the checks a real run makes, before any I/O
    async with connection(args) as settings, _client(args, settings) as orch:
        _say(args, f"validating {len(requests)} jobs against {settings.url} (nothing is started)")
        validations = await orch.validate(requests)
    for validation in validations:
        print(validation.describe(with_fixes=True), flush=True)
    invalid = sum(not v.is_valid for v in validations)
    _say(args, f"{len(validations) - invalid} of {len(validations)} (folder, process) valid")
    return EXIT_FAILED if invalid else EXIT_OK


async def _resume(args: argparse.Namespace) -> int:
    if args.dry_run:
        raise ConfigurationError("--dry-run validates new jobs; leave out --resume")
    if args.process or args.folder or args.file is not None:
        raise ConfigurationError(
            "--resume takes its jobs from the journal; leave out --process/--folder/--file"
        )
    if args.simulator:
        raise ConfigurationError(
            "--resume cannot use --simulator: an embedded simulator ends with its run, "
            "so the jobs of the journal are gone with it"
        )
    check_writable(args.output, flag="--output")  # written last: fail before the run
    secret = _webhook_secret(args)
    receiver = _receiver(secret)
    display = ProgressDisplay(sys.stderr, live=sys.stderr.isatty(), quiet=args.quiet)
    # Opened to write: the journal's lock is held until the very end, so a second
    # resume of it (or any other writer) is refused before it looks anything up.
    with Journal.open(args.resume) as journal:
        refuse_embedded_simulator_journal(journal, "resume")
        locked_at = time.monotonic()  # no writer of this journal can post after this
        target = journal.target
        async with connection(args, default_url=target.url) as settings:
            journal.check_target(target_of(settings))
            webhooks = None
            if receiver is not None:  # the jobs that ended before this run are not its own
                webhooks = WebhookRun(receiver, rows_before=journal_rows(journal))
            async with (
                _listening(args, webhooks, secret),
                _client(args, settings, receiver) as orch,
                _heartbeat(display, orch),
            ):
                window = settings.retry.window_after(settings.timeout.total)
                never_started, reattach, _refused = await resume_plan(
                    orch.api,
                    journal,
                    window_ends=locked_at + window,
                    say=lambda text: _say(args, text),
                    name=str(args.resume),
                    waiting=lambda what, until: display.waiting_for(what, until=until),
                    to_server=orch.transport.server_clock.earliest_server_time,
                )
                with _rows_even_if_it_fails(args, journal, display):
                    interrupted = await run_journaled(
                        orch,
                        journal,
                        start=never_started,
                        reattach=reattach,
                        options=_options(args),
                        on_progress=display.update,
                        stream=sys.stderr,
                    )
                return _finish(args, journal, display, interrupted, webhooks)


@contextmanager
def _rows_even_if_it_fails(
    args: argparse.Namespace, journal: Journal, display: ProgressDisplay
) -> Iterator[None]:
    """An error that ends the run once jobs started (every folder refused, the token
    revoked) still writes the rows the journal holds, as an interrupt does: the
    results of the jobs that ended, the job ids of the others (new-user review:
    ``-o`` stayed empty). The error itself follows (exit 2). Not when the journal
    itself failed (a full disk): its rows are not the run's, and writing may fail too."""
    try:
        yield
    except Exception as exc:
        if isinstance(first_error(exc), RequestError) and journal.failure is None:
            display.finish()
            _write(journal_rows(journal), args, journal.path)
        raise


def _finish(
    args: argparse.Namespace,
    journal: Journal,
    display: ProgressDisplay,
    interrupted: bool,
    webhooks: WebhookRun | None = None,
) -> int:
    """Write every row the journal knows (this run's and earlier ones'), then the summary."""
    display.finish()
    rows = journal_rows(journal)
    if webhooks is not None:
        webhooks.run_ended(rows)
    _write(rows, args, journal.path)
    _say(args, summary_of(rows).describe())
    if interrupted:
        journal.record_event("finished", interrupted=True)
        if args.simulator:
            # The embedded simulator ends with this process: nothing is left to resume.
            _say(args, "interrupted; the embedded simulator's jobs ended with it")
        else:
            _say(
                args,
                f"interrupted; the journal holds every job so far. Continue with:\n"
                f"  async-orch dispatch --resume {journal.path}\n"
                f"or stop what still runs with:\n  async-orch stop --journal {journal.path}",
            )
        return EXIT_INTERRUPTED
    journal.record_event("finished", interrupted=False)
    timed_out = sum(row.get("outcome") == "timed_out" for row in rows)
    if timed_out and not args.simulator:  # an embedded simulator's jobs end with it
        _say(
            args,
            f"{timed_out} timed-out jobs may still run; stop them with:\n"
            f"  async-orch stop --journal {journal.path}",
        )
    refused = sum(job.refused for job in journal.jobs())
    if refused and not args.simulator:
        # A resume starts the requests not started too (say, refused while access was lost).
        not_started = sum(row.get("outcome") == "not_started" for row in rows)
        also = f" (and start the {not_started} not started)" if not_started else ""
        _say(
            args,
            f"{refused} jobs ended unknown because calls about them were refused (their "
            "folder's access or a permission in it); once access is back, learn their "
            f"outcome{also} with:\n  async-orch dispatch --resume {journal.path}",
        )
    return exit_code(rows)


async def _check_names(orch: OrchestratorClient, records: Sequence[RequestRecord]) -> None:
    """Resolve every folder and process first: a typo is one clear error, exit 2."""
    for folder, process in sorted({(r.folder, r.process) for r in records}):
        await orch.api.resolve_release(folder, process)


async def _warn_reused_prefix(
    args: argparse.Namespace, orch: OrchestratorClient, first: RequestRecord
) -> None:
    """Warn when the batch's first Reference names a job already: the prefix was used
    before, and a Reference must identify one job (a lost start is looked up by it).
    One list call: a reused prefix collides at PREFIX-0."""
    found = await orch.api.list_jobs(first.folder, reference=first.reference, top=1)
    if found:
        print(
            f"warning: a job with Reference {first.reference!r} already exists in folder "
            f"{first.folder} (job {found[0].id}): --reference-prefix {args.reference_prefix} "
            "was used before, and a Reference must identify one job (a start whose answer "
            "is lost is found again by it); choose a new --reference-prefix",
            file=sys.stderr,
            flush=True,
        )


async def _warn_reused_references(orch: OrchestratorClient, records: list[RequestRecord]) -> None:
    """Warn when References the job file gives already name jobs (as for a reused
    --reference-prefix): shared ``Reference in (...)`` calls per folder, charged to
    the list budget."""
    by_folder: dict[str, list[str]] = {}
    for record in records:
        by_folder.setdefault(record.folder, []).append(record.reference)
    used: list[tuple[str, str, int]] = []  # (reference, folder, job id)
    failed: str | None = None
    for folder_ref, references in by_folder.items():
        folder = await orch.api.resolve_folder(folder_ref)
        answers = await orch.dispatcher.jobs_with_references(folder, references)
        for reference in references:
            answer = answers[reference]
            if answer.error is not None:
                failed = failed or str(answer.error)
            elif answer.jobs:
                used.append((reference, folder.fully_qualified_name, answer.jobs[0].id))
    if used:
        reference, folder_name, job_id = used[0]
        print(
            f"warning: {len(used)} of the file's {len(records)} References already name "
            f"jobs (e.g. {reference!r} is job {job_id} in folder {folder_name}): a Reference "
            "must identify one job (a start whose answer is lost is found again by it, and "
            "an older job with it is never taken as the new one); give those lines new "
            "references",
            file=sys.stderr,
            flush=True,
        )
    if failed is not None:
        print(
            f"warning: could not check whether the file's References are new: {failed}",
            file=sys.stderr,
            flush=True,
        )


def _write(
    rows: Sequence[Mapping[str, Any]], args: argparse.Namespace, journal: Path | None = None
) -> None:
    emit_rows(rows, fmt=args.format, output=args.output, stream=sys.stdout, journal=journal)
