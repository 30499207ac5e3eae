"""Run the `async-orch` command line as a subprocess, as users do.

The simulator runs in the test's own event loop (``start_simulator``), so the
CLI is spawned with asyncio's subprocess API: a blocking ``subprocess.run``
would freeze the simulator it talks to. The benchmark scripts, which start their
own simulators, run with ``run_benchmark``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator_process import cli_env as clean_cli_env

from async_orch.simulator import SimulatorHandle

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 60.0  # generous: a cold interpreter on a busy 2-core machine
SIGKILL = signal.SIGKILL


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    def rows(self) -> list[dict[str, Any]]:
        """The JSON Lines written to stdout."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment (``simulator_process.cli_env``) with the demo client, then
    ``extra``."""
    defaults = {
        "UIPATH_CLIENT_ID": "demo-client",
        "UIPATH_CLIENT_SECRET": "demo-secret",
        # The local simulator answers in milliseconds: a second is far longer than
        # it can still be working on a StartJobs, and keeps resumes quick.
        "ASYNC_ORCH_RECONCILE_WINDOW": "1",
    }
    return clean_cli_env(tmp_path, **{**defaults, **extra})


async def spawn_cli(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "async_orch",
        *args,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process) -> CliRun:
    stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    assert process.returncode is not None
    return CliRun(process.returncode, stdout.decode(), stderr.decode())


async def run_cli(*args: str, env: dict[str, str]) -> CliRun:
    return await finish(await spawn_cli(*args, env=env))


async def wait_until(
    condition: Callable[[], bool],
    *,
    process: asyncio.subprocess.Process | None = None,
    deadline: float = 30.0,
    every: float = 0.05,
) -> None:
    """Check ``condition`` every ``every`` seconds until it holds (or fail)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if process is not None and process.returncode is not None:
            raise AssertionError(f"the CLI ended first (exit {process.returncode})")
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


def journal_counts(path: Path) -> tuple[int, int]:
    """(jobs recorded, jobs final) in a journal being written by another process."""
    if not path.exists():
        return (0, 0)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = db.execute("SELECT count(*), count(outcome) FROM jobs").fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError:  # created, schema not written yet
        return (0, 0)
    return (int(row[0]), int(row[1]))


async def dispatch_killed_midway(
    journal: Path, *args: str, env: dict[str, str], recorded: int = 5
) -> None:
    """Run ``dispatch --journal JOURNAL --quiet ARGS`` and kill -9 it once the
    journal records ``recorded`` jobs (give --rate so that is before the end)."""
    process = await spawn_cli("dispatch", "--journal", str(journal), "--quiet", *args, env=env)
    await wait_until(lambda: journal_counts(journal)[0] >= recorded, process=process)
    process.send_signal(SIGKILL)
    await finish(process)


def simulator_jobs(sim: SimulatorHandle) -> dict[str, Any]:
    """The simulator's job counters (created, by_state, by_reference, duplicates)."""
    jobs: dict[str, Any] = sim.simulator.stats()["jobs"]
    return jobs


def write_file(folder: Path, name: str, content: str | bytes) -> Path:
    """A user's file: text is written as UTF-8, bytes as given (say, Windows-1252)."""
    path = folder / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def closed_port() -> int:
    """A local port nothing listens on (bound, then released), for "cannot connect"."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_one_line_exit_2(run: CliRun, *needles: str) -> None:
    """A usage or configuration error: exit 2, one line on stderr holding every needle,
    nothing on stdout, no traceback."""
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr  # one message, nothing else
    for needle in needles:
        assert needle in lines[0], lines[0]


def run_benchmark(script: str, *args: str, results: Path) -> tuple[str, dict[str, Any]]:
    """Run ``benchmarks/SCRIPT ARGS --results RESULTS`` to its end; it must exit 0 and
    name the machine. Its stdout, and the one JSON document it wrote in ``results``."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args, "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "machine: " in done.stdout
    (written,) = results.glob(f"{Path(script).stem.replace('_', '-')}-*.json")
    document: dict[str, Any] = json.loads(written.read_text())
    return done.stdout, document
