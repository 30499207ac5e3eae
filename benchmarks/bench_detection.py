"""How fast async-orch sees jobs end, on a list budget: detection lag and cost.

The issue-16 scenario: 5,000 jobs of 10-20 simulated seconds over 5 folders with
500 robot slots, played 30x faster (the tenant completes ~1,000 jobs a real
second), while the rate limit on ``GET /odata/Jobs`` stays in real time. Each
list budget (60 and 20 calls a minute by default) runs against a fresh simulator
process, the client in a process of its own (its CPU time is its own).

    python benchmarks/bench_detection.py                 # the full run, ~1 minute
    python benchmarks/bench_detection.py --short         # 600 jobs, a few seconds
    python benchmarks/bench_detection.py --budgets 20 --jobs 2000

Detection lag is, per job, the real time between its end (the simulator's
EndTime, mapped to real time) and the moment the client first learns it is final
(the ``on_state`` hook). Simulated time is ``C + real * time_scale``; C is
bounded from above by every StartJobs answer (a job is created before the client
hears of it), and the tightest bound is taken: the error is below the fastest
StartJobs round trip (about a millisecond here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_dispatch import (  # a sibling script: benchmarks/ is on sys.path
    CLIENT_ID,
    CLIENT_SECRET,
    PROCESS,
    RESULTS_DIR,
    add_workload_arguments,
    job_plan,
    machine_line,
    run_worker,
    scenario_text,
)

TARGETS = {"seen_per_second_at_20": 1000.0, "p99_lag_list_intervals": 2.0}
LIST_ROUTE = "GET /odata/Jobs"


# -- the client (run in a worker subprocess) -------------------------------------------


async def run_client(args: argparse.Namespace) -> dict[str, Any]:
    from async_orch import (
        ClientCredentials,
        Hooks,
        JobRequest,
        JobState,
        OrchestratorClient,
        PollPolicy,
        Settings,
    )

    settings = Settings(
        url=args.url,
        credentials=ClientCredentials(client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
    )
    requests = [
        JobRequest(process=PROCESS, folder=folder, inputs=inputs)
        for folder, inputs in job_plan(args)
    ]
    started: dict[int, float] = {}  # job id -> when the client heard of its creation
    seen_final: dict[int, float] = {}  # job id -> when the client first saw it final

    def on_started(index: int, handle: Any) -> None:
        started[handle.job_id] = time.time()

    def on_state(handle: Any, old: JobState | None, new: JobState) -> None:
        if new.is_terminal and handle.job_id not in seen_final:
            seen_final[handle.job_id] = time.time()

    hooks = Hooks(on_started=on_started, on_state=on_state)
    poll = PollPolicy(list_budget_per_minute=args.budget)
    if args.id_lists:
        poll = PollPolicy(list_budget_per_minute=args.budget, range_threshold=None)
    async with OrchestratorClient(settings, poll=poll) as orch:
        results = await orch.run_jobs(requests, hooks=hooks)
    jobs = []
    for r in results:
        job = r.job
        if job is None or job.creation_time is None or job.end_time is None:
            continue
        jobs.append(
            {
                "id": job.id,
                "created": job.creation_time.timestamp(),
                "ended": job.end_time.timestamp(),
                "started_heard": started.get(job.id),
                "seen_final": seen_final.get(job.id),
            }
        )
    return {
        "outcomes": dict(Counter(r.outcome.value for r in results)),
        "jobs": jobs,
    }


def worker(args: argparse.Namespace) -> None:
    """Run the client once and print its measurements as one JSON line."""
    import aiohttp  # noqa: F401  imports are not what is measured

    import async_orch._client  # noqa: F401

    wall0, cpu0 = time.perf_counter(), time.process_time()
    report = asyncio.run(run_client(args))
    report["wall_s"] = time.perf_counter() - wall0
    report["cpu_s"] = time.process_time() - cpu0
    print(json.dumps(report))


# -- the driver ---------------------------------------------------------------------------


def measure(budget: int, args: argparse.Namespace, scenario: Path) -> dict[str, Any]:
    worker = ["--worker", "--jobs", str(args.jobs), "--folders", str(args.folders)]
    worker += ["--budget", str(budget)] + (["--id-lists"] if args.id_lists else [])
    report, stats = run_worker(__file__, scenario, worker, f"budget {budget}/min")
    return summarize(budget, report, stats, args)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summarize(
    budget: int, report: dict[str, Any], stats: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    scale = args.time_scale
    jobs = [j for j in report["jobs"] if j["started_heard"] is not None]
    # Real = (simulated - C) / scale, with C = min(simulated creation - heard * scale).
    offset = min(j["created"] - j["started_heard"] * scale for j in jobs)
    ends = {j["id"]: (j["ended"] - offset) / scale for j in jobs}
    seen = {j["id"]: j["seen_final"] for j in jobs if j["seen_final"] is not None}
    lags = [seen[i] - ends[i] for i in seen]
    first_end, last_end = min(ends.values()), max(ends.values())
    last_seen = max(seen.values())
    by_route = {
        route: sum(statuses.values())
        for route, statuses in stats["requests"].items()
        if not route.startswith("POST /identity_")
    }
    total = sum(by_route.values())
    interval = 60.0 / budget
    return {
        "budget_per_minute": budget,
        "jobs": args.jobs,
        "finished": len(jobs),
        "outcomes": report["outcomes"],
        "seen_final": len(seen),
        "lag_min_s": round(min(lags), 3),
        "lag_median_s": round(statistics.median(lags), 3),
        "lag_p99_s": round(_percentile(lags, 0.99), 3),
        "lag_max_s": round(max(lags), 3),
        "lag_p99_intervals": round(_percentile(lags, 0.99) / interval, 2),
        "tenant_per_second": round(len(ends) / max(1e-9, last_end - first_end), 1),
        "seen_per_second": round(len(seen) / max(1e-9, last_seen - first_end), 1),
        "list_calls": by_route.get(LIST_ROUTE, 0),
        "requests": total,
        "requests_per_job": round(total / args.jobs, 3),
        "requests_by_route": by_route,
        "http_429": stats["rejections"].get("429", 0),
        "wall_s": round(report["wall_s"], 2),
        "cpu_s": round(report["cpu_s"], 3),
        "cpu_ms_per_job": round(1000 * report["cpu_s"] / args.jobs, 3),
    }


ROWS = [
    ("jobs finished", "finished"),
    ("seen final by the hook", "seen_final"),
    ("detection lag median (s)", "lag_median_s"),
    ("detection lag p99 (s)", "lag_p99_s"),
    ("detection lag max (s)", "lag_max_s"),
    ("p99 lag in list intervals", "lag_p99_intervals"),
    ("tenant completions / s", "tenant_per_second"),
    ("completions seen / s", "seen_per_second"),
    ("list calls", "list_calls"),
    ("HTTP requests", "requests"),
    ("requests per job", "requests_per_job"),
    ("429 answers", "http_429"),
    ("wall time (s)", "wall_s"),
    ("client CPU (s)", "cpu_s"),
    ("client CPU per job (ms)", "cpu_ms_per_job"),
]


def table(runs: list[dict[str, Any]]) -> str:
    width = max(len(label) for label, _ in ROWS) + 2
    header = "list budget / min".ljust(width) + "".join(
        str(r["budget_per_minute"]).rjust(12) for r in runs
    )
    lines = [header, "-" * len(header)]
    for label, key in ROWS:
        lines.append(label.ljust(width) + "".join(str(r[key]).rjust(12) for r in runs))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_arguments(
        parser, jobs=5000, folders=5, capacity=100, duration=(10.0, 20.0), time_scale=30.0
    )
    parser.add_argument(
        "--budgets", type=int, nargs="+", default=[60, 20], help="list calls a minute to try"
    )
    parser.add_argument(
        "--short", action="store_true", help="600 jobs over 3 folders: a quick check"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        help="directory for the JSON document (default: benchmarks/results)",
    )
    parser.add_argument(
        "--id-lists",
        action="store_true",
        help="watch by id lists only (Id in (...), 90 ids a call), as before range queries",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.short:
        args.jobs, args.folders, args.capacity = 600, 3, 60
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args)
        return
    args.results.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "bench.toml"
        scenario.write_text(scenario_text(args))
        runs = [measure(budget, args, scenario) for budget in args.budgets]
    print(table(runs))
    machine = machine_line()
    print(machine)
    document = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "url", "results")},
        "machine": machine,
        "targets": TARGETS,
        "runs": runs,
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results / f"bench-detection-{stamp}.json"
    path.write_text(json.dumps(document, indent=2))
    print(f"written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
