"""Compare async-orch with what users write or use today, on the same simulator.

One command::

    python benchmarks/compare_peers.py            # sizes 100, 1000, 5000; about 7 minutes

Clients (each in its own process, so its CPU seconds and peak RSS are its own):

* ``sequential-requests``: ``requests``, start a job, poll it to the end, then the next
  (the users' reports).
* ``threaded-requests``: a pool of 32 threads, each starting and polling its own job
  with ``GET /odata/Jobs({id})``.
* ``threaded-requests-list``: the same, polling with ``GET /odata/Jobs?$filter=Id eq N``
  (the rate-limited list), as many scripts do.
* ``uipath-sdk``: the official ``uipath-platform`` SDK, ``processes.invoke_async`` then
  ``jobs.retrieve_async`` polling, all jobs under ``asyncio.gather``.
* ``async-orch``: ``OrchestratorClient.run_jobs`` with its defaults.

Every (client, size) case gets a fresh simulator process (the scenario this script
writes: four folders, 400 robots each, jobs of 30-90 simulated seconds played 30x
faster), so the simulator's counters are the case's. A case has a time limit; a
client that does not finish in time is reported with how many jobs it finished,
and its larger sizes are not run (they could only take longer). Peers poll every
second (real time); the tenant's rate limit (100 list calls a minute) is real time too.

Needs ``requests`` and ``uipath-platform`` next to async-orch (see docs/benchmarks.md);
a client whose package is missing is reported as not run, with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The simulator's admin API wants a token: this script chooses it (the simulator
# reads it from ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN) and sends it to read the stats.
ADMIN_TOKEN = secrets.token_urlsafe(24)


def _admin_request(url: str) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


HERE = Path(__file__).resolve().parent

#: client name -> (peer module, extra arguments, the package it needs)
CLIENTS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "sequential-requests": ("peers.sequential_requests", (), "requests"),
    "threaded-requests": ("peers.threaded_requests", (), "requests"),
    "threaded-requests-list": ("peers.threaded_requests", ("--poll-list",), "requests"),
    "uipath-sdk": ("peers.uipath_sdk", (), "uipath.platform"),
    "async-orch": ("peers.async_orch_peer", (), None),
}

SCENARIO = """\
# Written by benchmarks/compare_peers.py: one tenant, four folders, plenty of robots.
seed = 7
time_scale = {time_scale}

[engine]
pickup_delay = 2.0

[[tenants]]
organization = "bench"
name = "DefaultTenant"

[tenants.rate_limit]
jobs_list = 100
window_seconds = 60

[[tenants.credentials]]
client_id = "bench-client"
client_secret = "bench-secret"
scopes = ["OR.Jobs", "OR.Folders.Read", "OR.Execution.Read", "OR.Execution"]

[[tenants.processes]]
name = "InvoiceProcessing"
duration = [30, 90]
fault_rate = 0.0
outputs = "echo"
{folders}
"""

FOLDERS = ("Shared", "Finance", "HR", "Sales")


def scenario_text(time_scale: float, capacity: int) -> str:
    folders = "".join(
        f'\n[[tenants.folders]]\npath = "{path}"\ncapacity = {capacity}\nrobots = 5\n'
        for path in FOLDERS
    )
    return SCENARIO.format(time_scale=time_scale, folders=folders)


# -- results ------------------------------------------------------------------------------


@dataclass(slots=True)
class CaseResult:
    """One (client, size) case: what the client said, and what we measured around it."""

    client: str
    size: int
    status: str  # "finished", "deadline", "failed", "skipped", "not run"
    reason: str = ""
    wall_seconds: float | None = None
    done: int = 0
    started: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float | None = None
    startup_cpu_seconds: float | None = None
    peak_rss_mb: float | None = None
    requests: int = 0
    requests_by_route: dict[str, dict[str, int]] = field(default_factory=dict)
    http_429: int = 0
    jobs_created: int = 0
    server_cpu_seconds: float | None = None

    @property
    def requests_per_job(self) -> float | None:
        return self.requests / self.jobs_created if self.jobs_created else None


def count_requests(stats: dict[str, Any]) -> tuple[int, int]:
    """Total requests and 429 answers in a simulator's stats."""
    routes: dict[str, dict[str, int]] = stats.get("requests", {})
    total = sum(sum(statuses.values()) for statuses in routes.values())
    throttled = sum(statuses.get("429", 0) for statuses in routes.values())
    return total, throttled


def outcome_text(case: CaseResult, time_limit: float) -> str:
    """The result column: finished, or why not."""
    if case.status == "finished":
        lost = sum(case.errors.values())
        return "finished" + (f", {lost} lost" if lost else "")
    if case.status == "deadline":
        return f"did not finish in {time_limit:g} s ({case.done} done)"
    return f"{case.status}: {case.reason}" if case.reason else case.status


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(cases: Sequence[CaseResult], time_limit: float) -> str:
    """The results as a Markdown table (also readable as plain text)."""
    head = (
        "| client | jobs | result | wall s | requests/job | 429s | client CPU s "
        "| peak RSS MB | server CPU s |\n"
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    rows = []
    for case in cases:
        rows.append(
            f"| {case.client} | {case.size} | {outcome_text(case, time_limit)} "
            f"| {_fmt(case.wall_seconds)} | {_fmt(case.requests_per_job, 2)} "
            f"| {case.http_429 if case.jobs_created or case.requests else '-'} "
            f"| {_fmt(case.cpu_seconds, 2)} | {_fmt(case.peak_rss_mb, 0)} "
            f"| {_fmt(case.server_cpu_seconds, 2)} |"
        )
    return head + "\n".join(rows) + "\n"


# -- processes ------------------------------------------------------------------------------


@dataclass(slots=True)
class Simulator:
    process: subprocess.Popen[str]
    url: str

    @property
    def root(self) -> str:
        return self.url.split("/bench/", 1)[0]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(
            _admin_request(f"{self.root}/_simulator/stats"), timeout=30
        ) as response:
            data: dict[str, Any] = json.load(response)
            return data

    def stop(self) -> float | None:
        """Stop the simulator; return its CPU seconds."""
        self.process.send_signal(signal.SIGINT)
        return _reap(self.process, timeout=15)[0]


def _reap(process: subprocess.Popen[str], *, timeout: float) -> tuple[float | None, float | None]:
    """Wait for a child (killing it after *timeout*); return its CPU seconds and peak RSS MB."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime
            return cpu, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
        if time.monotonic() > deadline:
            process.kill()
            deadline = time.monotonic() + 10
        time.sleep(0.05)


def start_simulator(scenario: Path, env: dict[str, str]) -> Simulator:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "async_orch",
            "simulator",
            "--port",
            "0",
            "--scenario",
            str(scenario),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**env, "ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    if not ready:
        process.kill()
        raise RuntimeError("the simulator did not print its URL within 30 s")
    url = process.stdout.readline().strip()
    if not url.startswith("http"):
        process.kill()
        raise RuntimeError(f"the simulator printed {url!r} instead of its URL")
    return Simulator(process, url)


def run_case(
    client: str, size: int, *, scenario: Path, time_limit: float, poll_interval: float
) -> CaseResult:
    module, extra, _ = CLIENTS[client]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    sim = start_simulator(scenario, env)
    case = CaseResult(client=client, size=size, status="failed")
    try:
        args = [
            sys.executable, "-m", module, *extra,
            "--url", sim.url, "--token-url", f"{sim.root}/identity_/connect/token",
            "--client-id", "bench-client", "--client-secret", "bench-secret",
            "--process", "InvoiceProcessing", "--count", str(size),
            "--deadline", str(time_limit), "--poll-interval", str(poll_interval),
        ]  # fmt: skip
        for folder in FOLDERS:
            args += ["--folder", folder]
        peer = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        # The peer stops itself at the deadline; the margin covers its start-up and
        # the jobs in flight at that moment.
        cpu, rss = _reap(peer, timeout=time_limit + 60)
        out = peer.stdout.read() if peer.stdout else ""
        err = peer.stderr.read() if peer.stderr else ""
        case.cpu_seconds, case.peak_rss_mb = cpu, rss
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if peer.returncode != 0 or not lines:
            killed = (
                f"killed {time_limit + 60:g} s after its start" if peer.returncode == -9 else ""
            )
            last = err.strip().splitlines() or [killed or f"exit code {peer.returncode}"]
            case.reason = last[-1][:200]
        else:
            reported = json.loads(lines[-1])
            case.status = "finished" if reported["finished"] else "deadline"
            if not reported["finished"] and not reported["note"].startswith("deadline"):
                case.status = "failed"
                case.reason = "jobs lost: " + ", ".join(
                    f"{n} {kind}" for kind, n in sorted(reported["errors"].items())
                )
            case.wall_seconds = reported["wall_seconds"]
            case.done = reported["done"]
            case.started = reported["started"]
            case.by_state = reported["by_state"]
            case.errors = reported["errors"]
            case.startup_cpu_seconds = reported["startup_cpu_seconds"]
            if reported["note"] not in ("", "deadline"):
                case.reason = reported["note"]
        stats = sim.stats()
        case.requests, case.http_429 = count_requests(stats)
        case.requests_by_route = stats.get("requests", {})
        case.jobs_created = int(stats.get("jobs", {}).get("created", 0))
    finally:
        case.server_cpu_seconds = sim.stop()
    return case


def missing_package(client: str) -> str | None:
    needed = CLIENTS[client][2]
    if needed is None:
        return None
    try:
        found = importlib.util.find_spec(needed) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"package {needed.split('.')[0]!r} is not installed"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="100,1000,5000", help="job counts (default 100,1000,5000)"
    )
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated clients")
    parser.add_argument(
        "--time-limit", type=float, default=75.0, help="seconds per case (default 75)"
    )
    parser.add_argument("--poll-interval", type=float, default=1.0, help="peers' poll interval, s")
    parser.add_argument("--time-scale", type=float, default=30.0, help="simulated s per real s")
    parser.add_argument("--capacity", type=int, default=400, help="jobs running at once per folder")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "compare_peers.json")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    clients = [c.strip() for c in args.clients.split(",")]
    unknown = [c for c in clients if c not in CLIENTS]
    if unknown:
        parser.error(f"unknown clients {unknown}; known: {', '.join(CLIENTS)}")

    cases: list[CaseResult] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "bench.toml"
        scenario.write_text(scenario_text(args.time_scale, args.capacity), encoding="utf-8")
        for client in clients:
            blocked = missing_package(client)
            for size in sizes:
                if blocked:
                    case = CaseResult(client=client, size=size, status="not run", reason=blocked)
                elif cases and cases[-1].client == client and cases[-1].status != "finished":
                    failed = next(c for c in cases if c.client == client and c.status != "finished")
                    case = CaseResult(
                        client=client, size=size, status="skipped",
                        reason=f"{failed.size} jobs did not finish",
                    )  # fmt: skip
                else:
                    print(f"running {client} with {size} jobs ...", file=sys.stderr, flush=True)
                    case = run_case(
                        client, size, scenario=scenario,
                        time_limit=args.time_limit, poll_interval=args.poll_interval,
                    )  # fmt: skip
                cases.append(case)
                print(f"  {outcome_text(case, args.time_limit)}", file=sys.stderr, flush=True)

    table = markdown_table(cases, args.time_limit)
    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "sizes": sizes,
            "time_limit": args.time_limit,
            "poll_interval": args.poll_interval,
            "time_scale": args.time_scale,
            "capacity_per_folder": args.capacity,
            "folders": list(FOLDERS),
        },
        "total_seconds": round(time.monotonic() - began, 1),
        "cases": [{**dataclasses.asdict(c), "requests_per_job": c.requests_per_job} for c in cases],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    m = machine()
    print(f"{info['date']}, {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}")
    print(table)
    print(f"JSON: {args.json} (total {info['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
