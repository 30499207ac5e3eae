"""One batch of 10,000 and 100,000 jobs: the client's memory and StartJobs rate.

For each size N, a fresh server and a fresh client process: the client builds N
requests and runs ``OrchestratorClient.run_jobs`` on them for ``--seconds``, then
cancels the batch. It reports its RSS (peak while the batch ran, and before it
began, with the N requests already built) and the rate of StartJobs it made
(first to last ``on_started``, so resolving folders is not counted).

The server is a minimal aiohttp app answering canned bodies (one folder, one
release, StartJobs creating Pending jobs, every job Running when listed), so the
figures are the client's; ``--server simulator`` runs against the simulator instead.

    python benchmarks/bench_scale.py                      # N = 10,000 and 100,000: ~1 minute
    python benchmarks/bench_scale.py --jobs 2000 --seconds 2
    python benchmarks/bench_scale.py --server simulator --jobs 10000

See benchmarks/README.md for figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_dispatch import CLIENT_ID, CLIENT_SECRET, PROCESS, Simulator, folder_names, scenario_text

FOLDER = folder_names(1)[0]
TARGET_RSS_MB = 300
TARGET_STARTS_PER_SECOND = 1000
QUEUED_SECONDS = 3.0


# -- the canned server (run with --serve) -------------------------------------------------


def canned_app() -> Any:
    from aiohttp import web

    ids = iter(range(1, 10**9))
    folder = {"Id": 1, "DisplayName": FOLDER, "FullyQualifiedName": FOLDER}
    release = {"Id": 1, "Key": "release-1", "Name": PROCESS, "ProcessKey": PROCESS}

    def job(job_id: int, state: str) -> dict[str, Any]:
        return {"Id": job_id, "State": state, "OrganizationUnitId": 1}

    async def answer(request: web.Request) -> web.Response:
        path = request.path
        if path.endswith(".StartJobs"):
            body = await request.json()
            count = body["startInfo"].get("JobsCount", 1)
            return web.json_response({"value": [job(next(ids), "Pending") for _ in range(count)]})
        if path.endswith("/odata/Folders"):
            return web.json_response({"value": [folder]})
        if path.endswith("/odata/Releases"):
            return web.json_response({"value": [release]})
        if path.endswith("/odata/Jobs"):
            listed = re.findall(r"\d+", request.query.get("$filter", "").partition("Id in")[2])
            return web.json_response({"value": [job(int(i), "Running") for i in listed]})
        if found := re.search(r"/odata/Jobs\((\d+)\)$", path):
            return web.json_response(job(int(found.group(1)), "Running"))
        return web.json_response({"message": f"not canned: {path}"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def serve() -> None:
    from aiohttp import web

    runner = web.AppRunner(canned_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"http://127.0.0.1:{port}/bench/DefaultTenant/orchestrator_", flush=True)
    await asyncio.Event().wait()


class Server:
    """The canned server (``--serve``) or the simulator, in a subprocess."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self._simulator: Simulator | None = None
        if kind == "simulator":
            scenario = workdir / "scale.toml"
            shape = argparse.Namespace(
                folders=1, capacity=200_000, duration=(3600, 3600), seed=1, time_scale=1
            )
            scenario.write_text(scenario_text(shape))
            self._simulator = Simulator(scenario)
            self.url = self._simulator.url
            return
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.stop()
            raise RuntimeError(f"the canned server did not start (said {self.url!r})")

    def stop(self) -> None:
        if self._simulator is not None:
            self._simulator.stop()
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- the client (run with --client) ---------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the peak


async def run_client(args: argparse.Namespace) -> dict[str, Any]:
    import anyio

    from async_orch import (
        ClientCredentials,
        DispatchLimits,
        Hooks,
        JobRequest,
        OrchestratorClient,
        Settings,
        StaticToken,
    )

    credentials: ClientCredentials | StaticToken = (
        StaticToken(token="canned")
        if args.server == "canned"
        else ClientCredentials(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    )
    settings = Settings(url=args.url, credentials=credentials)
    requests = [
        JobRequest(process=PROCESS, folder=FOLDER, inputs={"n": i, "tag": f"job-{i}"})
        for i in range(args.jobs)
    ]
    before = rss_mb()
    started: list[float] = []
    peak = before

    def on_started(index: int, handle: Any) -> None:
        started.append(time.perf_counter())

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mb())
            await anyio.sleep(0.1)

    cpu = time.process_time()
    limits = DispatchLimits(max_in_flight=args.in_flight, starts_per_second=args.rate)
    async with OrchestratorClient(settings, limits=limits) as orch:
        with anyio.move_on_after(args.seconds):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sample)
                await orch.run_jobs(requests, hooks=Hooks(on_started=on_started))
                tg.cancel_scope.cancel()
    cpu = time.process_time() - cpu
    peak = max(peak, rss_mb())
    span = started[-1] - started[0] if len(started) > 1 else 0.0
    return {
        "jobs": args.jobs,
        "started": len(started),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "starts_per_second": round((len(started) - 1) / span, 1) if span else 0.0,
        "cpu_ms_per_start": round(1000 * cpu / max(1, len(started)), 3),
    }


# -- the driver ----------------------------------------------------------------------------


def measure(
    args: argparse.Namespace, jobs: int, workdir: Path, *, seconds: float, rate: float | None
) -> dict[str, Any]:
    server = Server(args.server, workdir)
    try:
        command = [sys.executable, __file__, "--client", "--url", server.url]
        command += ["--jobs", str(jobs), "--seconds", str(seconds)]
        command += ["--in-flight", str(args.in_flight), "--server", args.server]
        command += ["--rate", str(rate)] if rate else []
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 600, check=False
        )
    finally:
        server.stop()
    if done.returncode != 0:
        raise RuntimeError(f"client failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seconds", type=float, default=10.0, help="batch run per size")
    parser.add_argument("--in-flight", type=int, default=64, help="max_in_flight")
    parser.add_argument("--server", choices=("canned", "simulator"), default="canned")
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)  # starts_per_second
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return 0
    if args.client:
        args.jobs = args.jobs[0]
        print(json.dumps(asyncio.run(run_client(args))))
        return 0

    server = (
        "canned aiohttp responder (StartJobs answered at once)"
        if args.server == "canned"
        else "the simulator (its own CPU may be the limit)"
    )
    print(f"server: {server}; max_in_flight {args.in_flight}; {args.seconds:g} s per size")
    print(f"machine: {sys.platform}, Python {sys.version.split()[0]}")
    print(
        f"{'jobs':>8} {'RSS before':>11} {'RSS queued':>11} {'started':>8} {'RSS peak':>9} "
        f"{'starts/s':>9} {'CPU ms/start':>13}"
    )
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in args.jobs:
            # Every job queued: one start a second, for QUEUED_SECONDS.
            queued = measure(args, jobs, Path(tmp), seconds=QUEUED_SECONDS, rate=1.0)
            r = measure(args, jobs, Path(tmp), seconds=args.seconds, rate=None)
            print(
                f"{jobs:>8} {queued['rss_before_mb']:>9.0f}MB {queued['rss_peak_mb']:>9.0f}MB "
                f"{r['started']:>8} {r['rss_peak_mb']:>7.0f}MB {r['starts_per_second']:>9.0f} "
                f"{r['cpu_ms_per_start']:>13.3f}"
            )
            ok = ok and max(queued["rss_peak_mb"], r["rss_peak_mb"]) < TARGET_RSS_MB
    print(
        "RSS before: the client with its N requests built; RSS queued: peak while they "
        f"wait ({QUEUED_SECONDS:g} s at 1 start/s); started, RSS peak, starts/s, CPU: "
        f"{args.seconds:g} s with no rate limit (then cancelled)"
    )
    print(
        f"targets: RSS < {TARGET_RSS_MB} MB for 100,000 jobs; "
        f">= {TARGET_STARTS_PER_SECOND} starts/s when the server allows it"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
