"""The progress line: the counts it shows always add up to the total."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_harness import cli_env, run_cli

from async_orch import _journaled
from async_orch._cli.progress import ProgressDisplay, waiting_text
from async_orch._jobs import Progress
from async_orch._journal import Journal, JournalTarget, RequestRecord
from async_orch._journaled import resume_plan
from async_orch._list_budget import ListBudget
from async_orch._models import Folder
from async_orch._transport_hooks import TransportHealth


def display() -> ProgressDisplay:
    return ProgressDisplay(io.StringIO(), live=False, clock=lambda: 100.0)


def shown_total(line: str) -> int:
    """The sum of the "<state> N" counts of a progress line (not done/total)."""
    return sum(int(n) for n in re.findall(r"\| [a-z_ ]+ (\d+)", line))


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


def test_finish_does_not_repeat_the_lines_just_drawn() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, live=False, clock=lambda: 100.0)
    display.update(Progress(total=0))  # a resume with nothing left to do
    display.finish()
    assert stream.getvalue().count("0/0 done") == 1
    # The final counts not drawn yet (throttled) are drawn at the end.
    stream = io.StringIO()
    display = ProgressDisplay(stream, live=False, clock=lambda: 100.0)
    progress = Progress(total=1)
    progress.move("Shared", None, "Running")
    display.update(progress)
    progress.move("Shared", "Running", "successful")
    display.update(progress)  # within the interval: not drawn
    display.finish()
    assert [line.split(" |")[0] for line in stream.getvalue().splitlines()[::2]] == [
        "0/1 done",
        "1/1 done",
    ]


def test_the_heartbeat_names_a_wait_the_run_names_and_how_long_it_has_left() -> None:
    now = [100.0]
    out = io.StringIO()
    shown = ProgressDisplay(out, live=False, clock=lambda: now[0])
    shown.waiting_for("the reconcile window: looking 2 requests up again", until=190.0)
    now[0] = 110.0
    shown.heartbeat()
    assert out.getvalue() == (
        "waiting: waiting for the reconcile window: looking 2 requests up again, 1m20s left\n"
    )
    shown.waiting_for(None)
    now[0] = 120.0
    shown.heartbeat()
    assert "reconcile window" not in out.getvalue().splitlines()[-1]


async def test_a_resume_names_the_reconcile_window_while_it_waits_it_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """resume_plan tells what it waits for (the CLI's heartbeat says it), then that it ended.
    Its clock is held still: 10 ms of window left on the real clock could pass while
    the journal is created on a busy box, and then nothing is waited for."""
    monkeypatch.setattr(_journaled, "time", SimpleNamespace(monotonic=lambda: 1000.0))

    class NothingStarted:  # a tenant where no Reference is found
        async def resolve_folder(self, ref: str) -> Folder:
            return Folder(id=1, display_name=ref, fully_qualified_name=ref, key=None)

        async def list_jobs(self, folder: Folder, **_: object) -> list[object]:
            return []

    records = [
        RequestRecord(index=i, reference=f"r-{i}", folder="Finance", process="Echo")
        for i in range(2)
    ]
    target = JournalTarget(url="http://h/o/t/orchestrator_", organization="o", tenant="t")
    told: list[tuple[str | None, float]] = []
    ends = 1000.01  # 10 ms of window left
    with Journal.create(
        tmp_path / "j.sqlite", target=target, batch_id="b", requests=records
    ) as journal:
        start, _, _ = await resume_plan(
            NothingStarted(),  # type: ignore[arg-type]
            journal,
            window_ends=ends,
            waiting=lambda what, until: told.append((what, until)),
        )
    assert len(start) == 2
    assert told[0][0] is not None and "reconcile window" in told[0][0] and told[0][1] == ends
    assert told[1] == (None, 0.0)


def _pending_everywhere() -> Progress:
    progress = Progress(total=1000)
    progress.move("Finance", None, "Pending", 500)
    progress.move("HR", None, "Pending", 500)
    for job_id in range(500):
        progress.note_pending("Finance", job_id, True, 10.0)  # first seen Pending long ago
    return progress


def test_under_a_small_list_budget_the_heartbeat_says_it_waits_for_the_next_list_call() -> None:
    """With --list-budget 3 the jobs may have ended long before the next list call: the
    heartbeat gives the states as last seen and says when the next call may go, not
    "Pending ... no robot free" (new-user review h9)."""
    budget = ListBudget(3)
    budget.spend(100.0)  # the last list call; the next is 20 s later at 3 a minute
    text = waiting_text(
        _pending_everywhere(), TransportHealth(), now=110.0, last_change=40.0, pace=budget.pace()
    )
    assert text == (
        "waiting on 500 jobs last seen Pending in Finance, 500 jobs last seen Pending in HR; "
        "next list call in 10 s at the earliest (list budget 3 a minute, last call 10 s ago); "
        "last change 1m10s ago"
    )
    # The display reads the pace itself, on every heartbeat.
    out = io.StringIO()
    shown = ProgressDisplay(out, live=False, clock=lambda: 110.0, list_pace=budget.pace)
    shown.update(_pending_everywhere())
    out.truncate(0)
    shown._last_output = shown._last_change = 95.0  # a quiet 15 s
    shown.heartbeat()
    assert "next list call in 10 s at the earliest (list budget 3 a minute" in out.getvalue()


def test_when_the_list_budget_allows_a_call_the_heartbeat_names_the_states_as_before() -> None:
    budget = ListBudget(60)
    budget.spend(100.0)  # the next call may go at 101
    text = waiting_text(
        _pending_everywhere(), TransportHealth(), now=110.0, last_change=40.0, pace=budget.pace()
    )
    assert text == (
        "waiting on 500 jobs Pending for 1m40s in Finance: no robot free, "
        "500 jobs Pending in HR; last change 1m10s ago"
    )


def test_jobs_left_suspended_are_not_shown_under_the_word_of_the_state() -> None:
    """--on-suspended report: "suspended 2 | suspended 1" read as one count twice."""
    progress = Progress(total=3)
    progress.move("Finance", None, "Suspended", 2)
    progress.move("Finance", None, "suspended")  # the outcome: left suspended at its deadline
    line = display().line(progress, 101.0)
    assert line.startswith("1/3 done | suspended 2 | left suspended 1 |")
    assert shown_total(line) == 3
    assert display().folder_lines(progress) == ["  Finance: suspended 2, left suspended 1"]
