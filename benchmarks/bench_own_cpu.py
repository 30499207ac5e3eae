"""async-orch's own CPU per job: a batch over an in-memory HTTP sender (no sockets, no
aiohttp, no server process), so the figure is the client's own code plus JSON, and
moves by a few per cent at most between runs on a busy box. For comparing versions
of the client (run it in each checkout), not for comparing with other clients:
bench_dispatch.py --bare does that, over real sockets.

    python benchmarks/bench_own_cpu.py                  # 1,000 jobs, 5 rounds, ~2 s
    python benchmarks/bench_own_cpu.py --jobs 200 --rounds 2
    python benchmarks/bench_own_cpu.py --instructions   # exact, under valgrind, ~1 min

Every job is Pending when started and Successful when first asked about: one
StartJobs, one list call settling many jobs, one read by id each (about 2 requests
a job, as against the simulator). Prints the CPU per job of each round and the
lowest (the least disturbed by the rest of the machine). With ``--instructions`` it
counts the instructions a job costs instead (valgrind's callgrind, two batch sizes,
their difference): within about 1 % run to run, so a change of 2 % shows.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from multidict import CIMultiDict

from async_orch import JobRequest, PollPolicy, Settings, StaticToken
from async_orch._dispatcher import Dispatcher
from async_orch._http import Response
from async_orch._resources import OrchestratorAPI
from async_orch._transport import Transport

BASE = "https://cloud.example.com/bench/DefaultTenant/orchestrator_"
FOLDERS = [f"Bench{n:02d}" for n in range(1, 11)]
_JSON = CIMultiDict({"Content-Type": "application/json; charset=utf-8"})
_IDS_IN = re.compile(r"Id in \(([\d,]+)\)")
_RANGE = re.compile(r"Id ge (\d+) and Id le (\d+)")


def _key(kind: int, number: int) -> str:
    return f"00000000-0000-0000-{kind:04d}-{number:012d}"


class InMemoryOrchestrator:
    """An HTTPSender answering the calls a batch makes, from memory, at once."""

    closed = False

    def __init__(self, checks: int = 1) -> None:
        self._next_id = 1000
        self._jobs: dict[int, tuple[str | None, str | None, int]] = {}
        self._checks = checks  # list answers that name a job, the last one Successful
        self._listed: dict[int, int] = {}  # times each job was in a list answer

    def _dto(self, job_id: int, state: str, outputs: str | None) -> dict[str, Any]:
        inputs, reference, folder = self._jobs[job_id]
        ended = state == "Successful"
        return {
            "Id": job_id,
            "Key": _key(2, job_id),
            "State": state,
            "CreationTime": "2026-12-05T10:00:00.123Z",
            "StartTime": "2026-12-05T10:00:01.5Z" if ended else None,
            "EndTime": "2026-12-05T10:00:09.25Z" if ended else None,
            "InputArguments": inputs,
            "OutputArguments": outputs,
            "Reference": reference,
            "OrganizationUnitId": folder,
            "ReleaseName": "Work",
            "Source": "Manual",
            "JobPriority": "Normal",
            "Info": "Job completed" if ended else None,
        }

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        max_body: int | None = None,
    ) -> Response:
        await asyncio.sleep(0)  # a trip through the event loop, as a real answer takes
        path = url.split("orchestrator_/", 1)[1]
        lower = {k.lower(): v for k, v in headers.items()}
        folder_key = lower.get("x-uipath-folderkey")
        folder = int(folder_key.rsplit("-", 1)[1]) if folder_key else 0
        answer: Any
        if path.startswith("odata/Folders"):
            answer = {
                "value": [
                    {"Id": n, "Key": _key(1, n), "DisplayName": name, "FullyQualifiedName": name}
                    for n, name in enumerate(FOLDERS, start=1)
                ]
            }
        elif path.startswith("odata/Releases"):
            release = {"Id": folder, "Key": _key(3, folder), "Name": "Work", "ProcessKey": "Work"}
            answer = {"value": [release | {"OrganizationUnitId": folder}]}
        elif "StartJobs" in path:
            assert body is not None
            info = json.loads(body)["startInfo"]
            self._next_id += 1
            self._jobs[self._next_id] = (info.get("InputArguments"), info.get("Reference"), folder)
            answer = {"value": [self._dto(self._next_id, "Pending", None)]}
        elif path.startswith("odata/Jobs("):
            job_id = int(path[len("odata/Jobs(") : -1])
            answer = self._dto(job_id, "Successful", self._jobs[job_id][0])  # Echo
        elif path.startswith("odata/Jobs"):
            answer = {"value": self._list_rows((params or {}).get("$filter", ""), folder)}
        else:
            raise AssertionError(f"unexpected call: {method} {path}")
        return Response(200, _JSON, json.dumps(answer).encode(), url)

    def _list_rows(self, odata_filter: str, folder: int) -> list[dict[str, Any]]:
        """An id list's or a range query's rows: a job is Running until it has been
        listed ``checks`` times, then Successful (a range query, which asks for
        unfinished jobs, leaves it out then)."""
        found = _IDS_IN.search(odata_filter)
        by_id = {int(i) for i in found.group(1).split(",")} if found else set()
        ids = list(by_id)
        in_range = _RANGE.search(odata_filter)
        if in_range:
            low, high = int(in_range.group(1)), int(in_range.group(2))
            ids += [i for i, job in self._jobs.items() if low <= i <= high and job[2] == folder]
        rows: list[dict[str, Any]] = []
        for job_id in dict.fromkeys(ids):
            listed = self._listed[job_id] = self._listed.get(job_id, 0) + 1
            if listed < self._checks:
                rows.append({"Id": job_id, "State": "Running"})
            elif job_id in by_id:  # a range's own rows are the unfinished jobs only
                rows.append({"Id": job_id, "State": "Successful"})
        return rows


async def one_batch(jobs: int, checks: int = 1) -> float:
    """CPU seconds of one batch of ``jobs`` over a fresh in-memory Orchestrator."""
    settings = Settings(url=BASE, credentials=StaticToken(token="bench"))
    async with Transport(settings, sender=InMemoryOrchestrator(checks)) as transport:
        # A list call as soon as a job is due: the batch is settled in about a second.
        poll = PollPolicy(list_budget_per_minute=6000, min_interval=0.05, max_interval=0.2)
        dispatcher = Dispatcher(OrchestratorAPI(transport), poll=poll)
        started = time.process_time()
        requests = [
            JobRequest(process="Work", folder=FOLDERS[i % 10], inputs={"n": i, "tag": f"job-{i}"})
            for i in range(jobs)
        ]
        results = await dispatcher.run(requests)
        cpu = time.process_time() - started
    failed = [r for r in results if r.outcome.value != "successful"]
    if failed:
        raise SystemExit(f"{len(failed)} jobs did not succeed, the first: {failed[0].error}")
    return cpu


def count_instructions(jobs: int, checks: int) -> int:
    """Instructions callgrind counts in a process running one batch of ``jobs``."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--one-batch", str(jobs), "--checks", str(checks)]
    # A fixed hash seed: set and dict orders, and so the count, are the same every run.
    env = os.environ | {"PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def instructions_per_job(jobs: int, checks: int) -> None:
    """Print the instructions one job costs: two batch sizes, their difference (so
    start-up, imports and the warm-up batch cancel out)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    small, large = max(1, jobs // 5), jobs + max(1, jobs // 5)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two processes at once
        low, high = pool.map(lambda n: count_instructions(n, checks), (small, large))
    print(f"jobs {small} and {large}, checks {checks}")
    print(f"instructions per job: {(high - low) / (large - small):,.0f}")


async def one_batch_only(jobs: int, checks: int) -> None:
    await one_batch(50, checks)  # as main's warm-up, so that only the batch differs
    await one_batch(jobs, checks)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs a round (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds measured (default 5)")
    parser.add_argument(
        "--checks", type=int, default=1, help="list answers naming a job, the last Successful"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per job under valgrind instead of timing (~1 min)",
    )
    parser.add_argument("--one-batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_batch is not None:
        await one_batch_only(args.one_batch, args.checks)
        return
    if args.instructions:
        instructions_per_job(args.jobs, args.checks)
        return
    await one_batch(50, args.checks)  # load and warm everything first: not measured
    per_job = [
        await one_batch(args.jobs, args.checks) / args.jobs * 1e6 for _ in range(args.rounds)
    ]
    print(f"jobs {args.jobs}, rounds {args.rounds}, checks {args.checks}")
    print("own CPU per job by round (us): " + " ".join(f"{c:.1f}" for c in per_job))
    print(f"own CPU per job, lowest (us): {min(per_job):.1f}")


if __name__ == "__main__":
    asyncio.run(main())
