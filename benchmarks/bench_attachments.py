"""Big inputs and outputs: the client's peak memory for a batch of jobs whose inputs
(20,000 and 200,000 characters) go up as attachments and whose outputs (the same, an
Echo) come back as OutputFile attachments. Every output must equal its input.

    python benchmarks/bench_attachments.py            # 100 jobs
    python benchmarks/bench_attachments.py --jobs 400

The simulator runs in a process of its own (``async-orch simulator``), so the peak
RSS measured (``ru_maxrss``) is the client's: the inputs the caller holds, the
results, and the transfers (at most 4 at once, each capped). Figures in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from simulator_process import attachments_scenario  # a sibling module on sys.path

from async_orch import ClientCredentials, JobRequest, OrchestratorClient, Outcome, Settings


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def payload(i: int, size: int) -> dict[str, Any]:
    # Non-ASCII and an emoji (2 UTF-16 units), as the tests use.
    return {"Index": i, "Text": ("é🙂" + "x" * 97) * (size // 100)}


async def dispatch(url: str, jobs: int) -> dict[str, Any]:
    settings = Settings(
        url=url,
        credentials=ClientCredentials(
            client_id="app",
            client_secret="secret",
            scopes="OR.Folders.Read OR.Folders.Write OR.Execution.Read OR.Jobs",
        ),
    )
    inputs = [payload(i, 20_000 if i % 2 == 0 else 200_000) for i in range(jobs)]
    # As Python holds them: an emoji makes each str 4 bytes a character.
    input_mb = sum(sys.getsizeof(p["Text"]) for p in inputs) / 2**20
    before = rss_mb()
    began = time.monotonic()
    async with OrchestratorClient(settings) as orch:
        results = await orch.run_jobs(
            [JobRequest(process="Echo", folder="Shared", inputs=p) for p in inputs]
        )
    wall = time.monotonic() - began
    ok = sum(
        r.outcome is Outcome.SUCCESSFUL and r.outputs == p
        for r, p in zip(results, inputs, strict=True)
    )
    return {
        "jobs": jobs,
        "outputs_equal_inputs": ok,
        "inputs_held_mb": round(input_mb, 1),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(rss_mb(), 1),
        "wall_seconds": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100, help="jobs (half 20,000, half 200,000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        scenario = Path(work) / "big.toml"
        scenario.write_text(attachments_scenario(time_scale=100), encoding="utf-8")
        command = [sys.executable, "-m", "async_orch", "simulator", "--port", "0",
                   "--scenario", str(scenario)]  # fmt: skip
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as sim:
            try:
                assert sim.stdout is not None
                url = sim.stdout.readline().strip()
                report = anyio.run(dispatch, url, args.jobs)
            finally:
                sim.terminate()
    for key, value in report.items():
        print(f"{key:22} {value}")
    return 0 if report["outputs_equal_inputs"] == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
