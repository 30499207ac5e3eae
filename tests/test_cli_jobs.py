"""`async-orch jobs` and `async-orch stop`, and connection profiles, as subprocesses."""

from __future__ import annotations

import signal
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

from async_orch.simulator import SimulatorHandle

pytestmark = pytest.mark.slow  # every test here starts a process


async def test_jobs_by_journal_by_id_and_by_reference(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    env = cli_env(tmp_path)
    journal = tmp_path / "j.sqlite"
    done = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "HR", "--count", "2",
        "--inputs", '{"x": "y"}', "--reference-prefix", "hr", "--journal", str(journal), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    offline = await run_cli("jobs", "--journal", str(journal), env=env)
    assert offline.returncode == 0, offline.stderr
    assert offline.rows() == done.rows()

    by_ref = await run_cli(
        "jobs", "--url", sim.url, "--folder", "HR", "--reference", "hr-1", env=env
    )
    assert by_ref.returncode == 0, by_ref.stderr
    (row,) = by_ref.rows()
    assert (row["reference"], row["outcome"], row["outputs"]) == ("hr-1", "successful", {"x": "y"})
    by_id = await run_cli(
        "jobs", "--url", sim.url, "--folder", "HR", "--id", str(row["job_id"]), env=env
    )
    assert by_id.rows()[0]["job_id"] == row["job_id"]

    missing = await run_cli(
        "jobs", "--url", sim.url, "--folder", "HR", "--reference", "nope", env=env
    )
    assert missing.returncode == 2 and "no job with Reference 'nope'" in missing.stderr


async def test_stop_stops_the_unfinished_jobs_of_a_journal(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=5.0)  # DailyReport: 4-12 s
    env = cli_env(tmp_path)
    journal = tmp_path / "left.sqlite"
    process = await spawn_cli(
        "dispatch", "--url", sim.url, "--process", "DailyReport", "--folder", "Shared",
        "--count", "3", "--journal", str(journal), "--quiet", env=env,
    )  # fmt: skip
    await wait_until(lambda: journal_counts(journal)[0] == 3, process=process)
    process.send_signal(signal.SIGINT)  # leaves them running
    assert (await finish(process)).returncode == 130

    stopped = await run_cli("stop", "--journal", str(journal), "--kill", env=env)
    assert stopped.returncode == 1, stopped.stderr  # jobs stopped: 1, as documented
    assert "Kill sent to 3 unfinished jobs" in stopped.stderr
    by_state = simulator_jobs(sim)["by_state"]
    assert by_state.get("Running", 0) == by_state.get("Pending", 0) == 0
    rows = stopped.rows()
    assert {r["outcome"] for r in rows} == {"stopped"}
    assert all(r["detected"] for r in rows)  # when stop saw them end
    # The rows say what was sent, and keep the attempts the dispatch journaled.
    assert {(r["stop_sent"], r["attempts"]) for r in rows} == {("Kill", 1)}
    shown = await run_cli("jobs", "--journal", str(journal), env=env)
    assert {(r["stop_sent"], r["attempts"]) for r in shown.rows()} == {("Kill", 1)}


async def test_a_named_profile_supplies_url_and_credentials(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    config = tmp_path / "config" / "async-orch" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'[profiles.sim]\nurl = "{sim.url}"\nclient_id = "demo-client"\n'
        'client_secret_env = "SIM_SECRET"\nfolder = "Finance"\n',
        encoding="utf-8",
    )
    env = cli_env(
        tmp_path, SIM_SECRET="demo-secret", UIPATH_URL="http://wrong.invalid/a/b/orchestrator_"
    )
    del env["UIPATH_CLIENT_ID"], env["UIPATH_CLIENT_SECRET"]
    run = await run_cli("check", "--profile", "sim", "--process", "InvoiceProcessing", env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "folder         Finance (Id" in run.stdout

    unknown = await run_cli("check", "--profile", "prod", env=env)
    assert unknown.returncode == 2
    assert "FAIL  profile" in unknown.stdout
    assert "no profile 'prod'" in unknown.stdout and "profiles there: sim" in unknown.stdout
    dispatch = await run_cli(
        "dispatch", "--profile", "prod", "--process", "Echo", "--folder", "HR", env=env
    )
    assert dispatch.returncode == 2 and "no profile 'prod'" in dispatch.stderr

    no_secret = await run_cli("check", "--profile", "sim", env={**env, "SIM_SECRET": ""})
    # The key is named, not its value: a secret pasted there would be shown otherwise.
    said = no_secret.stdout + no_secret.stderr
    assert no_secret.returncode == 2 and "client_secret_env: its value is not the name" in said


async def test_stop_also_stops_the_jobs_a_batch_reported_without_ending(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """stuck_pending (like timed_out and suspended) is an outcome, yet the job still
    waits in the tenant: stop must reach it, and record its state, keeping its outcome."""
    sim: SimulatorHandle = await start_simulator("realistic", time_scale=100.0)
    env = cli_env(tmp_path)
    journal = tmp_path / "stuck.sqlite"
    dispatched = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "HR", "--count", "2",
        "--pending-timeout", "0.5", "--timeout", "60", "--journal", str(journal), "--quiet",
        env=env,
    )  # fmt: skip
    assert dispatched.returncode == 1, dispatched.stderr
    assert simulator_jobs(sim)["by_state"].get("Pending") == 2  # left waiting for a robot

    stopped = await run_cli("stop", "--journal", str(journal), "--kill", env=env)
    assert "Kill sent to 2 unfinished jobs" in stopped.stderr
    assert simulator_jobs(sim)["by_state"].get("Pending", 0) == 0
    rows = stopped.rows()
    assert {r["outcome"] for r in rows} == {"stuck_pending"}  # what the batch reported
    assert {r["state"] for r in rows} == {"Stopped"}  # and what the job is now
    # ...with when it ended, its Info and the stop sent, as read after the stop
    assert all(r["ended"] and r["info"] for r in rows), rows
    assert {(r["stop_sent"], r["attempts"]) for r in rows} == {("Kill", 1)}


async def test_a_job_not_found_in_a_default_folder_names_that_folder_and_its_source(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=100.0)
    env = cli_env(tmp_path)
    dispatched = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "Finance", "--quiet",
        "--journal", str(tmp_path / "j.sqlite"), env=env,
    )  # fmt: skip
    assert dispatched.returncode == 0, dispatched.stderr
    (row,) = dispatched.rows()
    job_id = str(row["job_id"])

    shown = await run_cli(
        "jobs", "--url", sim.url, "--id", job_id, env={**env, "UIPATH_FOLDER_PATH": "HR"}
    )
    assert shown.returncode == 2
    (line,) = shown.stderr.splitlines()
    assert f"(Id or Key {job_id}): job {job_id} was looked up in folder 'HR'" in line
    assert "(the folder from UIPATH_FOLDER_PATH); give --folder F" in line

    found = await run_cli("jobs", "--url", sim.url, "--folder", "Finance", "--id", job_id, env=env)
    assert found.returncode == 0, found.stderr


async def test_stop_reads_first_and_leaves_alone_the_jobs_that_ended_meanwhile(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """A job the batch reported without ending (timed out here) that has ended since
    is recorded ended, and no stop is sent to it (nor counted as sent)."""
    sim: SimulatorHandle = await start_simulator(time_scale=5.0)  # DailyReport: 4-12 s
    env = cli_env(tmp_path)
    journal = tmp_path / "ended.sqlite"
    dispatched = await run_cli(
        "dispatch", "--url", sim.url, "--process", "DailyReport", "--folder", "Shared",
        "--count", "2", "--timeout", "0.3", "--journal", str(journal), "--quiet", env=env,
    )  # fmt: skip
    assert dispatched.returncode == 1, dispatched.stderr
    assert {r["outcome"] for r in dispatched.rows()} == {"timed_out"}  # left running
    # Both end by themselves (0.8-2.4 s real), before the stop is asked for.
    await wait_until(lambda: simulator_jobs(sim)["by_state"] == {"Successful": 2}, deadline=60.0)

    stopped = await run_cli("stop", "--journal", str(journal), env=env)
    assert "SoftStop sent to 0 unfinished jobs" in stopped.stderr, stopped.stderr
    rows = stopped.rows()
    assert {(r["outcome"], r["state"], r["stop_sent"]) for r in rows} == {
        ("timed_out", "Successful", None)
    }
