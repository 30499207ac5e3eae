"""How fast async-orch sees jobs end, on a list budget: detection lag and cost.

The issue-16 scenario: 5,000 jobs of 10-20 simulated seconds over 5 folders with
500 robot slots, a freed slot taken at once by the next Pending job, played 30x
faster (the tenant completes ~1,000 jobs a real second), while the rate limit on
``GET /odata/Jobs`` stays in real time. Each list budget (60 and 20 calls a minute
by default) runs against a fresh simulator process, the client in a process of its
own (its CPU time is its own).

    python benchmarks/bench_detection.py                 # the full run, ~1 minute
    python benchmarks/bench_detection.py --short         # 600 jobs, a few seconds
    python benchmarks/bench_detection.py --budgets 20 --jobs 2000
    python benchmarks/bench_detection.py --push-modes push --drop 0 0.1 0.3

Each budget runs twice by default: polling alone, then with webhooks (``--push-modes``).
With webhooks, the client serves a :class:`~async_orch.WebhookReceiver` on
127.0.0.1:<free port> and subscribes it (``POST /odata/Webhooks``) to the job-end
events, and the simulator loses a share ``--drop`` of the deliveries (10 % by default:
webhooks are not stored or retried, orchestrator-api.md §8), so polling must still
find the jobs whose event was lost.

Detection lag is, per job, the real time between its end (the simulator's
EndTime, mapped to real time) and the moment the client first learns it is final
(the ``on_state`` hook, which a webhook event reaches only through the read by
id that confirms it). Simulated time is ``C + real * time_scale``; each StartJobs
answer bounds C from below (a job is created before the client hears of it:
``CreationTime - heard * time_scale <= C``), and the largest bound is taken, so
lags are under-stated by at most the fastest StartJobs round trip (about a
millisecond here). (The smallest bound was taken before: lags were under-stated
by the slowest round trip, some tens of milliseconds.)
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
from contextlib import AsyncExitStack
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

TARGETS = {
    "seen_per_second_at_20": 1000.0,
    "p99_lag_list_intervals": 2.0,  # polling alone
    "p99_lag_s_with_webhooks": 1.0,  # and none lost when 10 % of them are dropped
}
LIST_ROUTE = "GET /odata/Jobs"
WEBHOOK_SECRET = "bench-webhook-secret"
# The events that say a job ended (docs.uipath.com "Types of events"); the
# benchmark does not ask for job.started, which it would not use.
END_EVENTS = ("job.completed", "job.faulted", "job.stopped")


# -- webhooks -----------------------------------------------------------------------------


def push_scenario(text: str, drop: float) -> str:
    """``text`` (an echo-tenant scenario) with the OR.Webhooks scope for the client and
    ``drop`` of the webhook deliveries lost (the simulator's webhook_drop_rate fault)."""
    scopes = '"OR.Jobs"]'
    if scopes not in text:
        raise RuntimeError("the scenario's scopes changed: update push_scenario")
    text = text.replace(scopes, '"OR.Jobs", "OR.Webhooks"]', 1)
    return f"{text}\n[faults]\nwebhook_drop_rate = {drop}\n"


def detection_scenario(args: argparse.Namespace) -> str:
    """The echo tenant of bench_dispatch, with robots picking up a job as soon as a slot
    frees (``pickup_delay = 0``). The simulator's default waits 2 simulated seconds, an
    assumption (the service's pickup latency is not documented): at 30x and 10 waves a
    slot it held every slot idle 67 ms a wave, and the tenant completed ~865 jobs a real
    second instead of the scenario's ~1,000. Immediate pickup is the neutral model."""
    return f"{scenario_text(args)}\n[engine]\npickup_delay = 0\n"


async def subscribe_webhook(url: str, target: str) -> None:
    """Subscribe ``target`` to the job-end events of the tenant at ``url``."""
    import aiohttp

    root = url.split("/bench/")[0]
    form = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": "OR.Webhooks",
    }
    dto = {
        "Name": "bench-detection",
        "Url": target,
        "Secret": WEBHOOK_SECRET,
        "Enabled": True,
        "SubscribeToAllEvents": False,
        "AllowInsecureSsl": False,
        "Events": [{"EventType": kind} for kind in END_EVENTS],
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{root}/identity_/connect/token", data=form) as response:
            response.raise_for_status()
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{url}/odata/Webhooks", json=dto, headers=headers) as response:
            if response.status != 201:
                raise RuntimeError(
                    f"POST /odata/Webhooks: {response.status} {await response.text()}"
                )


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
        WebhookReceiver,
    )
    from async_orch._cli.webhook_server import serve_webhooks

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
    receiver = WebhookReceiver(WEBHOOK_SECRET) if args.push else None
    event_heard: dict[int, float] = {}  # job id -> when its end event was accepted
    event_sent: dict[int, float] = {}  # job id -> its end event's Timestamp

    def on_event(event: Any) -> None:
        event_heard.setdefault(event.job_id, time.time())
        event_sent.setdefault(event.job_id, event.timestamp.timestamp())

    if receiver is not None:
        receiver.subscribe(on_event)
    async with AsyncExitStack() as stack:
        if receiver is not None:
            target = await stack.enter_async_context(serve_webhooks(receiver, "127.0.0.1", 0))
            await subscribe_webhook(args.url, target)
        orch = await stack.enter_async_context(
            OrchestratorClient(settings, poll=poll, webhooks=receiver)
        )
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
                "event_heard": event_heard.get(job.id),
                "event_sent": event_sent.get(job.id),
            }
        )
    return {
        "outcomes": dict(Counter(r.outcome.value for r in results)),
        "jobs": jobs,
        "webhooks": dict(receiver.counts) if receiver is not None else None,
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


def measure(
    budget: int, drop: float | None, args: argparse.Namespace, scenario: Path
) -> dict[str, Any]:
    """One run at ``budget`` list calls a minute; with webhooks unless ``drop`` is None
    (then the share of them lost)."""
    worker = ["--worker", "--jobs", str(args.jobs), "--folders", str(args.folders)]
    worker += ["--budget", str(budget)] + (["--id-lists"] if args.id_lists else [])
    worker += ["--push"] if drop is not None else []
    label = f"budget {budget}/min"
    if drop is not None:
        label += f", webhooks ({drop:.0%} dropped)"
    report, stats = run_worker(__file__, scenario, worker, label)
    return summarize(budget, drop, report, stats, args)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def sustained_rate(times: list[float]) -> float:
    """Events a second between the 10th and the 90th percentile of ``times``: the
    pace while the batch runs at full speed, without its ramp up and its tail."""
    ordered = sorted(times)
    low, high = ordered[len(ordered) // 10], ordered[(len(ordered) * 9) // 10]
    return round(0.8 * len(ordered) / max(1e-9, high - low), 1)


def _lag_figures(prefix: str, lags: list[float]) -> dict[str, Any]:
    if not lags:
        return {f"{prefix}_count": 0, f"{prefix}_median_s": None, f"{prefix}_p99_s": None}
    return {
        f"{prefix}_count": len(lags),
        f"{prefix}_median_s": round(statistics.median(lags), 3),
        f"{prefix}_p99_s": round(_percentile(lags, 0.99), 3),
    }


def summarize(
    budget: int,
    drop: float | None,
    report: dict[str, Any],
    stats: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    scale = args.time_scale
    jobs = [j for j in report["jobs"] if j["started_heard"] is not None]
    # Real = (simulated - C) / scale, with C >= simulated creation - heard * scale.
    offset = max(j["created"] - j["started_heard"] * scale for j in jobs)
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
    # With webhooks: the jobs whose end event arrived, and those polling had to find
    # (their event was lost, or came after polling had seen the job).
    heard = {j["id"]: j["event_heard"] for j in jobs if j.get("event_heard") is not None}
    pushed = [seen[i] - ends[i] for i in seen if i in heard and heard[i] <= seen[i]]
    polled = [seen[i] - ends[i] for i in seen if i not in heard]
    push_figures: dict[str, Any] = {}
    if drop is not None:
        push_figures = {
            "webhook_drop_rate": drop,
            "webhooks_dropped": stats["faults"].get("webhook_drop", 0),
            "receiver_counts": report["webhooks"],
            # end -> event accepted by the receiver, and accepted -> seen final
            **_lag_figures("event_delivery", [heard[i] - ends[i] for i in heard if i in ends]),
            **_lag_figures("event_to_seen", [seen[i] - heard[i] for i in heard if i in seen]),
            **_lag_figures("lag_pushed", pushed),
            **_lag_figures("lag_no_event", polled),
        }
    return {
        "budget_per_minute": budget,
        "webhooks": drop is not None,
        "jobs": args.jobs,
        "finished": len(jobs),
        "outcomes": report["outcomes"],
        "seen_final": len(seen),
        "all_seen_final": len(jobs) == args.jobs and len(seen) == args.jobs,
        "lag_min_s": round(min(lags), 3),
        "lag_median_s": round(statistics.median(lags), 3),
        "lag_p99_s": round(_percentile(lags, 0.99), 3),
        "lag_max_s": round(max(lags), 3),
        "lag_median_intervals": round(statistics.median(lags) / interval, 2),
        "lag_p99_intervals": round(_percentile(lags, 0.99) / interval, 2),
        "tenant_per_second": round(len(ends) / max(1e-9, last_end - first_end), 1),
        "seen_per_second": round(len(seen) / max(1e-9, last_seen - first_end), 1),
        "tenant_sustained_per_second": sustained_rate(list(ends.values())),
        "seen_sustained_per_second": sustained_rate(list(seen.values())),
        "list_calls": by_route.get(LIST_ROUTE, 0),
        "requests": total,
        "requests_per_job": round(total / args.jobs, 3),
        "requests_by_route": by_route,
        "http_429": stats["rejections"].get("429", 0),
        "wall_s": round(report["wall_s"], 2),
        "cpu_s": round(report["cpu_s"], 3),
        "cpu_ms_per_job": round(1000 * report["cpu_s"] / args.jobs, 3),
        **push_figures,
    }


ROWS = [
    ("jobs finished", "finished"),
    ("seen final by the hook", "seen_final"),
    ("all seen final (none lost)", "all_seen_final"),
    ("detection lag median (s)", "lag_median_s"),
    ("detection lag p99 (s)", "lag_p99_s"),
    ("detection lag max (s)", "lag_max_s"),
    ("median lag in list intervals", "lag_median_intervals"),
    ("p99 lag in list intervals", "lag_p99_intervals"),
    ("tenant completions / s", "tenant_per_second"),
    ("completions seen / s", "seen_per_second"),
    ("tenant completions / s, 10-90 %", "tenant_sustained_per_second"),
    ("completions seen / s, 10-90 %", "seen_sustained_per_second"),
    ("list calls", "list_calls"),
    ("HTTP requests", "requests"),
    ("requests per job", "requests_per_job"),
    ("429 answers", "http_429"),
    ("wall time (s)", "wall_s"),
    ("client CPU (s)", "cpu_s"),
    ("client CPU per job (ms)", "cpu_ms_per_job"),
]
PUSH_ROWS = [
    ("webhooks dropped", "webhooks_dropped"),
    ("jobs seen after their event", "lag_pushed_count"),
    ("  their lag median (s)", "lag_pushed_median_s"),
    ("  their lag p99 (s)", "lag_pushed_p99_s"),
    ("jobs found by polling", "lag_no_event_count"),
    ("  their lag median (s)", "lag_no_event_median_s"),
    ("  their lag p99 (s)", "lag_no_event_p99_s"),
    ("event delivery p99 (s)", "event_delivery_p99_s"),
    ("event -> seen p99 (s)", "event_to_seen_p99_s"),
]


def table(runs: list[dict[str, Any]]) -> str:
    rows = ROWS + (PUSH_ROWS if any(r["webhooks"] for r in runs) else [])
    width = max(len(label) for label, _ in rows) + 2
    pushed = ["no" if not r["webhooks"] else f"{r['webhook_drop_rate']:.0%} lost" for r in runs]
    lines = [
        "list budget / min".ljust(width) + "".join(_cell(r["budget_per_minute"]) for r in runs),
        "webhooks".ljust(width) + "".join(_cell(label) for label in pushed),
    ]
    lines.append("-" * len(lines[0]))
    for label, key in rows:
        lines.append(label.ljust(width) + "".join(_cell(r.get(key, "")) for r in runs))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        value = "yes" if value else "no"
    return str("" if value is None else value).rjust(12)


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
    parser.add_argument(
        "--push-modes",
        nargs="+",
        choices=["poll", "push"],
        default=["poll", "push"],
        help="polling alone, with webhooks, or both (the default)",
    )
    parser.add_argument(
        "--drop",
        type=float,
        nargs="+",
        default=[0.1],
        help="share of webhook deliveries the simulator loses, one run each (default 0.1)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--push", action="store_true", help=argparse.SUPPRESS)
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
        plain = Path(tmp) / "bench.toml"
        plain.write_text(detection_scenario(args))
        pushing = {}
        for drop in args.drop:
            pushing[drop] = Path(tmp) / f"bench-push-{drop}.toml"
            pushing[drop].write_text(push_scenario(detection_scenario(args), drop))
        drops: list[float | None] = [None] if "poll" in args.push_modes else []
        drops += list(args.drop) if "push" in args.push_modes else []
        runs = [
            measure(budget, drop, args, plain if drop is None else pushing[drop])
            for budget in args.budgets
            for drop in drops
        ]
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
