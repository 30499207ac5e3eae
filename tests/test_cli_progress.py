"""The progress line: the counts it shows always add up to the total."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from cli_harness import cli_env, run_cli

from async_orch._cli.progress import ProgressDisplay, waiting_text
from async_orch._jobs import Progress
from async_orch._transport_hooks import TransportHealth


def display() -> ProgressDisplay:
    return ProgressDisplay(io.StringIO(), live=False, clock=lambda: 100.0)


def shown_total(line: str) -> int:
    """The sum of the "<state> N" counts of a progress line (not done/total)."""
    return sum(int(n) for n in re.findall(r"\| [a-z_]+ (\d+)", line))


def test_a_job_seen_final_but_not_reported_yet_is_shown_as_ending() -> None:
    progress = Progress(total=300)
    progress.move("Shared", None, "Pending", 28)
    progress.move("Shared", None, "successful", 271)
    progress.move("Shared", None, "Successful")  # its outputs are being read
    line = display().line(progress, 105.0)
    assert line.startswith("271/300 done | pending 28 | ending 1 | successful 271 |")
    assert shown_total(line) == 300
    assert display().folder_lines(progress) == ["  Shared: pending 28, ending 1, successful 271"]


def test_jobs_stopped_as_a_batch_ends_are_not_left_out() -> None:
    # After Ctrl-C with --on-interrupt stop, jobs end Stopped with no result.
    progress = Progress(total=4)
    progress.move("Shared", None, "Stopped", 4)
    assert display().line(progress, 101.0).startswith("0/4 done | ending 4 |")
    assert display().folder_lines(progress) == ["  Shared: ending 4"]


def test_progress_keeps_no_count_of_zero() -> None:
    progress = Progress(total=2)
    progress.move("Shared", None, "queued", 2)
    progress.forget("Shared", "queued", 2)
    progress.move("Shared", None, "Pending", 2)
    progress.move("Shared", "Pending", "Successful", 2)
    progress.move("Shared", "Successful", "successful", 2)
    assert progress.by_state == {"successful": 2}
    assert progress.by_folder == {"Shared": {"successful": 2}}


def test_a_state_this_version_does_not_list_is_still_counted() -> None:
    progress = Progress(total=3)
    progress.move("HR", None, "Resumed")
    progress.move("HR", None, "Running", 2)
    line = display().line(progress, 101.0)
    assert "running 2" in line and "resumed 1" in line
    assert shown_total(line) == 3


@pytest.mark.slow
async def test_quiet_prints_only_the_path_of_a_journal_it_chose(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    args = ["dispatch", "--simulator", "--time-scale", "600", "--process", "Echo"]
    args += ["--folder", "Shared", "--count", "2", "--quiet", "-o", str(tmp_path / "r.jsonl")]
    chosen = await run_cli(*args, env=env)
    assert chosen.returncode == 0, chosen.stderr
    (line,) = chosen.stderr.splitlines()  # nothing else: no progress, no summary
    assert line.startswith(f"journal: {tmp_path / 'state'}")  # under XDG_STATE_HOME

    named = await run_cli(*args, "--journal", str(tmp_path / "j.sqlite"), env=env)
    assert named.returncode == 0, named.stderr
    assert named.stderr == ""


def test_the_heartbeat_says_how_long_jobs_wait_pending_and_where() -> None:
    progress = Progress(total=40)
    progress.move("Finance", None, "Pending", 32)
    progress.move("HR", None, "Pending", 8)
    for job_id in range(32):
        progress.note_pending("Finance", job_id, True, 100.0 + job_id)
    for job_id in range(100, 108):
        progress.note_pending("HR", job_id, True, 450.0)
    text = waiting_text(progress, TransportHealth(), now=460.0, last_change=455.0)
    # Finance's oldest waits 6 minutes; HR's only 10 s: not worth a word yet.
    assert text == (
        "waiting on 32 jobs Pending for 6m00s in Finance: no robot free, "
        "8 jobs Pending in HR; last change 5 s ago"
    )
    progress.note_pending("Finance", 0, False, 470.0)  # the oldest was picked up
    assert progress.oldest_pending("Finance") == 101.0
