"""`dispatch --webhook-listen`: the CLI receives the simulator's signed events."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import cli_env, run_cli
from test_webhooks_e2e import SECRET, subscribe

from async_orch.simulator import SimulatorHandle

pytestmark = pytest.mark.slow  # every test here starts a process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_dispatch_receives_webhooks_and_every_job_ends_with_outputs(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    port = free_port()
    subscribe(sim, f"http://127.0.0.1:{port}/uipath")
    env = cli_env(tmp_path, ASYNC_ORCH_WEBHOOK_SECRET=SECRET)
    done = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "Shared",
        "--count", "12", "--inputs", '{"n": 1}', "--format", "jsonl",
        "--webhook-listen", f"127.0.0.1:{port}", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"receiving webhook events at http://127.0.0.1:{port}/" in done.stderr
    rows = done.rows()
    assert len(rows) == 12
    assert all(r["outcome"] == "successful" and r["outputs"] == {"n": 1} for r in rows), rows
    assert sim.simulator.webhooks.counts["sent"] >= 12  # answered 2xx by the CLI
    assert SECRET not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("extra", "env_secret", "message"),
    [
        (["--webhook-listen", "127.0.0.1:0"], None, "ASYNC_ORCH_WEBHOOK_SECRET"),
        (["--webhook-listen", "nohost"], SECRET, "expected HOST:PORT"),
    ],
)
async def test_webhook_listen_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, extra: list[str], env_secret: str | None, message: str
) -> None:
    env = cli_env(tmp_path)
    if env_secret is not None:
        env["ASYNC_ORCH_WEBHOOK_SECRET"] = env_secret
    done = await run_cli(
        "dispatch", "--url", "http://127.0.0.1:9/x/y/orchestrator_", "--process", "Echo",
        "--folder", "Shared", *extra, env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
