"""Three async-orch processes on one tenant that others use too (issue 14 point 5).

    python benchmarks/bench_shared_budget.py                 # about 6 minutes
    python benchmarks/bench_shared_budget.py --jobs 100 --budgets in-process

One simulator (``async-orch simulator``) plays a tenant with Orchestrator's list
limit (100 ``GET /odata/Jobs`` a rolling minute, orchestrator-api.md §4) that also
carries ``--other-load`` (30) list calls a minute from other callers. Three
``async-orch dispatch`` processes start at once, each with ``--jobs`` (300) jobs,
each with the default list budget (60 a minute): together they would ask for
180 + 30. Run once with each process on its own adaptive budget (``in-process``)
and once with ``--list-budget-redis`` on one redis-server (``redis``: 60 a minute
for the three together).

Per run: **lost** (a request whose result row names no job the simulator has, or
no row) and **duplicated** (a Reference the simulator holds more than one job for,
or used in more than one StartJobs: its per-Reference counters), **429s** per
process (the poller's ``poll_rate_limited`` warnings on its stderr; their sum is
checked against the simulator's count), and **wall** (launch to the last process's
exit) against **the last job's end** (its EndTime, from the launch). Rate limits
run on real time, so this cannot be sped up; jobs run at time scale 2.

Targets: 0 lost, 0 duplicated, a handful of 429s per process at most (0 with
Redis), wall within 1.3x of the last job's end. Exit 1 when one is missed, 2 when
the run could not be carried out.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# The benchmarks' shared helpers sit beside this script (also when it is loaded by path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulator_process import cli_env, launch_simulator, simulator_stats

ADMIN_TOKEN = secrets.token_urlsafe(24)
CLIENT_ID = "fleet"
CLIENT_SECRET = "fleet-secret"
PROCESS = "Work"
FOLDERS = ("Fleet01", "Fleet02", "Fleet03")
TIME_SCALE = 2.0
WORKERS = 3


class RunFailed(Exception):
    """The benchmark could not be carried out (exit 2)."""


def scenario_text(other_load: float) -> str:
    folders = "\n".join(
        f'[[tenants.folders]]\npath = "{name}"\ncapacity = 400\nrobots = 10\n' for name in FOLDERS
    )
    return f"""# Written by benchmarks/bench_shared_budget.py
seed = 14
time_scale = {TIME_SCALE}

[[tenants]]
organization = "fleet"
name = "DefaultTenant"
credentials = [{{ client_id = "{CLIENT_ID}", client_secret = "{CLIENT_SECRET}", scopes = [
    "OR.Folders.Read", "OR.Execution.Read", "OR.Jobs"] }}]
processes = [{{ name = "{PROCESS}", duration = [120, 300], outputs = "echo" }}]  # 60-150 real s
[tenants.rate_limit]       # GET /odata/Jobs per tenant and rolling minute, of which
other_per_minute = {other_load}   # the web UI and other integrations take this many
jobs_list = 100
window_seconds = 60

{folders}"""


@dataclass
class RunReport:
    budget: str
    jobs: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    http_429: list[int] = field(default_factory=list)  # per process
    simulator_429: int = 0
    list_calls: int = 0
    other_refused: int = 0
    wall: float = 0.0
    last_end: float = 0.0

    @property
    def ratio(self) -> float:
        return self.wall / self.last_end if self.last_end else float("inf")

    def passed(self) -> bool:
        most_429 = 0 if self.budget == "redis" else 5
        return (
            not self.lost
            and not self.duplicated
            and max(self.http_429, default=0) <= most_429
            and self.ratio <= 1.3
        )


class Simulator:
    def __init__(self, scenario: Path, log: Path) -> None:
        args = ["--port", "0", "--scenario", str(scenario)]
        self.process, self.url = launch_simulator(args, log=log, admin_token=ADMIN_TOKEN)
        self.started_wall = time.time()  # ~ the simulated clock's epoch
        if not self.url.startswith("http"):
            self.stop()
            raise RunFailed(f"the simulator did not start: {log.read_text()[-2000:]!r}")
        self.root = self.url.split("/fleet/")[0]

    def stats(self) -> dict[str, Any]:
        return simulator_stats(self.root, ADMIN_TOKEN)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


class Redis:
    def __init__(self, folder: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RunFailed("redis-server is not installed (apt-get install redis-server)")
        socket = folder / "redis.sock"
        self.process = subprocess.Popen(
            [
                server,
                "--port",
                "0",
                "--unixsocket",
                str(socket),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(folder / "redis.log"),
            ]
        )
        self.url = f"unix://{socket}"
        deadline = time.monotonic() + 30
        while not socket.exists():  # the socket appears once it accepts connections
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RunFailed("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def run(budget: str, *, jobs: int, other_load: float, folder: Path) -> RunReport:
    folder.mkdir(parents=True, exist_ok=True)
    scenario = folder / "scenario.toml"
    scenario.write_text(scenario_text(other_load), encoding="utf-8")
    redis = Redis(folder) if budget == "redis" else None
    simulator = Simulator(scenario, folder / "simulator.log")
    report = RunReport(budget=budget, jobs=jobs)
    try:
        workers = []
        launched = time.monotonic()
        launched_wall = time.time()
        for n in range(WORKERS):
            jobfile = folder / f"jobs-{n}.jsonl"
            with jobfile.open("w", encoding="utf-8") as out:
                for i in range(jobs):
                    row = {"folder": FOLDERS[i % len(FOLDERS)], "process": PROCESS,
                           "inputs": {"worker": n, "n": i}}  # fmt: skip
                    out.write(json.dumps(row) + "\n")
            command = [sys.executable, "-m", "async_orch", "dispatch", "--file", str(jobfile),
                       "--format", "jsonl", "--output", str(folder / f"results-{n}.jsonl"),
                       "--journal", str(folder / f"journal-{n}.db"), "--quiet"]  # fmt: skip
            if redis is not None:
                command += ["--list-budget-redis", redis.url]
            err = (folder / f"worker-{n}.err").open("w", encoding="utf-8")
            process = subprocess.Popen(
                command,
                env=cli_env(
                    folder,
                    UIPATH_URL=simulator.url,
                    UIPATH_CLIENT_ID=CLIENT_ID,
                    UIPATH_CLIENT_SECRET=CLIENT_SECRET,
                ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            workers.append((process, err))
        for process, err in workers:
            if process.wait(timeout=1800) not in (0, 1):
                raise RunFailed(f"a worker exited {process.returncode}: see {err.name}")
            err.close()
        report.wall = time.monotonic() - launched
        _judge(report, simulator, folder, launched_wall)
    finally:
        simulator.stop()
        if redis is not None:
            redis.stop()
    return report


def _judge(report: RunReport, simulator: Simulator, folder: Path, launched_wall: float) -> None:
    stats = simulator.stats()
    by_reference: dict[str, int] = stats["jobs"]["by_reference"]
    report.duplicated = {r: n for r, n in by_reference.items() if n > 1}
    for reference, calls in stats["jobs"]["duplicate_references"].items():
        report.duplicated.setdefault(reference, calls)
    report.simulator_429 = stats["rejections"]["429"]
    report.list_calls = sum(stats["requests"].get("GET /odata/Jobs", {}).values())
    last_end = 0.0
    for n in range(WORKERS):
        text = (folder / f"worker-{n}.err").read_text(encoding="utf-8")
        report.http_429.append(text.count("poll_rate_limited"))
        rows = [json.loads(line) for line in (folder / f"results-{n}.jsonl").open()]
        if len(rows) != report.jobs:
            report.lost.append(f"worker {n}: {len(rows)} result rows for {report.jobs} jobs")
        for row in rows:
            if row["outcome"] != "successful" or not by_reference.get(row["reference"]):
                report.lost.append(f"{row['reference']}: {row['outcome']}")
            if row.get("ended"):
                ended = datetime.fromisoformat(row["ended"].replace("Z", "+00:00")).timestamp()
                last_end = max(last_end, ended)
    # Simulated time runs TIME_SCALE times as fast as real time from the simulator's start.
    report.last_end = (
        simulator.started_wall + (last_end - simulator.started_wall) / TIME_SCALE - launched_wall
    )


def table(reports: list[RunReport], *, jobs: int, other_load: float) -> str:
    lines = [
        f"{WORKERS} processes x {jobs} jobs, one tenant (100 list calls a rolling minute) "
        f"with {other_load:g} list calls a minute of other load:",
        "",
        "| list budget | lost | duplicated | 429s per process | our list calls | wall | "
        "last job's end | wall / end |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in reports:
        name = "in-process (each its own)" if r.budget == "in-process" else "Redis (shared)"
        lines.append(
            f"| {name} | {len(r.lost)} | {len(r.duplicated)} | "
            f"{', '.join(map(str, r.http_429))} | {r.list_calls} | {r.wall:.0f} s | "
            f"{r.last_end:.0f} s | {r.ratio:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs per process (300)")
    parser.add_argument("--other-load", type=float, default=30.0,
                        help="other callers' list calls a minute (30)")  # fmt: skip
    parser.add_argument("--budgets", nargs="+", choices=("in-process", "redis"),
                        default=["in-process", "redis"])  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="keep the files here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shared-budget-") as temp:
        base = args.workdir or Path(temp)
        try:
            reports = [
                run(b, jobs=args.jobs, other_load=args.other_load, folder=base / b)
                for b in args.budgets
            ]
        except RunFailed as exc:
            print(f"bench_shared_budget: {exc}", file=sys.stderr)
            return 2
    print(table(reports, jobs=args.jobs, other_load=args.other_load))
    for r in reports:
        if r.simulator_429 != sum(r.http_429):
            print(f"note ({r.budget}): the simulator counted {r.simulator_429} 429s")
        for problem in r.lost[:5]:
            print(f"lost ({r.budget}): {problem}")
    return 0 if all(r.passed() for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
