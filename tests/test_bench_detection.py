"""benchmarks/bench_detection.py runs end to end, tiny: a fresh simulator process per
list budget (and webhook setting), the client in its own process, lags and counts that
agree with the simulator's counters.

The full-size run (5,000 jobs, about a minute) is not a test; docs/benchmarks.md
has its figures.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from cli_harness import REPO, run_benchmark

from async_orch.simulator import parse_scenario

pytestmark = pytest.mark.slow  # starts processes

JOBS = 120


def test_a_tiny_run_measures_detection_lag_and_list_calls_per_budget(tmp_path: Path) -> None:
    stdout, document = run_benchmark(
        "bench_detection.py",
        *("--jobs", str(JOBS), "--folders", "2", "--capacity", "30"),
        *("--budgets", "60", "30", "--push-modes", "poll"),
        results=tmp_path,
    )
    assert "detection lag p99 (s)" in stdout
    runs = document["runs"]
    assert [run["budget_per_minute"] for run in runs] == [60, 30]
    for run in runs:
        assert run["finished"] == JOBS and run["seen_final"] == JOBS, run
        assert run["outcomes"] == {"successful": JOBS}
        routes = run["requests_by_route"]
        assert routes["POST /odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"] == JOBS
        assert routes["GET /odata/Jobs({key})"] == JOBS  # each job's outputs, once
        assert run["list_calls"] == routes["GET /odata/Jobs"] > 0
        assert run["http_429"] == 0
        # A job is seen after it ends: the clock mapping is right to a few ms.
        assert -0.05 < run["lag_min_s"] <= run["lag_median_s"] <= run["lag_p99_s"]
        assert run["cpu_s"] > 0


def test_a_tiny_run_with_webhooks_sees_every_job_those_whose_event_was_lost_by_polling(
    tmp_path: Path,
) -> None:
    stdout, document = run_benchmark(
        "bench_detection.py",
        *("--jobs", str(JOBS), "--folders", "2", "--capacity", "30"),
        *("--budgets", "60", "--push-modes", "push", "--drop", "0.3"),
        results=tmp_path,
    )
    assert "jobs found by polling" in stdout and "30% lost" in stdout
    (run,) = document["runs"]
    assert run["webhooks"] and run["webhook_drop_rate"] == 0.3
    assert run["all_seen_final"] and run["outcomes"] == {"successful": JOBS}, run
    dropped = run["webhooks_dropped"]
    assert 0 < dropped < JOBS  # the seeded drop loses some of the end events
    # One end event a job (the benchmark subscribes to job-end events only): the jobs
    # whose event was lost are exactly those polling had to find.
    assert run["receiver_counts"] == {"accepted": JOBS - dropped}
    assert run["lag_no_event_count"] == dropped
    assert run["event_delivery_count"] == JOBS - dropped
    assert run["requests_by_route"]["GET /odata/Jobs({key})"] == JOBS  # outputs, once each
    assert run["list_calls"] > 0 and run["http_429"] == 0
    assert -0.05 < run["lag_min_s"] <= run["lag_median_s"] <= run["lag_p99_s"]


def test_the_scenario_gives_a_freed_robot_slot_to_the_next_job_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The simulator's default pickup delay (2 simulated s, an assumption) idled every
    # slot 67 ms a wave at 30x: the tenant completed ~865 jobs a second, not ~1,000.
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    bench = importlib.import_module("bench_detection")
    text = bench.detection_scenario(bench.parse_args([]))
    scenario = parse_scenario(text, name="bench-detection")
    assert scenario.timings.pickup_delay == 0
    assert scenario.time_scale == 30
    assert sum(f.capacity for f in scenario.tenants[0].folders) == 500


def test_the_sustained_rate_leaves_out_the_ramp_up_and_the_tail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    bench = importlib.import_module("bench_detection")
    # 1,000 events at 100 a second, then a straggler 60 s later: the whole-span rate
    # (1,001 / 70 s) says 14 a second; the pace while it ran was 100.
    times = [k / 100 for k in range(1000)] + [70.0]
    assert bench.sustained_rate(times) == pytest.approx(100.0, rel=0.01)
