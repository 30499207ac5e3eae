"""benchmarks/bench_dispatch.py runs end to end, small: every dispatcher against its
own simulator process, figures taken from the simulator's counters.

The full-size run (1,000 jobs, about 6 minutes) is not a test; this checks that the
script works and that what it reports agrees with what the simulator saw.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_harness import run_benchmark

pytestmark = pytest.mark.slow  # every test here starts a process

JOBS = 24


def test_small_run_reports_every_dispatcher_from_the_simulators_counters(
    tmp_path: Path,
) -> None:
    stdout, document = run_benchmark(
        "bench_dispatch.py",
        *("--jobs", str(JOBS), "--folders", "3"),
        *("--time-scale", "120"),  # 30-120 simulated seconds per job: 0.25-1 real second
        *("--bare", "--naive-timeout", "6"),
        results=tmp_path,
    )
    assert "async-orch / bare client CPU:" in stdout
    assert "--cpu-window" not in stdout  # figures not asked for are not shown

    runs = {run["dispatcher"]: run for run in document["runs"]}
    assert set(runs) == {"async-orch", "naive", "bare"}

    for kind in ("async-orch", "bare"):
        run = runs[kind]
        assert run["finished"] == JOBS, run
        assert run["outputs_ok"] == JOBS, run  # the Echo process returns its inputs
        assert run["jobs_created"] == JOBS, run  # counted by the simulator
        routes = run["requests_by_route"]
        start_jobs = "POST /odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
        assert routes[start_jobs] == JOBS, routes
        assert routes["GET /odata/Jobs({key})"] >= JOBS, routes  # each job's outputs
        assert run["requests"] == sum(routes.values())
        assert run["cpu_ms_per_job"] > 0

    ours = runs["async-orch"]
    assert ours["http_429"] == 0
    assert ours["outcomes"] == {"successful": JOBS}

    naive = runs["naive"]
    assert naive["jobs_created"] == JOBS  # it starts everything, then polls
    # Every job is accounted for: seen final, or still running when it was cut off.
    capped = naive["outcomes"].get("unfinished (capped)", 0)
    assert naive["finished"] + capped == JOBS, naive["outcomes"]
    assert naive["outputs_ok"] == naive["finished"]


def test_rounds_alternate_the_dispatchers_and_report_the_median(tmp_path: Path) -> None:
    args = ["--jobs", "8", "--folders", "2", "--time-scale", "120", "--skip-naive", "--bare"]
    stdout, document = run_benchmark("bench_dispatch.py", *args, "--rounds", "2", results=tmp_path)
    rounds = document["rounds"]
    assert [[run["dispatcher"] for run in round_] for round_ in rounds] == [
        ["async-orch", "bare"],
        ["async-orch", "bare"],
    ]
    for i, run in enumerate(document["runs"]):
        assert run in [round_[i] for round_ in rounds]  # one of its own rounds
        assert run["finished"] == 8
    line = next(x for x in stdout.splitlines() if x.startswith("client CPU per job (ms) by round"))
    assert "async-orch / bare" in line


def test_cpu_window_measures_each_client_while_its_jobs_run(tmp_path: Path) -> None:
    """--cpu-window: each client's CPU between two times of its run (here while all
    4 jobs run, 60-70 simulated s at 60x: 1-1.2 real s), and the ratio line."""
    args = ["--jobs", "4", "--folders", "2", "--time-scale", "60", "--duration", "60", "70"]
    args += ["--skip-naive", "--bare", "--cpu-window", "0.2", "0.7"]
    stdout, document = run_benchmark("bench_dispatch.py", *args, results=tmp_path)
    assert "async-orch / bare client CPU in --cpu-window:" in stdout
    for run in document["runs"]:
        assert 0 < run["window_cpu_ms"] < 1000 * run["cpu_s"], run
        # (each figure rounded: the window to 0.1 ms, its rate to 0.01 ms)
        assert run["window_cpu_ms_per_s"] == pytest.approx(run["window_cpu_ms"] / 0.5, abs=0.11)


def test_a_simulator_that_does_not_start_says_what_it_printed(tmp_path: Path) -> None:
    from bench_dispatch import Simulator

    with pytest.raises(RuntimeError) as failed:
        Simulator(tmp_path / "missing.toml")
    message = str(failed.value)
    assert message.startswith("the simulator did not start; it said: ")
    assert "missing.toml" in message  # the simulator's own error line, not said ''


def test_a_missing_dependency_points_at_the_projects_venv(tmp_path: Path) -> None:
    from simulator_process import did_not_start

    log = tmp_path / "simulator.log"
    log.write_text("ModuleNotFoundError: No module named 'aiohttp'\n", encoding="utf-8")
    message = did_not_start("", log)
    assert "No module named 'aiohttp'" in message
    assert message.endswith(
        "run the benchmark with the project's venv, .venv/bin/python benchmarks/..."
    )
