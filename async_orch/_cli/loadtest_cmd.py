"""`async-orch loadtest`: drive a tenant (or the simulator) with a load profile.

Against anything but the simulator it starts real jobs, so it insists on
``--yes-start-real-jobs`` and a ``--max-jobs`` cap. The folders and the process
are resolved before any job starts (a typo is one line and exit 2, as for
``dispatch``). Ctrl-C stops asking for jobs (and, with ``--stop-jobs``, stops those
started) and still writes the report; a second Ctrl-C abandons at once.

Exit codes (see :func:`exit_code`): 0 the run is complete (every planned job
started and ended, whatever its final state), 1 it is not (see
:func:`~async_orch.loadtest.shortfalls`), 2 usage or configuration error, 130
interrupted. The report is written in every case but 2 and an abandoned run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import anyio

from async_orch._cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    configure_logging,
    list_budget,
    non_negative,
    positive,
    positive_int,
    run_command,
)
from async_orch._cli.output import check_writable, write_private_text
from async_orch._config import Settings
from async_orch._errors import ConfigurationError
from async_orch._planner import PollPolicy
from async_orch.loadtest import (
    JobTemplate,
    LiveStatus,
    LoadPlan,
    LoadTest,
    Target,
    check_names,
    embedded_simulator,
    live_line,
    parse_profile,
    render_html,
    run_and_report,
    shortfalls,
    url_target,
)

__all__ = ["add_parser", "check_safety", "exit_code", "run"]

CONFIRM_FLAG = "--yes-start-real-jobs"

EXAMPLES = f"""\
profiles:
  constant:RATE:SECONDS         e.g. constant:5:60  (5 jobs/s for a minute: 300 jobs)
  ramp:FROM:TO:SECONDS          e.g. ramp:1:20:120
  steps:RATExSECONDS,...        e.g. steps:2x30,5x30,10x30

connection:
  --simulator, or --url (default $UIPATH_URL) with credentials from the environment
  (UIPATH_CLIENT_ID, UIPATH_CLIENT_SECRET, ...): no connection profiles or --config
  here. (--load-profile was --profile before; that name still works, with a warning.)

exit codes:
  0    complete: every planned job started and ended (Successful, Faulted or Stopped)
  1    incomplete: jobs not started, or not ended by the drain timeout (see stderr)
  2    usage or configuration error (unknown folder or process, unreachable URL, ...)
  130  interrupted (Ctrl-C)
  The report is written for 0, 1 and 130.

examples:
  async-orch loadtest --simulator --time-scale 30 --fault throttle_rate=0.02 \\
      --process Echo --folder Shared --folder HR --load-profile ramp:1:10:60
  async-orch loadtest --url https://cloud.uipath.com/ORG/TENANT/orchestrator_ \\
      --process Smoke --folder Load --load-profile constant:1:60 --max-jobs 60 {CONFIRM_FLAG}
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "loadtest",
        usage="%(prog)s (--simulator | --url URL) --process NAME --folder PATH... "
        "[--load-profile SPEC] [options]",
        help="start jobs at a planned rate and report latency, throughput and errors",
        description="Start jobs at a planned rate (constant, ramp or steps), watch them, "
        "and write a self-contained HTML report (charts) and its JSON.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    jobs = parser.add_argument_group("jobs")
    jobs.add_argument("--process", required=True, help="process name as shown in Orchestrator")
    jobs.add_argument(
        "--folder", action="append", required=True, help="folder path (repeat: round-robin)"
    )
    jobs.add_argument(
        "--inputs",
        help='inputs template, JSON; {n} and {folder} are replaced, e.g. \'{"id": "{n}"}\'',
    )
    jobs.add_argument("--reference-prefix", help="References are PREFIX-n (default: loadtest-TIME)")
    load = parser.add_argument_group("load")
    load.add_argument(
        "--load-profile",
        metavar="SPEC",
        help="the load: how many jobs a second, for how long (see below; default constant:2:30)",
    )
    # The old name, kept working with a warning: everywhere else --profile names
    # a connection profile.
    load.add_argument("--profile", dest="old_profile_flag", help=argparse.SUPPRESS)
    load.add_argument("--max-jobs", type=int, help="never ask for more jobs than this")
    load.add_argument(
        "--max-in-flight", type=positive_int, default=64, help="StartJobs calls at once"
    )
    load.add_argument(
        "--drain-timeout",
        type=non_negative,
        default=300.0,
        help="seconds after the profile's end to wait for jobs to end (default 300)",
    )
    load.add_argument(
        "--stop-jobs",
        action="store_true",
        help="stop the jobs still running when interrupted or at the drain timeout",
    )
    load.add_argument(
        "--list-budget",
        type=list_budget,
        help="GET Jobs list calls a minute, 1 to 100 or 0 (default 60)",
    )
    target = parser.add_argument_group("target")
    target.add_argument("--simulator", action="store_true", help="an embedded simulator")
    target.add_argument("--scenario", help="with --simulator: a scenario TOML file (default demo)")
    target.add_argument(
        "--time-scale", type=positive, help="with --simulator: simulated s per real s"
    )
    target.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --simulator: a fault setting, e.g. throttle_rate=0.05 (repeat)",
    )
    target.add_argument("--url", help="Orchestrator URL (default $UIPATH_URL); a simulator's works")
    target.add_argument(
        CONFIRM_FLAG,
        dest="confirm_real",
        action="store_true",
        help="needed to run against a real tenant (with --max-jobs)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--report", type=Path, default=Path("loadtest-report.html"), help="HTML report path"
    )
    out.add_argument("--json", type=Path, help="JSON path (default: the report's, .json)")
    out.add_argument("--quiet", "-q", action="store_true", help="no live progress")
    out.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")


def run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    return run_command(lambda: _loadtest(args))


def _load_profile(args: argparse.Namespace) -> str:
    """--load-profile, or the deprecated --profile (said once on stderr)."""
    if args.old_profile_flag is not None:
        if args.load_profile is not None:
            raise ConfigurationError("give the load profile once, with --load-profile")
        print(
            "warning: loadtest --profile is now --load-profile (--profile names a "
            "connection profile in the other commands); the old name will go",
            file=sys.stderr,
        )
        return str(args.old_profile_flag)
    return str(args.load_profile or "constant:2:30")


def check_safety(*, is_simulator: bool, confirmed: bool, max_jobs: int | None) -> None:
    """Refuse to start real jobs without an explicit confirmation and a cap."""
    if is_simulator:
        return
    missing = []
    if not confirmed:
        missing.append(CONFIRM_FLAG)
    if max_jobs is None:
        missing.append("--max-jobs N")
    if missing:
        raise ConfigurationError(
            "this is not the simulator: a load test starts real jobs on it. Say so with "
            + " and ".join(missing)
            + " (or use --simulator)."
        )


def exit_code(report: Mapping[str, Any]) -> int:
    """130 for an interrupted run, 1 for one with shortfalls (jobs not started, not
    ended by the drain timeout, ...: :func:`~async_orch.loadtest.shortfalls`), else 0.

    Faulted jobs and HTTP errors do not fail the run: they are what a load test
    measures, and the report shows them.
    """
    if report["meta"].get("interrupted"):
        return EXIT_INTERRUPTED
    return EXIT_FAILED if shortfalls(report) else EXIT_OK


def _plan(args: argparse.Namespace) -> LoadPlan:
    if args.max_jobs is not None and args.max_jobs < 1:
        raise ConfigurationError("--max-jobs must be at least 1")
    inputs: Any = None
    if args.inputs:
        try:
            inputs = json.loads(args.inputs)
        except ValueError as exc:
            raise ConfigurationError(f"--inputs is not valid JSON: {exc}") from None
        if not isinstance(inputs, dict):
            raise ConfigurationError('--inputs must be a JSON object, e.g. \'{"id": "{n}"}\'')
    prefix = args.reference_prefix or "loadtest-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    profile = parse_profile(_load_profile(args))
    if (problem := profile.too_many_jobs(args.max_jobs, bound_with="--max-jobs N")) is not None:
        raise ConfigurationError(problem)
    return LoadPlan(
        profile=profile,
        template=JobTemplate(
            process=args.process, folders=args.folder, inputs=inputs, reference_prefix=prefix
        ),
        max_jobs=args.max_jobs,
        max_in_flight=args.max_in_flight,
        poll=None
        if args.list_budget is None
        else PollPolicy(list_budget_per_minute=args.list_budget),
        drain_timeout=args.drain_timeout,
        stop_jobs=args.stop_jobs,
    )


def _faults(assignments: list[str]) -> dict[str, Any]:
    from async_orch.simulator.faults import parse_fault_assignment

    return dict(parse_fault_assignment(a) for a in assignments)


@asynccontextmanager
async def _target(args: argparse.Namespace) -> AsyncIterator[Target]:
    if args.simulator:
        if args.url:
            raise ConfigurationError("give either --simulator or --url, not both")
        async with embedded_simulator(
            scenario=args.scenario, time_scale=args.time_scale, faults=_faults(args.fault) or None
        ) as target:
            yield target
        return
    if args.scenario or args.fault or args.time_scale is not None:
        raise ConfigurationError(
            "--scenario, --fault and --time-scale apply to --simulator only "
            "(set faults of a running simulator with POST /_simulator/faults)"
        )
    overrides = {"url": args.url} if args.url else {}
    yield await url_target(Settings.from_env(dict(os.environ), **overrides))


class _Progress:
    """The live line: redrawn in place on a terminal, every 5 s otherwise."""

    def __init__(self, stream: TextIO, *, quiet: bool) -> None:
        self._stream = stream
        self._quiet = quiet
        self._live = stream.isatty()
        self._ticks = 0

    def __call__(self, status: LiveStatus) -> None:
        self._ticks += 1
        if self._quiet or (not self._live and self._ticks % 5):
            return
        line = live_line(status)
        self._stream.write("\r\x1b[K" + line if self._live else line + "\n")
        self._stream.flush()

    def finish(self) -> None:
        if self._live and not self._quiet:
            self._stream.write("\n")
            self._stream.flush()


async def _on_signals(test: LoadTest, abandon: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for _ in signals:
            count += 1
            if count == 1:
                what = "stopping the jobs started" if test.plan.stop_jobs else "jobs left running"
                print(
                    f"\ninterrupted: no more jobs will be asked for ({what}); "
                    "writing the report. Ctrl-C again to abandon.",
                    file=sys.stderr,
                )
                test.interrupt()
            else:
                abandon.cancel()


async def _loadtest(args: argparse.Namespace) -> int:
    plan = _plan(args)  # bad input fails before any connection
    json_path = args.json or args.report.with_suffix(".json")
    # Both are written at the end: a bad path must fail before any job starts.
    check_writable(args.report, flag="--report")
    if json_path.resolve() == args.report.resolve():
        raise ConfigurationError(
            f"--report {args.report} and its JSON would be the same file; name the report "
            "*.html or give --json PATH"
        )
    check_writable(json_path, flag="--json")
    progress = _Progress(sys.stderr, quiet=args.quiet)
    async with _target(args) as target:
        check_safety(
            is_simulator=target.is_simulator, confirmed=args.confirm_real, max_jobs=args.max_jobs
        )
        # A typo, bad credentials or an unreachable URL: one clear error (exit 2)
        # before any job starts.
        await check_names(target.settings, plan.template)
        planned = len(plan.start_times())
        if not args.quiet:
            print(
                f"load test on {target.description}: {plan.profile.describe()}, "
                f"{planned} jobs of {plan.template.process} in {', '.join(plan.template.folders)}",
                file=sys.stderr,
            )
        test = LoadTest(target.settings, plan, on_status=progress)
        report: dict[str, Any] | None = None
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_on_signals, test, tasks.cancel_scope)
            report = await run_and_report(target, test)
            tasks.cancel_scope.cancel()
    progress.finish()
    if report is None:
        print("abandoned: no report written", file=sys.stderr)
        return EXIT_INTERRUPTED
    unwritten = [
        f"{path} ({exc.strerror or exc})"
        for path, text in (
            (args.report, render_html(report)),
            (json_path, json.dumps(report, indent=2, default=str) + "\n"),
        )
        if (exc := _write_report(path, text)) is not None
    ]
    if unwritten:
        print(
            f"error: the load test ran, but its report could not be written to "
            f"{' and '.join(unwritten)}; run it again with another --report (and --json)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    _print_summary(report, args.report, json_path)
    code = exit_code(report)
    if code == EXIT_FAILED:
        print("load test incomplete: " + "; ".join(report["shortfalls"]), file=sys.stderr)
    return code


def _write_report(path: Path, text: str) -> OSError | None:
    """Write a report file (0600: it holds job data); the error if it could not be."""
    try:
        write_private_text(path, text)
    except OSError as exc:
        return exc
    return None


def _print_summary(report: dict[str, Any], html: Path, json_path: Path) -> None:
    jobs, sj = report["jobs"], report["start_jobs"]
    latency = sj["latency_seconds"] or {}
    p = {k: f"{latency[k] * 1000:.0f} ms" if k in latency else "-" for k in ("p50", "p95", "p99")}
    outcomes = ", ".join(f"{k} {v}" for k, v in jobs["by_outcome"].items()) or "none"
    print(
        f"{jobs['started']}/{jobs['planned']} jobs started in {report['duration_seconds']:.1f} s "
        f"({outcomes}); StartJobs p50 {p['p50']}, p95 {p['p95']}, p99 {p['p99']}; "
        f"{report['http']['requests']} requests, {report['http']['http_429']} x 429, "
        f"error rate {report['http']['error_rate'] * 100:.2f} %"
    )
    if "agreement" in report:
        differs = [c["name"] for c in report["agreement"] if not c["equal"]]
        print(
            "simulator counters: "
            + ("all agree" if not differs else "differ on " + ", ".join(differs))
        )
    print(f"report: {html}\njson:   {json_path}")
