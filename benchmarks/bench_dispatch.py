"""Dispatch N jobs over M folders against the simulator; compare with a naive loop.

Each dispatcher runs against a fresh simulator in a subprocess of its own, and
each client runs in a subprocess too, so the CPU time and peak memory measured
are the client's alone. See benchmarks/README.md for what the numbers mean.

    python benchmarks/bench_dispatch.py                 # 1,000 jobs, 10 folders
    python benchmarks/bench_dispatch.py --jobs 200 --folders 4 --time-scale 20
    python benchmarks/bench_dispatch.py --skip-naive --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The simulator's admin API wants a token: this script chooses it (the simulator
# reads it from ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN) and sends it to read the stats.
ADMIN_TOKEN = secrets.token_urlsafe(24)


def _admin_request(url: str) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


CLIENT_ID = "bench"
CLIENT_SECRET = "bench-secret"
PROCESS = "Work"
ROOT = Path(__file__).resolve().parent.parent  # the checkout (profiles name files relative to it)
RESULTS_DIR = Path(__file__).parent / "results"
NAIVE_POLL_SECONDS = 2.0
TARGETS = {"requests_per_job": 2.5, "wall_vs_last_end": 1.3, "cpu_ms_per_job": 1.0}


# -- scenario and simulator --------------------------------------------------------------


def folder_names(count: int) -> list[str]:
    return [f"Bench{n:02d}" for n in range(1, count + 1)]


def scenario_text(args: argparse.Namespace) -> str:
    from simulator_process import echo_tenant_scenario  # a sibling module on sys.path

    low, high = args.duration
    robots = min(args.capacity, 20)
    return echo_tenant_scenario(
        script="bench_dispatch.py",
        seed=args.seed,
        time_scale=args.time_scale,
        organization="bench",
        client=(CLIENT_ID, CLIENT_SECRET),
        process=PROCESS,
        duration=f"[{low}, {high}]",
        folders=[(name, args.capacity, robots) for name in folder_names(args.folders)],
    )


class Simulator:
    """``python -m async_orch simulator`` in a subprocess, on a free port."""

    def __init__(self, scenario: Path) -> None:
        from simulator_process import did_not_start, launch_simulator  # a sibling module

        log = scenario.with_suffix(".log")  # its stderr: what to show if it does not start
        args = ["--port", "0", "--scenario", str(scenario)]
        self.process, self.url = launch_simulator(args, log=log, admin_token=ADMIN_TOKEN)
        if not self.url.startswith("http"):
            self.stop()
            raise RuntimeError(did_not_start(self.url, log))
        self.root = self.url.split("/bench/")[0]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(
            _admin_request(f"{self.root}/_simulator/stats"), timeout=30
        ) as response:
            data: dict[str, Any] = json.load(response)
            return data

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


# -- the clients (run in a worker subprocess) -----------------------------------------


def job_plan(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    folders = folder_names(args.folders)
    return [(folders[i % len(folders)], {"n": i, "tag": f"job-{i}"}) for i in range(args.jobs)]


async def run_async_orch(args: argparse.Namespace) -> dict[str, Any]:
    from async_orch import ClientCredentials, JobRequest, OrchestratorClient, Settings

    settings = Settings(
        url=args.url,
        credentials=ClientCredentials(client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
    )
    requests = [
        JobRequest(process=PROCESS, folder=folder, inputs=inputs)
        for folder, inputs in job_plan(args)
    ]
    async with OrchestratorClient(settings) as orch:
        results = await orch.run_jobs(requests)
    return {
        "outcomes": dict(Counter(r.outcome.value for r in results)),
        "outputs_ok": sum(r.request is not None and r.outputs == r.request.inputs for r in results),
        "jobs": [
            {
                "created": r.job.creation_time.timestamp()
                if r.job and r.job.creation_time
                else None,
                "ended": r.job.end_time.timestamp() if r.job and r.job.end_time else None,
            }
            for r in results
        ],
    }


async def hand_setup(session: Any, base: str) -> dict[str, tuple[dict[str, str], str]]:
    """For the hand-written clients: a token, then each folder's headers and release key."""
    token_url = base.split("/bench/")[0] + "/identity_/connect/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": "OR.Folders.Read OR.Execution.Read OR.Jobs",
    }
    async with session.post(token_url, data=form) as response:
        token = (await response.json())["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    async with session.get(f"{base}/odata/Folders", headers=auth) as response:
        folder_ids = {f["FullyQualifiedName"]: f["Id"] for f in (await response.json())["value"]}
    folders = {}
    for name, folder_id in folder_ids.items():
        headers = {**auth, "X-UIPATH-OrganizationUnitId": str(folder_id)}
        params = {"$filter": f"Name eq '{PROCESS}'"}
        async with session.get(f"{base}/odata/Releases", headers=headers, params=params) as r:
            folders[name] = (headers, (await r.json())["value"][0]["Key"])
    return folders


def start_body(release_key: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "startInfo": {
            "ReleaseKey": release_key,
            "Strategy": "ModernJobsCount",
            "JobsCount": 1,
            "InputArguments": json.dumps(inputs),
        }
    }


def hand_report(args: argparse.Namespace, jobs: list[Any], unfinished: int = 0) -> dict[str, Any]:
    plan = job_plan(args)
    return {
        "outcomes": dict(Counter(j.state.value.lower() for j in jobs))
        | ({"unfinished (capped)": unfinished} if unfinished else {}),
        "outputs_ok": sum(
            j.output_arguments == plan[j.output_arguments["n"]][1]
            for j in jobs
            if j.output_arguments
        ),
        "capped": bool(unfinished),
        "jobs": [
            {
                "created": j.creation_time.timestamp() if j.creation_time else None,
                "ended": j.end_time.timestamp() if j.end_time else None,
            }
            for j in jobs
        ],
    }


START_JOBS = "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"


async def run_bare(args: argparse.Namespace) -> dict[str, Any]:
    """The floor for client CPU: the requests async-orch makes (StartJobs, 16 at a
    time; each second one $filter=Id in (...) list call, $select=Id,State, for the
    folder with most jobs running; Jobs(N), 8 at a time, for each job seen final),
    written by hand over aiohttp with no bookkeeping, no error handling, no retries."""
    import aiohttp

    from async_orch import Job

    base = args.url
    async with aiohttp.ClientSession() as session:
        folders = await hand_setup(session, base)
        starts, reads = asyncio.Semaphore(16), asyncio.Semaphore(8)
        running: dict[str, set[int]] = {name: set() for name in folders}
        bodies: list[dict[str, Any]] = []

        async def start(folder: str, inputs: dict[str, Any]) -> None:
            headers, release_key = folders[folder]
            body = start_body(release_key, inputs)
            async with (
                starts,
                session.post(f"{base}/{START_JOBS}", json=body, headers=headers) as r,
            ):
                running[folder].add((await r.json())["value"][0]["Id"])

        async def read(folder: str, job_id: int) -> None:
            url = f"{base}/odata/Jobs({job_id})"
            async with reads, session.get(url, headers=folders[folder][0]) as response:
                bodies.append(await response.json())

        await asyncio.gather(*(start(f, i) for f, i in job_plan(args)))
        pending_reads = []
        while any(running.values()):
            await asyncio.sleep(1.0)
            folder = max(running, key=lambda name: len(running[name]))
            ids = ",".join(str(i) for i in sorted(running[folder])[:90])
            params = {"$filter": f"Id in ({ids})", "$select": "Id,State"}
            async with session.get(
                f"{base}/odata/Jobs", headers=folders[folder][0], params=params
            ) as response:
                rows = (await response.json())["value"]
            for row in rows:
                if row["State"] in ("Successful", "Faulted", "Stopped"):
                    running[folder].discard(row["Id"])
                    pending_reads.append(asyncio.ensure_future(read(folder, row["Id"])))
        await asyncio.gather(*pending_reads)
    return hand_report(args, [Job.from_api(body) for body in bodies])


async def run_naive(args: argparse.Namespace) -> dict[str, Any]:
    """What a first script does: per job, StartJobs, then GET /odata/Jobs?$filter=Id eq N
    every 2 s until the job is final, then GET Jobs(N) for its outputs; all jobs at once
    with asyncio.gather. A non-200 answer (a 429) is waited out the same 2 s.
    ``--naive-route id`` polls GET /odata/Jobs(N) instead (not rate limited)."""
    import aiohttp

    from async_orch import Job

    base = args.url
    async with aiohttp.ClientSession() as session:
        folders = await hand_setup(session, base)

        async def one(folder: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
            headers, release_key = folders[folder]
            body = start_body(release_key, inputs)
            async with session.post(f"{base}/{START_JOBS}", json=body, headers=headers) as r:
                job_id = (await r.json())["value"][0]["Id"]
            while True:
                await asyncio.sleep(NAIVE_POLL_SECONDS)
                if args.naive_route == "id":
                    poll = session.get(f"{base}/odata/Jobs({job_id})", headers=headers)
                else:
                    poll = session.get(
                        f"{base}/odata/Jobs", headers=headers, params={"$filter": f"Id eq {job_id}"}
                    )
                async with poll as response:
                    if response.status != 200:
                        continue
                    data = await response.json()
                state = data["State"] if args.naive_route == "id" else data["value"][0]["State"]
                if state in ("Successful", "Faulted", "Stopped"):
                    break
            async with session.get(f"{base}/odata/Jobs({job_id})", headers=headers) as response:
                full: dict[str, Any] = await response.json()
                return full

        tasks = [asyncio.ensure_future(one(f, i)) for f, i in job_plan(args)]
        done, pending = await asyncio.wait(tasks, timeout=args.naive_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    jobs = [Job.from_api(body) for t in done if t.exception() is None and (body := t.result())]
    return hand_report(args, jobs, unfinished=len(pending))


class Sampler:
    """A CPU-time sampler: every ``interval`` s of process CPU (ITIMER_PROF) it notes the
    running Python stack. Unlike cProfile it adds no cost per call, so code made of
    many small calls is not inflated; "self" is the function on top, "total" any
    function on the stack."""

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval = interval
        self.own: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.samples = 0

    def _where(self, frame: Any) -> str:
        code = frame.f_code
        path = code.co_filename.split("site-packages/")[-1].split("/lib/python3")[-1]
        path = path.removeprefix(f"{ROOT}/")  # this checkout's files, relative to it
        return f"{path}:{code.co_firstlineno}:{code.co_name}"

    def _sample(self, signum: int, frame: Any) -> None:
        if frame is None:
            return
        self.samples += 1
        self.own[self._where(frame)] += 1
        seen = set()
        while frame is not None:
            seen.add(self._where(frame))
            frame = frame.f_back
        self.total.update(seen)

    def start(self) -> None:
        import signal

        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        import signal

        signal.setitimer(signal.ITIMER_PROF, 0, 0)

    def report(self, top: int = 60) -> str:
        def block(title: str, counts: Counter[str]) -> list[str]:
            rows = [f"{title} ({self.samples} samples of {self.interval * 1e3:.1f} ms CPU)"]
            for where, n in counts.most_common(top):
                rows.append(f"{n / self.samples:7.1%} {n:6d}  {where}")
            return rows

        by_file: Counter[str] = Counter()
        for where, n in self.own.items():
            by_file[where.split(":")[0]] += n
        lines = [*block("self, by function", self.own), ""]
        lines += [*block("self, by file", by_file), "", *block("total (on the stack)", self.total)]
        return "\n".join(lines)


def worker(args: argparse.Namespace) -> None:
    """Run one client and print its measurements as one JSON line."""
    run = {"async-orch": run_async_orch, "naive": run_naive, "bare": run_bare}[args.worker]
    # Import everything first: module loading is not what is measured. anyio loads
    # its asyncio backend (about 15 ms of CPU) and the token reply's codec on first use.
    import encodings.utf_8_sig  # noqa: F401

    import aiohttp  # noqa: F401
    import anyio._backends._asyncio  # noqa: F401

    import async_orch._client
    import async_orch._models  # noqa: F401

    # Timed by CPU, not wall clock: time spent waiting on the simulator is not ours.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    sampler = Sampler() if args.sample else None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    if profiler is not None:
        profiler.enable()
    if sampler is not None:
        sampler.start()
    window: dict[str, float] = {}
    report = asyncio.run(_with_cpu_window(run(args), args.cpu_window, window))
    if sampler is not None:
        sampler.stop()
    if profiler is not None:
        profiler.disable()
    report["wall_s"] = time.perf_counter() - wall0
    report["cpu_s"] = time.process_time() - cpu0
    if window:
        report["window_cpu_s"] = window["cpu_s"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report["cpu_user_s"] = usage.ru_utime - usage0.ru_utime
    report["cpu_system_s"] = usage.ru_stime - usage0.ru_stime  # mostly loopback TCP
    report["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(60)
        path = args.results / f"profile-{args.worker}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        stats.dump_stats(path.with_suffix(".prof"))  # for pstats / snakeviz
        path.write_text(out.getvalue())
        report["profile"] = str(path)
    if sampler is not None:
        path = args.results / f"samples-{args.worker}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sampler.report())
        report["samples"] = str(path)
    print(json.dumps(report))


async def _with_cpu_window(
    run: Any, span: list[float] | None, window: dict[str, float]
) -> dict[str, Any]:
    """``run``, noting in ``window["cpu_s"]`` the client's CPU between ``span``'s two
    times (seconds from the start), if the run lasts that long."""
    if span is None:
        result: dict[str, Any] = await run
        return result

    async def note() -> None:
        await asyncio.sleep(span[0])
        cpu = time.process_time()
        await asyncio.sleep(span[1] - span[0])
        window["cpu_s"] = time.process_time() - cpu

    noting = asyncio.ensure_future(note())
    try:
        result = await run
        return result
    finally:
        noting.cancel()


# -- the driver -----------------------------------------------------------------------


def run_worker(
    script: str, scenario: Path, worker: list[str], label: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``script --url URL WORKER`` (a client in its own process) against a fresh
    simulator of ``scenario``: the report it printed last, and the simulator's stats."""
    simulator = Simulator(scenario)
    try:
        command = [sys.executable, script, "--url", simulator.url, *worker]
        print(f"running {label} ...", file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{label} worker failed:\n{done.stderr[-3000:]}")
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        stats = simulator.stats()
    finally:
        simulator.stop()
    return report, stats


def measure(kind: str, args: argparse.Namespace, scenario: Path) -> dict[str, Any]:
    worker = ["--worker", kind, "--jobs", str(args.jobs), "--folders", str(args.folders)]
    worker += ["--naive-timeout", str(args.naive_timeout), "--naive-route", args.naive_route]
    if args.cpu_window:
        worker += ["--cpu-window", *(str(t) for t in args.cpu_window)]
    if args.profile:
        worker += ["--profile"]
    if args.sample:
        worker += ["--sample"]
    if args.profile or args.sample:
        worker += ["--results", str(args.results)]
    report, stats = run_worker(__file__, scenario, worker, kind)
    return summarize(kind, report, stats, args)


def summarize(
    kind: str, report: dict[str, Any], stats: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    by_route = {
        route: sum(statuses.values())
        for route, statuses in stats["requests"].items()
        if not route.startswith("POST /identity_")
    }
    total = sum(by_route.values())
    jobs = [j for j in report.pop("jobs") if j["created"] is not None]
    ended = [j["ended"] for j in jobs if j["ended"] is not None]
    span = (max(ended) - min(j["created"] for j in jobs)) / args.time_scale if ended else None
    finished = sum(n for k, n in report["outcomes"].items() if k != "unfinished (capped)")
    return {
        "dispatcher": kind,
        "jobs": args.jobs,
        "finished": finished,
        "outcomes": report["outcomes"],
        "outputs_ok": report["outputs_ok"],
        "wall_s": round(report["wall_s"], 2),
        "last_job_end_s": round(span, 2) if span else None,
        "wall_vs_last_end": round(report["wall_s"] / span, 3)
        if span and finished == args.jobs
        else None,
        "requests": total,
        "requests_per_job": round(total / args.jobs, 3),
        "requests_by_route": by_route,
        "http_429": stats["rejections"].get("429", 0),
        "cpu_s": round(report["cpu_s"], 3),
        "cpu_ms_per_job": round(1000 * report["cpu_s"] / args.jobs, 3),
        "cpu_user_ms_per_job": round(1000 * report["cpu_user_s"] / args.jobs, 3),
        "cpu_system_ms_per_job": round(1000 * report["cpu_system_s"] / args.jobs, 3),
        "max_rss_mb": round(report["max_rss_mb"], 1),
        "jobs_created": stats["jobs"]["created"],
        **({"profile": report["profile"]} if "profile" in report else {}),
        **_window_figures(report, args),
    }


def _window_figures(report: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The client's CPU within ``--cpu-window``, per second of it (none: not asked,
    or the run ended before the window did)."""
    if "window_cpu_s" not in report:
        return {}
    seconds = args.cpu_window[1] - args.cpu_window[0]
    return {
        "window_cpu_ms": round(1000 * report["window_cpu_s"], 1),
        "window_cpu_ms_per_s": round(1000 * report["window_cpu_s"] / seconds, 2),
    }


ROWS = [
    ("finished jobs", "finished"),
    ("outputs == inputs", "outputs_ok"),
    ("wall time (s)", "wall_s"),
    ("last job's end, real s", "last_job_end_s"),
    ("wall / last end", "wall_vs_last_end"),
    ("HTTP requests", "requests"),
    ("requests per job", "requests_per_job"),
    ("429 answers", "http_429"),
    ("client CPU (s)", "cpu_s"),
    ("client CPU per job (ms)", "cpu_ms_per_job"),
    ("  of which user (ms)", "cpu_user_ms_per_job"),
    ("  of which system (ms)", "cpu_system_ms_per_job"),
    ("client peak RSS (MB)", "max_rss_mb"),
    ("client CPU in --cpu-window (ms)", "window_cpu_ms"),
    ("  a second of it (ms)", "window_cpu_ms_per_s"),
]


def table(runs: list[dict[str, Any]]) -> str:
    width = max(len(label) for label, _ in ROWS) + 2
    header = "".ljust(width) + "".join(r["dispatcher"].rjust(16) for r in runs)
    lines = [header, "-" * len(header)]
    for label, key in ROWS:
        if not any(key in r for r in runs):
            continue  # a figure not asked for (say, --cpu-window)
        cells = "".join(str(r.get(key) if r.get(key) is not None else "-").rjust(16) for r in runs)
        lines.append(label.ljust(width) + cells)
    by_kind = {r["dispatcher"]: r for r in runs}
    if "naive" in by_kind:
        ratio = by_kind["naive"]["requests"] / max(1, runs[0]["requests"])
        lines.append(f"naive / async-orch requests: {ratio:.1f}x")
    if "bare" in by_kind:
        ratio = runs[0]["cpu_s"] / max(1e-9, by_kind["bare"]["cpu_s"])
        lines.append(f"async-orch / bare client CPU: {ratio:.2f}x")
        if runs[0].get("window_cpu_ms") and by_kind["bare"].get("window_cpu_ms"):
            ratio = runs[0]["window_cpu_ms"] / by_kind["bare"]["window_cpu_ms"]
            lines.append(f"async-orch / bare client CPU in --cpu-window: {ratio:.2f}x")
    routes = sorted({k for r in runs for k in r["requests_by_route"]})
    lines.append("")
    lines.append(
        "requests by route".ljust(width) + "".join(r["dispatcher"].rjust(16) for r in runs)
    )
    for route in routes:
        cells = "".join(str(r["requests_by_route"].get(route, 0)).rjust(16) for r in runs)
        lines.append(
            ("  " + route.split("UiPath.Server.Configuration.OData.")[-1]).ljust(width) + cells
        )
    return "\n".join(lines)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Of one dispatcher's rounds, the run with the median client CPU."""
    return sorted(runs, key=lambda r: r["cpu_s"])[(len(runs) - 1) // 2]


def rounds_line(kinds: list[str], rounds: list[list[dict[str, Any]]]) -> str:
    """Client CPU per job of every round, and each round's ratio to the bare client."""
    parts = []
    for i, kind in enumerate(kinds):
        parts.append(f"{kind} " + " ".join(f"{r[i]['cpu_ms_per_job']:.2f}" for r in rounds))
    if "bare" in kinds:
        ours, bare = kinds.index("async-orch"), kinds.index("bare")
        ratios = " ".join(f"{r[ours]['cpu_s'] / max(1e-9, r[bare]['cpu_s']):.2f}" for r in rounds)
        parts.append(f"async-orch / bare {ratios}")
    return "client CPU per job (ms) by round: " + "; ".join(parts)


def machine_line() -> str:
    """What the figures were measured on: CPU times differ from machine to machine,
    so compare dispatchers within one run (the ratios), not across runs."""
    from compare_peers import machine  # a sibling script: benchmarks/ is on sys.path

    m = machine()
    return f"machine: {m['cpu_model'] or m['system']}, {m['cpus']} CPUs, Python {m['python']}"


def add_workload_arguments(
    parser: argparse.ArgumentParser,
    *,
    jobs: int,
    folders: int,
    capacity: int,
    duration: tuple[float, float],
    time_scale: float,
) -> None:
    """The options that shape the simulated workload (see scenario_text), with these
    defaults."""
    parser.add_argument("--jobs", type=int, default=jobs)
    parser.add_argument("--folders", type=int, default=folders)
    parser.add_argument("--capacity", type=int, default=capacity, help="robot slots per folder")
    parser.add_argument(
        "--duration",
        type=float,
        nargs=2,
        default=duration,
        metavar=("LOW", "HIGH"),
        help="simulated seconds per job",
    )
    parser.add_argument(
        "--time-scale", type=float, default=time_scale, help="simulated seconds per real second"
    )
    parser.add_argument("--seed", type=int, default=2024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_arguments(
        parser, jobs=1000, folders=10, capacity=20, duration=(30.0, 120.0), time_scale=5.0
    )
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--naive-route",
        choices=("filter", "id"),
        default="filter",
        help="how the naive loop polls: $filter=Id eq N (default) or Jobs(N)",
    )
    parser.add_argument(
        "--naive-timeout",
        type=float,
        default=150.0,
        help="stop the naive run after this many seconds",
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="also run a bare aiohttp client making the same requests as async-orch "
        "(the floor for client CPU)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every dispatcher this many times, alternating; the table shows the "
        "run with the median client CPU, and a line lists every round",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the clients")
    parser.add_argument(
        "--sample",
        action="store_true",
        help="sample the clients' stacks every 0.5 ms of CPU (no cost per call, unlike "
        "--profile); writes samples-CLIENT.txt",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        help="directory for the JSON document and profiles (default: benchmarks/results)",
    )
    parser.add_argument(
        "--cpu-window",
        type=float,
        nargs=2,
        metavar=("START", "END"),
        help="also measure each client's CPU between these seconds of its run (say, "
        "while every job runs and none ends: the cost of watching alone)",
    )
    parser.add_argument("--worker", choices=("async-orch", "naive", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    args.results.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "bench.toml"
        scenario.write_text(scenario_text(args))
        kinds = ["async-orch"] + ([] if args.skip_naive else ["naive"])
        kinds += ["bare"] if args.bare else []
        # Rounds alternate the dispatchers, so a change in the machine's load
        # (which moves CPU figures more than anything) falls on all of them alike.
        rounds = [[measure(kind, args, scenario) for kind in kinds] for _ in range(args.rounds)]
    runs = [median_run([r[i] for r in rounds]) for i in range(len(kinds))]
    print(table(runs))
    if args.rounds > 1:
        print(rounds_line(kinds, rounds))
    machine = machine_line()
    print(machine)
    document = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "url", "results")},
        "cpu_count": os.cpu_count(),
        "machine": machine,
        "targets": TARGETS,
        "runs": runs,
        "rounds": rounds,
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results / f"bench-dispatch-{stamp}.json"
    path.write_text(json.dumps(document, indent=2))
    print(json.dumps(document))
    print(f"written to {path}", file=sys.stderr)


if __name__ == "__main__":
    random.seed(0)
    main()
