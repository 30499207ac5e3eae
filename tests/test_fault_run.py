"""benchmarks/fault_run.py, small: 60 jobs (30 with the built-in realistic scenario's
machines and licences) under every simulator fault at once, the
CLI SIGKILLed once and resumed, the simulator SIGKILLed once and restarted from its
state file. Nothing may be lost or started twice.

The full run (1,000 jobs, a few minutes) is not a test; its figures are in
docs/reliability.md. Kill and restart points are amounts of progress read from
the journal, so a slow machine meets the same points, only later.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "fault_run.py"


@pytest.fixture(scope="module")
def fault_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fault_run", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fault_run"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scenario", "jobs"),
    [
        ("faults", 60),
        # Machines, runtimes and 6 licences: most jobs wait Pending for one (issue 13).
        ("realistic", 30),
    ],
)
def test_jobs_under_every_fault_a_kill_and_a_restart_lose_and_duplicate_nothing(
    fault_run: ModuleType, tmp_path: Path, scenario: str, jobs: int
) -> None:
    options = fault_run.Options(jobs=jobs, kills=1, restarts=1, seed=5, deadline=600.0,
                                workdir=tmp_path, scenario=scenario)  # fmt: skip
    report = fault_run.run(options)

    summary = report.to_dict()
    assert report.lost == [], summary
    assert report.duplicated == {}, summary
    assert (report.kills, report.restarts) == (1, 1), summary["events"]
    assert report.cli_runs >= 2  # the first, killed, then at least one --resume
    assert sum(report.outcomes.values()) == jobs, summary
    # Every request ended with a job, or honestly without one (with a reason).
    assert report.outcomes["successful"] + len(report.honest) == jobs, summary
    assert report.jobs_created <= jobs
    assert sum(report.faults.values()) > 0, summary  # the faults were on
    assert report.start_posts >= jobs


def _job_row(index: int, *, outcome: str = "successful", job_id: int | None = 100,
             info: str | None = None) -> dict[str, object]:  # fmt: skip
    return {"index": index, "reference": f"ref-{index}", "outcome": outcome,
            "job_id": job_id, "info": info}  # fmt: skip


def test_the_judge_finds_lost_and_duplicated_requests(fault_run: ModuleType) -> None:
    """The checks of the run can fail: each kind of untruth is caught, honesty is not."""
    report = fault_run.Report(jobs=7)
    rows = [
        _job_row(0),  # fine
        _job_row(1, outcome="not_started", job_id=None, info="refused 4 times"),  # on server!
        _job_row(2, outcome="uncertain", job_id=None, info="lookups failed"),  # honest
        _job_row(3, outcome="not_started", job_id=None, info=None),  # no reason
        _job_row(4, outcome="unknown", job_id=None),  # no job id, no honest outcome
        _job_row(5),  # the server has no such job
        # index 6: no row at all
    ]
    server = {
        "by_reference": {"ref-0": 1, "ref-1": 1, "ref-2": 2, "ref-4": 1},
        "duplicate_references": {"ref-2": 2},
    }
    fault_run._judge(report, rows, server)

    assert report.duplicated == {"ref-2": 2}
    assert [line.split(":")[0] for line in report.lost] == [
        "ref-1", "ref-3", "ref-4", "ref-5", "request 6",
    ]  # fmt: skip
    assert [h["reference"] for h in report.honest] == ["ref-2"]
    assert report.outcomes == Counter(
        {"successful": 2, "not_started": 2, "uncertain": 1, "unknown": 1}
    )
