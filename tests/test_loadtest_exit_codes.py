"""`async-orch loadtest` exit codes: names resolved up front (2), incomplete runs (1).

Exit codes: 0 every planned job started and ended (whatever its final state), 1 some
were not started or had not ended by the drain timeout, 2 usage or configuration
error (nothing started, no report), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import assert_one_line_exit_2, cli_env, closed_port, run_cli, simulator_jobs

from async_orch._cli import loadtest_cmd
from async_orch.loadtest import build_report, shortfalls
from async_orch.loadtest.measure import HttpSample, Recording, summarize
from async_orch.simulator import SimulatorHandle

# -- the rule, on reports built from recordings -------------------------------------------


def _report(
    finished: list[tuple[str, bool]],
    *,
    planned: int | None = None,
    started_only: int = 0,
    interrupted: bool = False,
    stop_jobs: bool = False,
) -> dict[str, Any]:
    """A report of ``planned`` jobs: ``finished`` = (outcome, timed_out) of the first ones
    (``not_started`` ones get no job), then ``started_only`` jobs started without a result."""
    planned = len(finished) + started_only if planned is None else planned
    rec = Recording()
    for n in range(planned):
        rec.plan(n, f"lt-{n}", "Shared", float(n))
    for n, (outcome, timed_out) in enumerate(finished):
        if outcome != "not_started":
            rec.note_started(n, 100 + n, n + 0.1)
        rec.note_finished(n, outcome=outcome, state=None, at=n + 1.0, timed_out=timed_out)
    for n in range(len(finished), len(finished) + started_only):
        rec.note_started(n, 100 + n, n + 0.1)
    # Retried 429s and 5xx answers: measurements, never a reason to fail the run.
    rec.note_http(HttpSample(0.0, "StartJobs", "429", 0.01))
    rec.note_http(HttpSample(0.1, "StartJobs", "503", 0.01))
    summary = summarize(rec, duration=float(planned + 1))
    return build_report(summary, meta={"interrupted": interrupted, "stop_jobs": stop_jobs})


@pytest.mark.parametrize(
    ("finished", "extra", "code", "why"),
    [
        ([("successful", False)] * 3, {}, 0, []),
        # A load test measures: faulted jobs, and jobs stopped by someone else, ended.
        ([("successful", False), ("faulted", False), ("stopped", False)], {}, 0, []),
        ([("successful", False), ("not_started", False), ("not_started", False)], {}, 1,
         ["2 of 3 jobs were not started"]),
        ([("not_started", False)] * 2, {}, 1, ["2 of 2 jobs were not started"]),
        ([("successful", False), ("timed_out", True)], {}, 1,
         ["1 jobs had not ended by the drain timeout (left running)"]),
        # Stopped by async-orch at the drain timeout (--stop-jobs): it did not end in time.
        ([("successful", False), ("stopped", True)], {"stop_jobs": True}, 1,
         ["1 jobs had not ended by the drain timeout (stopped)"]),
        ([("successful", False), ("unknown", False)], {}, 1,
         ["1 jobs ended in a state async-orch does not know"]),
        ([("successful", False)], {"started_only": 1}, 1,
         ["1 started jobs had not ended when the run stopped (left running)"]),
        # Planned but never asked for (the deadline came first): not started.
        ([("successful", False)], {"planned": 3}, 1, ["2 of 3 jobs were not started"]),
        # Interrupted wins, complete or not.
        ([("successful", False)] * 2, {"interrupted": True}, 130, []),
        ([("successful", False)], {"started_only": 2, "interrupted": True}, 130,
         ["2 started jobs had not ended when the run stopped (left running)"]),
    ],
    ids=["all-successful", "faulted-and-stopped-count-as-ended", "some-not-started",
         "none-started", "timed-out", "stopped-at-drain-timeout", "unknown-state",
         "no-result", "never-asked", "interrupted-complete", "interrupted-incomplete"],
)  # fmt: skip
def test_exit_code_follows_the_shortfalls(
    finished: list[tuple[str, bool]], extra: dict[str, Any], code: int, why: list[str]
) -> None:
    report = _report(finished, **extra)
    assert report["http"]["error_rate"] > 0  # and yet 0 when every job ended
    assert shortfalls(report) == why
    assert report["shortfalls"] == why  # in the JSON too
    assert loadtest_cmd.exit_code(report) == code


def test_a_report_of_an_earlier_version_is_judged_by_its_outcomes() -> None:
    # No "timed_out" count or "shortfalls" yet: the outcomes say it.
    report = _report([("successful", False), ("timed_out", True)])
    del report["jobs"]["timed_out"], report["shortfalls"]
    assert loadtest_cmd.exit_code(report) == 1


# -- the command line -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("names", "needles"),
    [
        (["--process", "Nope", "--folder", "Shared"],
         ["error: process 'Nope' not found in folder 'Shared'", "available:", "Echo"]),
        (["--process", "Echo", "--folder", "Shared", "--folder", "Sahred"],
         ["error: folder 'Sahred' not found", "available: Shared"]),
    ],
    ids=["unknown-process", "unknown-folder"],
)  # fmt: skip
async def test_unknown_names_are_one_line_and_exit_2_before_any_job(
    tmp_path: Path, names: list[str], needles: list[str]
) -> None:
    report = tmp_path / "r.html"
    run = await run_cli(
        "loadtest", "--simulator", *names, "--load-profile", "constant:1:1",
        "--report", str(report),
        env=cli_env(tmp_path),
    )  # fmt: skip
    assert_one_line_exit_2(run, *needles)
    # The simulator lives in the CLI's process: no report, no summary says no run.
    assert not report.exists() and not report.with_suffix(".json").exists()


@pytest.mark.slow
async def test_a_profile_of_more_than_a_million_jobs_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    report = tmp_path / "r.html"
    run = await run_cli(
        "loadtest", "--simulator", "--process", "Echo", "--folder", "Shared",
        "--load-profile", "constant:1:1e308", "--report", str(report),
        env=cli_env(tmp_path),
    )  # fmt: skip
    assert_one_line_exit_2(
        run, "plans 1e+308 jobs, more than the 1,000,000", "bound it with --max-jobs N"
    )
    assert not report.exists()


@pytest.mark.slow
async def test_an_unreachable_tenant_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/demo/DefaultTenant/orchestrator_"
    report = tmp_path / "r.html"
    run = await run_cli(
        "loadtest", "--url", url, "--process", "Echo", "--folder", "Shared",
        "--max-jobs", "60", "--yes-start-real-jobs", "--report", str(report),
        env=cli_env(tmp_path, ASYNC_ORCH_RETRY_ATTEMPTS="1"),
    )  # fmt: skip
    assert_one_line_exit_2(run, "cannot reach Orchestrator", "Check the URL")
    assert not report.exists()


@pytest.mark.slow
async def test_jobs_not_started_are_exit_1_with_the_report_written(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    # The demo's read-only application can read folders and processes (the names
    # resolve) but not start jobs: every StartJobs is refused (403).
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    report = tmp_path / "r.html"
    env = cli_env(
        tmp_path,
        UIPATH_CLIENT_ID="demo-readonly",
        UIPATH_CLIENT_SECRET="demo-readonly-secret",
        ASYNC_ORCH_SCOPES="OR.Folders.Read OR.Execution.Read OR.Jobs.Read",
        ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN=sim.admin_token,  # recognised as a simulator
    )
    run = await run_cli(
        "loadtest", "--url", sim.url, "--process", "Echo", "--folder", "Shared",
        "--load-profile", "constant:4:0.5", "--report", str(report), "--quiet", env=env,
    )  # fmt: skip
    assert run.returncode == 1, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr
    assert "load test incomplete: 2 of 2 jobs were not started" in run.stderr
    assert "0/2 jobs started" in run.stdout and f"report: {report}" in run.stdout
    data = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["jobs"]["by_outcome"] == {"not_started": 2}
    assert data["shortfalls"] == ["2 of 2 jobs were not started"]
    assert "Incomplete run: 2 of 2 jobs were not started." in report.read_text(encoding="utf-8")
    assert simulator_jobs(sim)["created"] == 0


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="async-orch")
    loadtest_cmd.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["loadtest", *argv])


def test_jobs_still_running_at_the_drain_timeout_are_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # InvoiceProcessing runs 20-90 simulated s: at time scale 1 neither job ends
    # before the profile's end (1 s) plus a drain timeout of 0.
    report = tmp_path / "r.html"
    args = _args(
        "--simulator", "--time-scale", "1", "--process", "InvoiceProcessing",
        "--folder", "Finance", "--load-profile", "constant:2:1", "--drain-timeout", "0",
        "--report", str(report), "--quiet",
    )  # fmt: skip
    assert loadtest_cmd.run(args) == 1
    err = capsys.readouterr().err
    assert "load test incomplete: 2 jobs had not ended by the drain timeout (left running)" in err
    data = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["jobs"]["started"] == 2 and data["jobs"]["timed_out"] == 2
