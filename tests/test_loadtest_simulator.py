"""Load tests against the simulator: the report's numbers are the simulator's numbers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from async_orch._cli import loadtest_cmd
from async_orch._errors import ConfigurationError
from async_orch._planner import PollPolicy
from async_orch.loadtest import (
    JobTemplate,
    LoadPlan,
    LoadTest,
    embedded_simulator,
    parse_profile,
    render_html,
    run_and_report,
)
from async_orch.loadtest.runner import LiveStatus

# Every kind of request-level fault, often enough to show up in 30 jobs.
FAULTS = {
    "throttle_rate": 0.05,
    "server_error_rate": 0.03,
    "drop_rate": 0.02,
    "ambiguous_start_rate": 0.05,
}
FAST_POLL = PollPolicy(list_budget_per_minute=90, min_interval=0.2)


def _plan(profile: str, **kwargs: Any) -> LoadPlan:
    return LoadPlan(
        profile=parse_profile(profile),
        template=JobTemplate(
            process="Echo",
            folders=["Shared", "HR", "Finance/Comptabilité"],
            inputs={"n": "{n}", "customer": "C{n}"},
            reference_prefix="lt-test",
        ),
        poll=FAST_POLL,
        **kwargs,
    )


async def test_report_counts_agree_with_the_simulator_under_faults() -> None:
    async with embedded_simulator(time_scale=30, faults=FAULTS) as target:
        test = LoadTest(target.settings, _plan("constant:15:2"), status_interval=0.2)
        report = await run_and_report(target, test)
        stats = await target.simulator_stats()  # type: ignore[misc]

    assert report["meta"]["simulator"] and report["meta"]["faults"] == FAULTS
    mismatches = [c for c in report["agreement"] if not c["equal"]]
    assert mismatches == []
    # The same figures, straight from the simulator's own stats.
    start_jobs = stats["requests"]["POST /odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"]
    assert report["start_jobs"]["requests"] == sum(start_jobs.values())
    assert report["http"]["by_route"]["StartJobs"].get("201", 0) == start_jobs.get("201", 0)
    all_429 = sum(s.get("429", 0) for s in stats["requests"].values())
    assert report["http"]["http_429"] == all_429
    assert report["http"]["requests"] == sum(sum(s.values()) for s in stats["requests"].values())
    assert report["jobs"]["started"] == stats["jobs"]["created"]
    assert stats["jobs"]["duplicate_references"] == {}
    # Faults really happened, and the jobs still all ran to the end.
    assert sum(stats["faults"].values()) > 0 and all_429 > 0
    assert report["jobs"]["planned"] == 30
    # A start whose answer was lost and whose lookups after the window all failed is reported
    # uncertain, never posted again: rare, and never a second job.
    by_outcome = report["jobs"]["by_outcome"]
    assert set(by_outcome) <= {"successful", "uncertain"} and sum(by_outcome.values()) == 30
    assert by_outcome.get("uncertain", 0) <= 3, by_outcome
    assert report["start_jobs"]["latency_seconds"]["count"] > 0
    assert report["times"]["queue_seconds"]["count"] == by_outcome["successful"]
    html = render_html(report)
    assert "Every counter agrees." in html and html.count('<svg class="chart"') == 6


async def test_an_interrupted_run_stops_the_jobs_it_started() -> None:
    # Long jobs (the demo's InvoiceProcessing: 20-90 simulated s) that will not end first.
    async with embedded_simulator(time_scale=1) as target:
        plan = LoadPlan(
            profile=parse_profile("constant:10:30"),
            template=JobTemplate(process="InvoiceProcessing", folders=["Finance"]),
            poll=FAST_POLL,
            stop_jobs=True,
        )

        def on_status(status: LiveStatus) -> None:
            if status.by_state.get("Pending", 0) + status.by_state.get("Running", 0) >= 3:
                test.interrupt()

        test = LoadTest(target.settings, plan, on_status=on_status, status_interval=0.1)
        report = await run_and_report(target, test)
        stats = await target.simulator_stats()  # type: ignore[misc]

    assert report["meta"]["interrupted"]
    started = report["jobs"]["started"]
    assert 3 <= started < report["jobs"]["planned"] == 300
    stops = stats["requests"].get("POST /odata/Jobs/UiPath.Server.Configuration.OData.StopJobs", {})
    assert sum(stops.values()) >= 1
    # Every job that was started is stopping or stopped: none left running.
    assert set(stats["jobs"]["by_state"]) <= {"Stopping", "Terminating", "Stopped"}
    assert sum(stats["jobs"]["by_state"].values()) == started
    assert [c for c in report["agreement"] if not c["equal"]] == []


# -- the command line -----------------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="async-orch")
    loadtest_cmd.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["loadtest", *argv])


def test_command_writes_the_html_and_json_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "lt.html"
    args = _args(
        "--simulator", "--time-scale", "30", "--fault", "throttle_rate=0.05",
        "--process", "Echo", "--folder", "Shared", "--folder", "HR",
        "--inputs", '{"id": "{n}"}', "--load-profile", "steps:5x1,10x1",
        "--list-budget", "90", "--report", str(report_path), "--quiet",
    )  # fmt: skip
    assert loadtest_cmd.run(args) == 0
    out = capsys.readouterr().out
    assert "simulator counters: all agree" in out
    data = json.loads(report_path.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["jobs"]["planned"] == 15
    assert data["meta"]["template"]["inputs"] == {"id": "{n}"}
    assert all(c["equal"] for c in data["agreement"])
    assert report_path.read_text(encoding="utf-8").count('<svg class="chart"') == 6


def test_command_refuses_a_real_tenant_without_confirmation_and_cap(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("UIPATH_CLIENT_ID", "someone")
    monkeypatch.setenv("UIPATH_CLIENT_SECRET", "something")
    # Nothing listens on port 9 of loopback: not a simulator, so a "real" tenant.
    args = _args(
        "--url", "http://127.0.0.1:9/acme/DefaultTenant/orchestrator_",
        "--process", "Echo", "--folder", "Shared", "--report", str(tmp_path / "r.html"),
    )  # fmt: skip
    assert loadtest_cmd.run(args) == 2
    err = capsys.readouterr().err
    assert "--yes-start-real-jobs" in err and "--max-jobs" in err
    assert not (tmp_path / "r.html").exists()


def test_safety_check_needs_both_the_flag_and_the_cap() -> None:
    loadtest_cmd.check_safety(is_simulator=True, confirmed=False, max_jobs=None)
    loadtest_cmd.check_safety(is_simulator=False, confirmed=True, max_jobs=10)
    with pytest.raises(ConfigurationError, match="--max-jobs") as caught:
        loadtest_cmd.check_safety(is_simulator=False, confirmed=True, max_jobs=None)
    assert "--yes-start-real-jobs" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="--yes-start-real-jobs"):
        loadtest_cmd.check_safety(is_simulator=False, confirmed=False, max_jobs=10)


def test_command_rejects_bad_input_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    args = _args("--simulator", "--process", "Echo", "--folder", "A", "--inputs", "[1]")
    assert loadtest_cmd.run(args) == 2
    assert "--inputs must be a JSON object" in capsys.readouterr().err
