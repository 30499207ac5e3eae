"""benchmarks/bench_detection.py runs end to end, tiny: a fresh simulator process per
list budget, the client in its own process, lags and counts that agree with the
simulator's counters.

The full-size run (5,000 jobs, about a minute) is not a test; docs/benchmarks.md
has its figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_harness import run_benchmark

pytestmark = pytest.mark.slow  # starts processes

JOBS = 120


def test_a_tiny_run_measures_detection_lag_and_list_calls_per_budget(tmp_path: Path) -> None:
    stdout, document = run_benchmark(
        "bench_detection.py",
        *("--jobs", str(JOBS), "--folders", "2", "--capacity", "30"),
        *("--budgets", "60", "30"),
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
