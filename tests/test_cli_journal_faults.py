"""The journal under faults, through the command line (issue 11, points 1, 4, 5, 8):
other names of a journal, a full disk, damaged rows, private files."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import (
    REPO,
    SIGKILL,
    CliRun,
    assert_one_line_exit_2,
    cli_env,
    dispatch_killed_midway,
    finish,
    journal_counts,
    run_cli,
    simulator_jobs,
    spawn_cli,
    wait_until,
)
from test_journal import write_schema_1_journal

from async_orch._jobs import JobHandle
from async_orch._journal import JobRecord, Journal, JournalTarget, RequestRecord
from async_orch.simulator import SimulatorHandle

pytestmark = pytest.mark.slow  # every test here starts a process

TIME_SCALE = 20.0  # an Echo job takes about 0.2 s

# The command line with a journal whose writes fail with ENOSPC after the first
# FAIL_AFTER succeed (argv[1]), as on a disk that fills up mid-run.
FULL_DISK_CLI = """
import contextlib, errno, sqlite3, sys
from async_orch import _journal as journal
real = journal._transaction
done = 0
@contextlib.contextmanager
def filling(db):
    global done
    if done >= int(sys.argv[1]):
        raise OSError(errno.ENOSPC, "No space left on device")
    done += 1
    with real(db):
        yield
journal._transaction = filling
from async_orch._cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def _journal(sim: SimulatorHandle, path: Path, count: int, *, process: str = "Echo") -> None:
    records = [
        RequestRecord(index=i, reference=f"j-{i}", folder="Shared", process=process)
        for i in range(count)
    ]
    target = JournalTarget(url=sim.url, organization="demo", tenant="DefaultTenant")
    Journal.create(path, target=target, batch_id="j", requests=records).close()


async def test_resumes_through_a_symlink_and_a_hard_link_are_refused_while_one_runs(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    # On the real clock DailyReport runs 20-60 s: the first resume holds the
    # journal for the whole test, until it is killed.
    sim: SimulatorHandle = await start_simulator(time_scale=1.0)
    env = cli_env(tmp_path)
    journal = tmp_path / "batch.sqlite"
    count = 20
    _journal(sim, journal, count, process="DailyReport")
    other = tmp_path / "other"
    other.mkdir()
    symlink, hardlink = other / "via-symlink.sqlite", other / "via-hardlink.sqlite"
    symlink.symlink_to(journal)

    first = await spawn_cli("dispatch", "--resume", str(symlink), "--quiet", env=env)
    await wait_until(lambda: journal_counts(journal)[0] == count, process=first)
    for name in (journal, symlink):
        refused = await run_cli("dispatch", "--resume", str(name), env=env)
        assert_one_line_exit_2(refused, f"error: journal {name} is in use by another")
    os.link(journal, hardlink)  # made while the first runs: every name is refused now
    for name in (hardlink, journal, symlink):
        refused = await run_cli("dispatch", "--resume", str(name), env=env)
        assert_one_line_exit_2(refused, f"error: journal {name} has 2 hard links (names)")
    assert first.returncode is None  # refused while the first was still running

    first.send_signal(SIGKILL)
    assert (await finish(first)).returncode == -SIGKILL
    jobs = simulator_jobs(sim)
    assert jobs["by_reference"] == {f"j-{i}": 1 for i in range(count)}  # one job each
    assert jobs["created"] == count


async def test_after_a_kill_a_hard_link_is_refused_and_the_original_name_resumes(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """After kill -9 the last writes are in JOURNAL-wal, which SQLite finds only
    by the name the journal was written under: through another name the jobs
    recorded there look unstarted, so that name is refused, not resumed."""
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    env = cli_env(tmp_path)
    journal = tmp_path / "batch.sqlite"
    count = 20
    await dispatch_killed_midway(
        journal, "--url", sim.url, "--process", "Echo", "--folder", "HR",
        "--count", str(count), "--rate", "20", env=env,
    )  # fmt: skip
    recorded, _ = journal_counts(journal)
    hardlink = tmp_path / "elsewhere" / "batch.sqlite"
    hardlink.parent.mkdir()
    os.link(journal, hardlink)
    assert journal_counts(hardlink)[0] < recorded  # what another name would have seen
    started = simulator_jobs(sim)["created"]

    for command in (("dispatch", "--resume"), ("jobs", "--journal")):
        refused = await run_cli(*command, str(hardlink), env=env)
        assert_one_line_exit_2(
            refused,
            f"error: journal {hardlink} has 2 hard links (names)",
            "use the path the journal was created with",
            "remove the other links",
        )
    assert simulator_jobs(sim)["created"] == started  # nothing started

    hardlink.unlink()
    resumed = await run_cli("dispatch", "--resume", str(journal), env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert {r["outcome"] for r in resumed.rows()} == {"successful"}
    jobs = simulator_jobs(sim)
    assert jobs["created"] == count and jobs["duplicate_references"] == {}


async def test_a_journal_showing_two_jobs_for_one_request_is_not_resumed(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    path = tmp_path / "twice.sqlite"
    _journal(sim, path, 3)
    with Journal.open(path) as journal:
        for job_id in (101, 102):  # as two resumes past a lock would have left it
            handle = JobHandle(
                job_id=job_id, job_key=None, folder_id=1, folder_key=None,
                folder_path="Shared", reference="j-1",
            )  # fmt: skip
            journal.record_started(1, handle, state="Running")
    run = await run_cli("dispatch", "--resume", str(path), env=cli_env(tmp_path))
    assert_one_line_exit_2(
        run, f"journal {path} shows 2 jobs (ids 101, 102) for request 1 (Reference j-1)"
    )
    assert simulator_jobs(sim)["created"] == 0  # nothing started


async def test_a_journal_of_the_previous_schema_resumes(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    path = tmp_path / "old.sqlite"
    target = JournalTarget(url=sim.url, organization="demo", tenant="DefaultTenant")
    requests = [
        RequestRecord(index=i, reference=f"old-{i}", folder="Shared", process="Echo", inputs={})
        for i in range(3)
    ]
    handle = JobHandle(
        job_id=4242, job_key=None, folder_id=1, folder_key=None, folder_path="Shared",
        reference="old-0",
    )  # fmt: skip
    result = {"job_id": 4242, "outcome": "successful"}
    done = JobRecord(job_id=4242, request_index=0, handle=handle, state="Successful",
                     outcome="successful", result=result)  # fmt: skip
    write_schema_1_journal(path, target, requests, [done])

    run = await run_cli("dispatch", "--resume", str(path), env=cli_env(tmp_path))
    assert run.returncode == 0, run.stderr
    rows = run.rows()
    assert [(r["reference"], r["outcome"]) for r in rows] == [
        (f"old-{i}", "successful") for i in range(3)
    ]
    assert rows[0]["job_id"] == 4242  # reported from the journal, not started again
    assert simulator_jobs(sim)["by_reference"] == {"old-1": 1, "old-2": 1}
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    db.close()


async def _full_disk_cli(fail_after: int, *args: str, env: dict[str, str]) -> CliRun:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FULL_DISK_CLI, str(fail_after), *args,
        cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return await finish(process)


async def test_a_full_disk_mid_run_is_one_line_and_a_resume_then_finishes_without_duplicate(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    env = cli_env(tmp_path)
    journal = tmp_path / "full.sqlite"
    count = 30
    # 1 write creates the journal; the disk is full after 10 more (started,
    # state or final rows): some jobs started are recorded, some not, and with
    # starts spread out (--rate) most are not started yet.
    full = await _full_disk_cli(
        11, "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "Shared",
        "--folder", "HR", "--count", str(count), "--journal", str(journal), "--quiet",
        "--rate", "20", "--max-in-flight", "2",
        env=env,
    )  # fmt: skip
    assert_one_line_exit_2(
        full,
        f"error: cannot write journal {journal} (the disk is full: [Errno 28] No space left "
        "on device), so no more jobs are started. The jobs started so far are safe",
        f"async-orch dispatch --resume {journal}",
    )
    started = simulator_jobs(sim)["created"]
    recorded, _ = journal_counts(journal)
    assert 0 < recorded <= started < count, (recorded, started)

    resumed = await run_cli("dispatch", "--resume", str(journal), env=env)
    assert resumed.returncode == 0, resumed.stderr
    rows = resumed.rows()
    assert [r["reference"] for r in rows] == [f"ao-{_batch(journal)}-{i}" for i in range(count)]
    assert {r["outcome"] for r in rows} == {"successful"}
    jobs = simulator_jobs(sim)
    assert jobs["by_reference"] == {r["reference"]: 1 for r in rows}  # none started twice
    assert jobs["created"] == count


def _batch(journal: Path) -> str:
    with Journal.open(journal, read_only=True) as opened:
        return opened.batch_id


async def test_a_damaged_journal_is_one_line_and_starts_nothing(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    env = cli_env(tmp_path)
    path = tmp_path / "damaged.sqlite"
    _journal(sim, path, 3)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE requests SET inputs = '{\"n\": ' WHERE idx = 2")
    db.close()
    for command in (("dispatch", "--resume"), ("jobs", "--journal")):
        run = await run_cli(*command, str(path), env=env)
        assert_one_line_exit_2(
            run, f"error: journal is damaged: {path}: requests row idx=2: inputs is not valid JSON"
        )
    assert simulator_jobs(sim)["created"] == 0


async def test_results_and_a_default_journal_folder_are_private(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=TIME_SCALE)
    env = cli_env(tmp_path)  # XDG_STATE_HOME=tmp_path/state, not there yet
    output = tmp_path / "results.jsonl"
    run = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "HR",
        "--count", "2", "--output", str(output), env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert output.stat().st_mode & 0o777 == 0o600
    journals = tmp_path / "state" / "async-orch" / "journals"
    for folder in (tmp_path / "state", journals.parent, journals):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    (journal,) = journals.iterdir()
    assert journal.stat().st_mode & 0o777 == 0o600
