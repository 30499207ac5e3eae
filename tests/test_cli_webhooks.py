"""`dispatch --webhook-listen`: the CLI receives the simulator's signed events."""

from __future__ import annotations

import argparse
import json
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_harness import cli_env, run_cli
from test_webhooks_e2e import SECRET, subscribe

from async_orch import ConfigurationError
from async_orch._cli.dispatch_cmd import _webhook_secret
from async_orch._cli.webhook_server import WebhookRun, describe_counts, serve_webhooks
from async_orch._webhooks import WebhookReceiver, signature_of
from async_orch.simulator import SimulatorHandle


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow  # starts a process
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


@pytest.mark.slow
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


@pytest.mark.slow
async def test_dispatch_simulator_subscribes_its_own_webhook_and_counts_events(
    tmp_path: Path,
) -> None:
    env = cli_env(tmp_path, ASYNC_ORCH_WEBHOOK_SECRET=SECRET)
    done = await run_cli(
        "dispatch", "--simulator", "--process", "Echo", "--folder", "Shared",
        "--count", "20", "--format", "jsonl", "--webhook-listen", "127.0.0.1:0", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(done.rows()) == 20
    counted = re.search(
        r"^webhook events: (\d+) accepted \(all about this run's jobs\), 0 refused$",
        done.stderr,
        re.M,
    )
    assert counted is not None, done.stderr
    # Each job's end is one event; the run ends when the last job is seen, by event or poll.
    assert 0 < int(counted[1]) <= 20, done.stderr
    assert SECRET not in done.stderr + done.stdout


@pytest.mark.slow
async def test_a_wrong_secret_is_counted_at_the_end_of_the_run(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    port = free_port()
    subscribe(sim, f"http://127.0.0.1:{port}/", secret="the webhook's real secret")
    done = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "Shared",
        "--count", "5", "--format", "jsonl", "--webhook-listen", f"127.0.0.1:{port}",
        env=cli_env(tmp_path, ASYNC_ORCH_WEBHOOK_SECRET=SECRET),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # polling saw every job end
    counted = re.search(
        r"^webhook events: 0 accepted, (\d+) refused \((\d+) bad signature: "
        r"is ASYNC_ORCH_WEBHOOK_SECRET the webhook's secret\?\)$",
        done.stderr,
        re.M,
    )
    assert counted is not None, done.stderr
    assert counted[1] == counted[2] and int(counted[1]) > 0


def test_the_closing_line_names_each_refusal_and_an_empty_run() -> None:
    counts = {"accepted": 3, "duplicate": 1, "stale": 2, "unsigned": 1}
    assert describe_counts(counts) == (
        "webhook events: 3 accepted, 3 refused (1 unsigned: give the webhook a secret; "
        "2 stale: is this machine's clock right?)"
    )
    assert describe_counts({}, ended=4) == (
        "webhook events: 0 accepted, 0 refused (none arrived though 4 jobs ended: "
        "is the webhook created in Orchestrator with this URL?)"
    )


def test_no_webhook_hint_when_no_job_ended_or_the_cli_created_the_webhook() -> None:
    """Nothing to hear of (no job ended: a resume with nothing to watch, jobs left
    running), or the webhook is the embedded simulator's, made by the CLI: no question
    about whether the webhook exists (new-user review h9)."""
    assert describe_counts({}) == "webhook events: 0 accepted, 0 refused"
    assert describe_counts({}, ended=4, created_here=True) == (
        "webhook events: 0 accepted, 0 refused"
    )


def test_a_resume_counts_only_the_jobs_that_ended_in_it() -> None:
    before: list[dict[str, Any]] = [
        {"job_id": 1, "state": "Successful"},  # ended in an earlier run
        {"job_id": 2, "state": "Running"},
        {"job_id": None, "state": None},  # not started yet
    ]
    nothing_new = WebhookRun(WebhookReceiver(SECRET), rows_before=before)
    nothing_new.run_ended(before)  # a resume with nothing to watch
    assert nothing_new.describe() == "webhook events: 0 accepted, 0 refused"
    one_ended = WebhookRun(WebhookReceiver(SECRET), rows_before=before)
    one_ended.run_ended([before[0], {"job_id": 2, "state": "Faulted"}, before[2]])
    assert one_ended.describe().endswith(
        "(none arrived though 1 job ended: is the webhook created in Orchestrator with this URL?)"
    )


def completed(event_id: str, job_id: int) -> tuple[bytes, str]:
    body = json.dumps({
        "Type": "job.completed", "EventId": event_id,
        "Timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "Job": {"Id": job_id, "Key": f"KEY-{job_id}", "State": "Successful"},
        "OrganizationUnitId": 7,
    }).encode()  # fmt: skip
    return body, signature_of(SECRET, body)


def test_the_closing_line_says_how_many_events_were_about_other_jobs_of_the_tenant() -> None:
    """A webhook is tenant-wide: "17 accepted" for a 10-job run counted other callers'
    events as if they were the run's (new-user review h9)."""
    run = WebhookRun(WebhookReceiver(SECRET))
    for event_id, job_id in [("e1", 101), ("e2", 102), ("e3", 999), ("e4", 998), ("e5", 103)]:
        assert run.receiver.receive(*completed(event_id, job_id)) == (200, "accepted")
    run.run_ended([{"job_id": n, "state": "Successful"} for n in (101, 102, 103)])
    assert run.describe() == (
        "webhook events: 5 accepted (2 about other jobs of the tenant), 0 refused"
    )
    assert describe_counts({"accepted": 3}, about_others=0) == (
        "webhook events: 3 accepted (all about this run's jobs), 0 refused"
    )


@pytest.mark.slow  # starts a process
async def test_dispatch_simulator_with_no_job_ended_asks_nothing_about_the_webhook(
    tmp_path: Path,
) -> None:
    # PurchaseApproval suspends 0.1 s in at this scale and waits for an approval (or
    # waits Pending for Finance's one robot): no job ends within the 2 s.
    done = await run_cli(
        "dispatch", "--simulator", "--scenario", "realistic", "--time-scale", "100",
        "--process", "PurchaseApproval", "--folder", "Finance", "--count", "2",
        "--timeout", "2", "--format", "jsonl", "--webhook-listen", "127.0.0.1:0",
        env=cli_env(tmp_path),
    )  # fmt: skip
    assert [r["outcome"] for r in done.rows()] == ["timed_out"] * 2, done.stderr  # none ended
    assert re.search(r"^webhook events: 0 accepted, 0 refused$", done.stderr, re.M), done.stderr
    assert "none arrived" not in done.stderr


def test_with_the_embedded_simulator_the_secret_may_be_left_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ASYNC_ORCH_WEBHOOK_SECRET", raising=False)
    listen = ("127.0.0.1", 0)
    drawn = _webhook_secret(argparse.Namespace(webhook_listen=listen, simulator=True))
    assert drawn and len(drawn) >= 32
    with pytest.raises(ConfigurationError, match="ASYNC_ORCH_WEBHOOK_SECRET"):
        _webhook_secret(argparse.Namespace(webhook_listen=listen, simulator=False))


async def test_listening_where_it_cannot_says_what_to_change() -> None:
    # Every failure to listen said "pick a free port", even for an address that is
    # not this machine's (new-user review h9).
    receiver = WebhookReceiver(SECRET)
    async with serve_webhooks(receiver, "127.0.0.1", 0) as url:
        busy = int(url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(ConfigurationError, match=r"pick a free port \(or 0 for any\)$"):
            async with serve_webhooks(receiver, "127.0.0.1", busy):
                pass
    # 192.0.2.1 (TEST-NET-1) is no address of this machine.
    with pytest.raises(ConfigurationError, match=r"give an address of this machine: 0\.0\.0\.0"):
        async with serve_webhooks(receiver, "192.0.2.1", 0):
            pass
