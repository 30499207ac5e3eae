"""Printing a Progress (``Hooks(on_progress=print)``, as the docs show) is one short line.

on_progress fires on every change, several times a job: with 2,200 jobs the repr of
its per-job Pending times once ran to 55 kB a print.
"""

from __future__ import annotations

from async_orch import Progress


def _big_batch() -> Progress:
    progress = Progress(total=2200)
    progress.move("Shared", None, "queued", 2200)
    progress.move("Shared", "queued", "Pending", 900)
    progress.move("Shared", "queued", "Running", 1000)
    progress.move("Shared", "Running", "successful", 118)
    progress.move("Shared", "Running", "faulted", 2)
    for job_id in range(900):
        progress.note_pending("Shared", 5_000_000 + job_id, True, now=1000.0 + job_id)
    return progress


def test_str_is_one_line_of_counts() -> None:
    assert str(_big_batch()) == (
        "120/2200 done: 118 successful, 2 faulted; 300 queued, 900 Pending, 880 Running"
    )
    assert str(Progress(total=3)) == "0/3 done"


def test_repr_holds_counts_not_every_job() -> None:
    text = repr(_big_batch())
    assert "5000001" not in text and "pending_since" not in text
    assert "by_state=" in text and len(text) < 400
