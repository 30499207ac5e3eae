"""Ctrl-C (SIGINT) during `async-orch dispatch`: exit 130, journal written, jobs
stopped or left running as asked."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import (
    cli_env,
    finish,
    journal_counts,
    run_cli,
    simulator_jobs,
    spawn_cli,
    wait_until,
)

from async_orch._journal import Journal
from async_orch.simulator import SimulatorHandle

pytestmark = pytest.mark.slow  # every test here starts a process

# DailyReport runs 20-60 simulated seconds: 2-6 s at this scale, so the jobs are
# still running when the signal comes, and a SoftStop takes 0.5 s.
TIME_SCALE = 10.0
COUNT = 6


async def _interrupt(sim: SimulatorHandle, tmp_path: Path, *extra: str) -> tuple[Any, Path]:
    journal = tmp_path / "interrupted.sqlite"
    process = await spawn_cli(
        "dispatch", "--url", sim.url, "--process", "DailyReport", "--folder", "Shared",
        "--count", str(COUNT), "--journal", str(journal), "--format", "jsonl",
        "--stop-grace", "5", *extra,
        env=cli_env(tmp_path),
    )  # fmt: skip
    await wait_until(lambda: journal_counts(journal)[0] == COUNT, process=process)
    process.send_signal(signal.SIGINT)
    return await finish(process), journal


async def test_sigint_with_stop_stops_every_job_writes_the_journal_and_exits_130(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    run, journal = await _interrupt(sim, tmp_path, "--on-interrupt", "stop")
    assert run.returncode == 130, run.stderr
    assert "interrupted: stopping the jobs started" in run.stderr
    assert f"async-orch dispatch --resume {journal}" in run.stderr
    assert "Traceback" not in run.stderr

    assert simulator_jobs(sim)["by_state"] == {"Stopped": COUNT}
    assert f"{COUNT} jobs stopped" in run.stderr
    rows = run.rows()  # what is known is written: one row per job
    assert len(rows) == COUNT
    assert {r["outcome"] for r in rows} == {"stopped"}
    with Journal.open(journal) as opened:
        assert {j.outcome for j in opened.jobs()} == {"stopped"}
        assert "interrupted" in [e["kind"] for e in opened.events()]
    # Each row says the stop was sent, and how many StartJobs its start took, in
    # what the run wrote and in the journal.
    assert {r["stop_sent"] for r in rows} <= {"SoftStop", "Kill"}
    assert {r["attempts"] for r in rows} == {1}
    shown = await run_cli("jobs", "--journal", str(journal), env=cli_env(tmp_path))
    assert [(r["stop_sent"], r["attempts"]) for r in shown.rows()] == [
        (r["stop_sent"], r["attempts"]) for r in rows
    ]


async def test_sigint_by_default_leaves_jobs_running_and_resume_finishes_them(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    run, journal = await _interrupt(sim, tmp_path)
    assert run.returncode == 130, run.stderr
    assert "interrupted: leaving the jobs started running" in run.stderr
    by_state = simulator_jobs(sim)["by_state"]
    assert by_state.get("Stopped", 0) == 0
    assert by_state.get("Pending", 0) + by_state.get("Running", 0) > 0
    assert {r["outcome"] for r in run.rows()} <= {"unfinished", "successful", "faulted"}

    resumed = await run_cli("dispatch", "--resume", str(journal), env=cli_env(tmp_path))
    assert resumed.returncode in (0, 1), resumed.stderr  # DailyReport may fault (3%)
    # A re-attached job keeps the attempts its start took, journaled by the first run.
    assert {r["attempts"] for r in resumed.rows()} == {1}
    assert "0 to look up by Reference" in resumed.stderr  # every start was journaled
    assert {r["outcome"] for r in resumed.rows()} <= {"successful", "faulted"}
    jobs = simulator_jobs(sim)
    assert jobs["created"] == COUNT
    assert jobs["duplicate_references"] == {}


def journal_states(path: Path) -> dict[int, str | None]:
    """The state column of each job of a journal being written by another process."""
    if not path.exists():
        return {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return dict(db.execute("SELECT job_id, state FROM jobs").fetchall())
        finally:
            db.close()
    except sqlite3.OperationalError:  # created, schema not written yet
        return {}


async def test_the_journal_records_running_as_soon_as_a_job_is_seen_running(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    journal = tmp_path / "states.sqlite"
    process = await spawn_cli(
        "dispatch", "--url", sim.url, "--process", "DailyReport", "--folder", "Shared",
        "--count", "3", "--journal", str(journal), "--format", "jsonl",
        env=cli_env(tmp_path),
    )  # fmt: skip
    # While the dispatch runs, not only once it ends: a crash keeps what was seen.
    await wait_until(lambda: "Running" in journal_states(journal).values(), process=process)
    process.send_signal(signal.SIGINT)
    run = await finish(process)
    assert run.returncode == 130, run.stderr

    with Journal.open(journal) as opened:
        seen_running = {
            e["job_id"]
            for e in opened.events()
            if e["kind"] == "state" and e["detail"] == {"state": "Running"}
        }
        assert seen_running and seen_running <= {j.job_id for j in opened.jobs()}
        (abandoned,) = [e["detail"] for e in opened.events() if e["kind"] == "abandoned"]
    # The CLI says what it left running itself, so the library's warning stays quiet.
    left = len(abandoned["left_running"])
    assert left > 0 and f"{left} jobs may still be running" in run.stderr
    assert "jobs_left_running" not in run.stderr


async def test_sigint_under_the_embedded_simulator_does_not_suggest_a_resume(
    tmp_path: Path,
) -> None:
    # The embedded simulator ends with the process: a resume would find nothing.
    journal = tmp_path / "embedded.sqlite"
    process = await spawn_cli(
        "dispatch", "--simulator", "--time-scale", str(TIME_SCALE), "--process", "DailyReport",
        "--folder", "Shared", "--count", str(COUNT), "--journal", str(journal),
        env=cli_env(tmp_path),
    )  # fmt: skip
    await wait_until(lambda: journal_counts(journal)[0] == COUNT, process=process)
    process.send_signal(signal.SIGINT)
    run = await finish(process)
    assert run.returncode == 130, run.stderr
    assert "the embedded simulator's jobs ended with it" in run.stderr
    assert "--resume" not in run.stderr
    assert "Traceback" not in run.stderr
