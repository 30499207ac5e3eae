"""A fault run: N jobs dispatched by the CLI while the simulator injects every fault
at once, the CLI is SIGKILLed and resumed, and the simulator is killed and
restarted from its state file. Prints what it did and what it found: lost and
duplicated jobs must both be 0. Not a timed test; see docs/reliability.md.

    python benchmarks/fault_run.py                      # 1,000 jobs, 3 kills, 1 restart
    python benchmarks/fault_run.py --jobs 60 --kills 1 --restarts 1 --seed 7
    python benchmarks/fault_run.py --jobs 60 --scenario realistic   # machines, licences

Everything runs as users run it: ``async-orch simulator --state FILE`` and
``async-orch dispatch --journal FILE`` / ``--resume FILE``, each a process of its
own. Kill and restart points are chosen (seeded) as amounts of progress read from
the journal (jobs journaled as started, plus jobs and requests journaled as
final), never as times, so a run on a slow machine meets the same points.

At the end the journal must say that every request is settled (its job final, or
the request reported ``not_started`` / ``uncertain`` with a reason), and:

* **duplicated**: References the simulator holds more than one job for, or used in
  more than one StartJobs call (its per-Reference counters; they survive restarts);
* **lost**: requests whose final result row does not tell the truth about them: no
  row; a job the simulator does not have; ``not_started`` although the simulator
  has a job with its Reference; or no job id and no honest outcome. A request
  reported ``uncertain`` (or ``not_started`` with no job on the server) with a
  reason is not lost: it is counted and shown.

Exit status: 0 when nothing was lost or duplicated, 1 otherwise, 2 when the run
could not be carried out (a process failed to start, the deadline passed).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The benchmarks' shared helpers sit beside this script (also when it is loaded by path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulator_process import cli_env, echo_tenant_scenario, launch_simulator, simulator_stats

ADMIN_TOKEN = secrets.token_urlsafe(24)  # the simulator reads it from its environment
CLIENT_ID = "faults"
CLIENT_SECRET = "faults-secret"
PROCESS = "Work"
FOLDERS = ("Faults01", "Faults02", "Faults03", "Faults04")


@dataclass(frozen=True)
class Target:
    """Whom the run dispatches to: a scenario and its credentials, process, folders."""

    scenario: str  # "faults" (written by scenario_text) or a built-in scenario's name
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    process: str = PROCESS
    folders: tuple[str, ...] = FOLDERS
    time_scale: float | None = None  # None: the scenario's


TARGETS = {
    "faults": Target("faults"),
    # The built-in "realistic" scenario: its machines' runtimes and 6 licences serve
    # these folders, so most jobs wait Pending for a licence (HR's machine is offline
    # and Sandbox has none: left out, their jobs would never run).
    "realistic": Target(
        "realistic",
        client_id="demo-client",
        client_secret="demo-secret",
        process="Echo",
        folders=("Shared", "Finance", "Finance/Comptabilité"),
        time_scale=60.0,
    ),
}
START_JOBS = "POST /odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"

# The client gives up on any answer after CLIENT_TIMEOUT seconds; the simulator
# holds some StartJobs LATE seconds (then creates the jobs anyway) and slows some
# answers by SLOW seconds. The reconcile window must outlast what the server may
# still be doing after the client gave up (LATE + SLOW), with room for a busy box.
CLIENT_TIMEOUT = 2.0
LATE = 3.0
SLOW = 1.0
RECONCILE_WINDOW = 8.0

#: Every fault at once, at rates that let 1,000 jobs finish in a few minutes.
FAULTS: dict[str, Any] = {
    "server_error_rate": 0.03,
    "server_error_statuses": [500, 502, 503, 504],
    "throttle_rate": 0.02,
    "throttle_burst_seconds": 2,
    "throttle_burst_every": 30,
    "drop_rate": 0.02,
    "slow_rate": 0.05,
    "slow_seconds": SLOW,
    "revoke_tokens_every": 20,
    "ambiguous_start_rate": 0.04,
    "late_completion_rate": 0.04,
    "late_completion_seconds": LATE,
}


def scenario_text(seed: int) -> str:
    # duration: simulated seconds, 0.5-2 real seconds at time scale 60
    return echo_tenant_scenario(
        script="fault_run.py",
        seed=seed,
        time_scale=60,
        organization="faults",
        client=(CLIENT_ID, CLIENT_SECRET),
        process=PROCESS,
        duration="[30, 120]",
        folders=[(name, 25, 20) for name in FOLDERS],
    )


# -- the simulator process --------------------------------------------------------------


class SimulatorProcess:
    """``async-orch simulator --state FILE`` on one port, killed and restarted at will.

    Its counters of requests and faults start from zero at each start, so they are
    read before every kill and added up; the jobs are in the state file.
    """

    def __init__(
        self, scenario: Path | str, state: Path, seed: int, time_scale: float | None = None
    ) -> None:
        self.scenario, self.state, self.seed = scenario, state, seed
        self.time_scale = time_scale
        self.port = 0
        self.url = ""
        self.root = ""
        self.process: subprocess.Popen[str] | None = None
        self.earlier: list[dict[str, Any]] = []  # stats of the runs before this one
        self.restarts = 0

    def start(self) -> None:
        command = [
            "--port", str(self.port), "--scenario", str(self.scenario), "--state", str(self.state),
            "--seed", str(self.seed),  # the state file replays only into the same seed
        ]  # fmt: skip
        if self.time_scale is not None:
            command += ["--time-scale", str(self.time_scale)]
        for key, value in FAULTS.items():
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            command += ["--fault", f"{key}={text}"]
        self.log = self.state.with_name(f"simulator-{self.restarts}.log")
        self.process, url = launch_simulator(command, log=self.log, admin_token=ADMIN_TOKEN)
        if not url.startswith("http"):
            self.kill()
            said = self.log.read_text(encoding="utf-8").strip()[-2000:]
            raise RunFailed(f"the simulator did not start: {said or url!r}")
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self.root = f"{parts.scheme}://{parts.netloc}"
        self.port = int(self.root.rsplit(":", 1)[1])

    def stats(self) -> dict[str, Any]:
        return simulator_stats(self.root, ADMIN_TOKEN)

    def restart(self) -> None:
        """SIGKILL (a crash, not a clean stop), then start again on the same port."""
        self.earlier.append(self.stats())
        self.kill()
        self.restarts += 1
        self.start()

    def all_stats(self) -> list[dict[str, Any]]:
        return [*self.earlier, self.stats()]

    def kill(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


# -- the journal, read while the CLI writes it ----------------------------------------


@dataclass(frozen=True)
class JournalView:
    started: int = 0  # jobs journaled
    final: int = 0  # jobs journaled final
    reported: int = 0  # requests journaled not_started / uncertain (no job)
    requests: int = 0

    @property
    def progress(self) -> int:
        """0 to 2N: each request counts once when started and once when settled."""
        return self.started + self.final + 2 * self.reported

    @property
    def settled(self) -> bool:
        return self.requests > 0 and self.final + self.reported == self.requests


def read_journal(path: Path) -> JournalView:
    if not path.exists():
        return JournalView()
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            started, final = db.execute("SELECT count(*), count(outcome) FROM jobs").fetchone()
            requests, reported = db.execute(
                "SELECT count(*), count(r.outcome) FROM requests r "
                "WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.request_idx = r.idx)"
            ).fetchone()
            with_jobs = db.execute("SELECT count(DISTINCT request_idx) FROM jobs").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:  # being created: no schema yet
        return JournalView()
    return JournalView(int(started), int(final), int(reported), int(requests) + int(with_jobs))


# -- the run -------------------------------------------------------------------------------


class RunFailed(Exception):
    """The run could not be carried out (not a finding about async-orch)."""


@dataclass
class Options:
    jobs: int = 1000
    kills: int = 3
    restarts: int = 1
    seed: int = 1
    deadline: float = 1200.0  # seconds for the whole run before it is called off
    workdir: Path | None = None
    scenario: str = "faults"  # a key of TARGETS
    # How the CLI is stopped at a kill point: SIGKILL (a crash: nothing recorded) or
    # SIGINT (an interrupt: the batch ends early and records the starts in doubt).
    kill_signal: str = "KILL"

    @property
    def target(self) -> Target:
        return TARGETS[self.scenario]


@dataclass
class Report:
    jobs: int
    kills: int = 0
    restarts: int = 0
    cli_runs: int = 0
    wall: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    start_posts: int = 0
    http_429: int = 0
    jobs_created: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    honest: list[dict[str, Any]] = field(default_factory=list)  # uncertain / not_started
    lost: list[str] = field(default_factory=list)  # what is wrong, one line per request
    duplicated: dict[str, int] = field(default_factory=dict)
    exits: list[int] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # "kill at progress 812/2000 (set for 790)"
    refusals: list[str] = field(default_factory=list)  # a dispatch that exited 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "kills": self.kills,
            "restarts": self.restarts,
            "cli_runs": self.cli_runs,
            "wall_seconds": round(self.wall, 1),
            "faults": dict(self.faults),
            "requests": self.requests,
            "requests_per_job": round(self.requests / self.jobs, 2),
            "start_posts": self.start_posts,
            "http_429": self.http_429,
            "jobs_created": self.jobs_created,
            "outcomes": dict(self.outcomes),
            "honest": self.honest,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "cli_exits": self.exits,
            "events": self.events,
            "refusals": self.refusals,
        }


def schedule(options: Options) -> list[tuple[int, str]]:
    """Seeded (progress, event) points, in order; progress runs from 0 to 2N."""
    rng = random.Random(options.seed)
    top = 2 * options.jobs
    events = ["kill"] * options.kills + ["restart"] * options.restarts
    # Up to 70 %: the last point is met well before the batch ends, even on a fast box.
    points = sorted(rng.randint(max(1, top // 20), top * 7 // 10) for _ in events)
    rng.shuffle(events)
    return list(zip(points, events, strict=True))


def fault_run_env(home: Path, url: str, target: Target = TARGETS["faults"]) -> dict[str, str]:
    return cli_env(
        home,
        UIPATH_URL=url,
        UIPATH_CLIENT_ID=target.client_id,
        UIPATH_CLIENT_SECRET=target.client_secret,
        ASYNC_ORCH_TIMEOUT=str(CLIENT_TIMEOUT),
        ASYNC_ORCH_CONNECT_TIMEOUT=str(CLIENT_TIMEOUT),
        ASYNC_ORCH_RECONCILE_WINDOW=str(RECONCILE_WINDOW),
    )


def write_jobs(path: Path, count: int, target: Target = TARGETS["faults"]) -> None:
    folders = target.folders
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            folder = folders[i % len(folders)]
            row = {"folder": folder, "process": target.process, "inputs": {"n": i}}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


@contextmanager
def workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="fault-run-") as name:
        yield Path(name)


def run(options: Options) -> Report:
    """Carry out one fault run; raises RunFailed if it cannot be carried out."""
    report = Report(jobs=options.jobs)
    began = time.monotonic()
    with workdir(options.workdir) as work:
        target = options.target
        scenario: Path | str = target.scenario
        if target.scenario == "faults":
            scenario = work / "scenario.toml"
            scenario.write_text(scenario_text(options.seed), encoding="utf-8")
        jobs_file = work / "jobs.jsonl"
        write_jobs(jobs_file, options.jobs, target)
        journal = work / "batch.sqlite"
        results = work / "results.jsonl"
        sim = SimulatorProcess(scenario, work / "sim.sqlite", options.seed, target.time_scale)
        sim.start()
        try:
            env = fault_run_env(work, sim.url, target)
            first = ["--file", str(jobs_file), "--journal", str(journal)]
            _drive(options, report, sim, env, first, journal, results, began)
            stats = sim.all_stats()
        finally:
            sim.kill()
        report.restarts = sim.restarts
        rows = [json.loads(x) for x in results.read_text(encoding="utf-8").splitlines() if x]
        _count(report, stats)
        _judge(report, rows, stats[-1]["jobs"])
    report.wall = time.monotonic() - began
    return report


def _drive(
    options: Options,
    report: Report,
    sim: SimulatorProcess,
    env: dict[str, str],
    first: list[str],
    journal: Path,
    results: Path,
    began: float,
) -> None:
    """Run the CLI, kill it and restart the simulator at the scheduled points, and
    resume until the journal says every request is settled."""
    events = schedule(options)
    args = first
    while True:
        report.cli_runs += 1
        command = [sys.executable, "-m", "async_orch", "dispatch", *args,
                   "--format", "jsonl", "--output", str(results), "--quiet"]  # fmt: skip
        cli = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        killed = False
        while cli.poll() is None:
            if time.monotonic() - began > options.deadline:
                cli.kill()
                raise RunFailed(f"the run took longer than {options.deadline:g} s")
            view = read_journal(journal)
            if events and view.progress >= events[0][0]:
                point, event = events.pop(0)
                # A point the batch had passed already fires as soon as the resumed CLI
                # has read its journal: a kill during the resume's start, said as such.
                report.events.append(
                    f"{event} at progress {view.progress}/{2 * options.jobs} (set for {point})"
                )
                if event == "restart":
                    sim.restart()
                else:
                    cli.send_signal(getattr(signal, f"SIG{options.kill_signal}"))
                    killed = True
                    report.kills += 1
            time.sleep(0.1)  # polling the journal file, not waiting for anything to happen
        _, stderr = cli.communicate()
        report.exits.append(cli.returncode)
        if not killed and cli.returncode not in (0, 1):
            # A refused resume (say, a journal showing a request started twice) is
            # a finding, judged with the rest; anything else stops the run.
            report.refusals.append(stderr.strip()[-2000:])
            if "started more than once" in stderr:
                return
            raise RunFailed(f"dispatch exited {cli.returncode}: {stderr.strip()[-2000:]}")
        if not killed and read_journal(journal).settled:
            return
        args = ["--resume", str(journal)]


def _count(report: Report, stats: list[dict[str, Any]]) -> None:
    for run_stats in stats:
        report.faults.update(run_stats["faults"])
        for template, by_status in run_stats["requests"].items():
            if template.startswith("POST /identity") or "token" in template.lower():
                continue  # token requests: not part of the dispatch's cost
            report.requests += sum(by_status.values())
            report.http_429 += by_status.get("429", 0)
            if template == START_JOBS:
                report.start_posts += sum(by_status.values())
    report.jobs_created = stats[-1]["jobs"]["created"]


def _judge(report: Report, rows: list[dict[str, Any]], jobs: dict[str, Any]) -> None:
    by_reference: dict[str, int] = jobs["by_reference"]
    report.duplicated = {r: n for r, n in by_reference.items() if n > 1}
    for reference, calls in jobs["duplicate_references"].items():
        report.duplicated.setdefault(reference, calls)
    row_of = {row["index"]: row for row in rows}
    for index in range(report.jobs):
        row = row_of.get(index)
        if row is None:
            report.lost.append(f"request {index}: no result row")
            continue
        report.outcomes[row["outcome"]] += 1
        reference, on_server = row["reference"], by_reference.get(row["reference"], 0)
        outcome, reason = row["outcome"], row.get("info")
        if outcome in ("uncertain", "not_started"):
            if outcome == "not_started" and on_server:
                report.lost.append(f"{reference}: reported not_started, the server has its job")
            elif not reason:
                report.lost.append(f"{reference}: {outcome} without a reason")
            else:
                report.honest.append({"reference": reference, "outcome": outcome,
                                      "on_server": on_server, "info": reason})  # fmt: skip
        elif row["job_id"] is None:
            report.lost.append(f"{reference}: {outcome} with no job id")
        elif not on_server:
            report.lost.append(f"{reference}: job {row['job_id']} is not on the server")


# -- output --------------------------------------------------------------------------------


def table(report: Report, options: Options) -> str:
    faults = ", ".join(f"{kind} {n:,}" for kind, n in sorted(report.faults.items()))
    outcomes = ", ".join(f"{name} {n:,}" for name, n in report.outcomes.most_common())
    rows = [
        ("jobs (requests)", f"{report.jobs:,} over {len(options.target.folders)} folders"),
        (f"CLI kills (SIG{options.kill_signal}) / runs", f"{report.kills} / {report.cli_runs}"),
        ("simulator restarts (SIGKILL, --state)", str(report.restarts)),
        ("faults injected", faults),
        ("jobs created on the server", f"{report.jobs_created:,}"),
        ("StartJobs POSTs", f"{report.start_posts:,}"),
        ("HTTP requests / job", f"{report.requests / report.jobs:.2f} ({report.requests:,})"),
        ("429 answers", f"{report.http_429:,}"),
        ("outcomes", outcomes),
        ("uncertain / not_started, with a reason", str(len(report.honest))),
        ("lost", str(len(report.lost))),
        ("duplicated", str(len(report.duplicated))),
        ("wall time", f"{report.wall:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"fault run: --jobs {options.jobs} --kills {options.kills} "
             f"--restarts {options.restarts} --seed {options.seed} "
             f"--scenario {options.scenario} --signal {options.kill_signal}", ""]  # fmt: skip
    lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
    lines.append("events: " + ("; ".join(report.events) or "none"))
    for item in report.honest[:10]:
        lines.append(f"  {item['outcome']}: {item['reference']} ({item['info']})")
    for line in report.refusals:
        lines.append(f"  REFUSED {line}")
    for line in report.lost[:20]:
        lines.append(f"  LOST {line}")
    for reference, n in list(report.duplicated.items())[:20]:
        lines.append(f"  DUPLICATED {reference}: {n}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="requests to dispatch (1000)")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs of the CLI (3)")
    parser.add_argument("--restarts", type=int, default=1, help="simulator restarts (1)")
    parser.add_argument("--seed", type=int, default=1, help="seeds the scenario, faults, points")
    parser.add_argument("--deadline", type=float, default=1200.0, help="seconds before giving up")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--scenario", choices=sorted(TARGETS), default="faults",
                        help="faults (its own, 4 folders) or the built-in realistic")  # fmt: skip
    parser.add_argument("--signal", choices=("KILL", "INT"), default="KILL",
                        help="how the CLI is stopped: KILL (a crash) or INT (an interrupt, "
                        "which records the starts in doubt)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.kills < 0 or args.restarts < 0:
        parser.error("--jobs must be at least 1, --kills and --restarts at least 0")
    options = Options(args.jobs, args.kills, args.restarts, args.seed, args.deadline, args.workdir,
                      args.scenario, args.signal)  # fmt: skip
    return options, args.json


def main(argv: list[str] | None = None) -> int:
    options, json_path = parse_args(argv)
    try:
        report = run(options)
    except RunFailed as exc:
        print(f"fault run: {exc}", file=sys.stderr)
        return 2
    print(table(report, options))
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 1 if report.lost or report.duplicated or report.refusals else 0


if __name__ == "__main__":
    sys.exit(main())
