"""`async-orch dispatch`: start many jobs across folders, watch them, write results."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from async_orch.batch import JobRequest, JobResult, Summary
from async_orch.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_connection_flags,
    configure_logging,
    connection,
    run_command,
)
from async_orch.cli.jobfile import requests_from_file, requests_from_flags
from async_orch.cli.output import FORMATS, write_results
from async_orch.cli.progress import ProgressDisplay
from async_orch.client import OrchestratorClient
from async_orch.dispatcher import DispatchLimits
from async_orch.errors import ConfigurationError
from async_orch.planner import PollPolicy

__all__ = ["add_parser", "run"]

EXAMPLES = """\
examples:
  async-orch dispatch --simulator --process Echo --folder Shared --folder HR \\
      --count 200 --inputs '{"customer": "ACME"}'
  async-orch dispatch --file jobs.csv --format csv --output results.csv
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dispatch",
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
        help="folder path (repeat for several folders; jobs are spread round-robin)",
    )
    jobs.add_argument("--count", type=int, default=1, help="how many jobs in all (default 1)")
    jobs.add_argument("--inputs", help="InputArguments as a JSON object, e.g. '{\"n\": 1}'")
    jobs.add_argument("--reference-prefix", help="References become PREFIX-0, PREFIX-1, ...")
    jobs.add_argument(
        "--file", type=Path, help="jobs from a .csv (folder,process,inputs,reference) or .jsonl"
    )
    run_group = parser.add_argument_group("running")
    run_group.add_argument("--timeout", type=float, help="seconds for the whole batch")
    run_group.add_argument(
        "--job-timeout", type=float, help="seconds each job may run once started"
    )
    run_group.add_argument(
        "--stop-on-timeout",
        action="store_true",
        help="stop jobs that time out (SoftStop, then Kill after --stop-grace)",
    )
    run_group.add_argument("--stop-grace", type=float, default=30.0)
    run_group.add_argument(
        "--max-in-flight", type=int, default=16, help="StartJobs calls at once (default 16)"
    )
    run_group.add_argument(
        "--list-budget",
        type=float,
        default=None,
        help="GET Jobs list calls per minute for polling (tenant limit is 100; default 60)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--format", choices=FORMATS, default=None, help="jsonl, csv or table")
    out.add_argument("--output", "-o", type=Path, help="write results here (default stdout)")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress display")
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
        folders=args.folder,
        count=args.count,
        inputs=args.inputs,
        reference_prefix=args.reference_prefix,
        timeout=args.job_timeout,
    )


async def _dispatch(args: argparse.Namespace) -> int:
    requests = _requests(args)  # bad input fails before any connection
    display = ProgressDisplay(sys.stderr, live=sys.stderr.isatty(), quiet=args.quiet)
    poll = (
        PollPolicy()
        if args.list_budget is None
        else PollPolicy(list_budget_per_minute=args.list_budget)
    )
    async with connection(args) as settings:
        if not args.quiet:
            print(
                f"dispatching {len(requests)} jobs to {settings.url}",
                file=sys.stderr,
            )
        async with OrchestratorClient(
            settings, limits=DispatchLimits(max_in_flight=args.max_in_flight), poll=poll
        ) as orch:
            await _check_names(orch, requests)
            results = await orch.run_jobs(
                requests,
                timeout=args.timeout,
                stop_on_timeout=args.stop_on_timeout,
                stop_grace=args.stop_grace,
                on_progress=display.update,
            )
    display.finish()
    _write(results, args)
    summary = Summary.of(results)
    if not args.quiet:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_outcome.items()))
        print(f"{summary.total} jobs: {counts}", file=sys.stderr)
    return EXIT_OK if summary.all_successful else EXIT_FAILED


async def _check_names(orch: OrchestratorClient, requests: Sequence[JobRequest]) -> None:
    """Resolve every folder and process first: a typo is one clear error, exit 2."""
    for folder, process in sorted({(str(r.folder), r.process) for r in requests}):
        await orch.api.resolve_release(folder, process)


def _write(results: list[JobResult], args: argparse.Namespace) -> None:
    fmt = args.format or ("table" if args.output is None and sys.stdout.isatty() else "jsonl")
    if args.output is not None and args.format is None:
        fmt = "csv" if args.output.suffix.lower() == ".csv" else "jsonl"
    if args.output is None:
        write_results(results, fmt, sys.stdout)
        return
    with args.output.open("w", encoding="utf-8", newline="") as handle:
        write_results(results, fmt, handle)
