"""Load tests: drive a tenant (or the simulator) with a profile and report on it.

* `async_orch.loadtest.profile`: constant, ramp and step profiles (pure).
* `async_orch.loadtest.template`: the jobs (process, folders, inputs template).
* `async_orch.loadtest.measure`: what is recorded and the numbers made of it (pure).
* `async_orch.loadtest.svg`, `async_orch.loadtest.report`: the
  self-contained HTML report and its JSON (pure).
* `async_orch.loadtest.runner`, `async_orch.loadtest.target`,
  `async_orch.loadtest.session`: the I/O shell.

The command line is ``async-orch loadtest`` (``async_orch/_cli/loadtest_cmd.py``).
"""

from __future__ import annotations

from async_orch.loadtest.profile import LoadProfile, Stage, parse_profile
from async_orch.loadtest.report import build_report, render_html, shortfalls
from async_orch.loadtest.runner import LiveStatus, LoadPlan, LoadTest, live_line
from async_orch.loadtest.session import check_names, run_and_report
from async_orch.loadtest.target import Target, embedded_simulator, url_target
from async_orch.loadtest.template import JobTemplate

__all__ = [
    "JobTemplate",
    "LiveStatus",
    "LoadPlan",
    "LoadProfile",
    "LoadTest",
    "Stage",
    "Target",
    "build_report",
    "check_names",
    "embedded_simulator",
    "live_line",
    "parse_profile",
    "render_html",
    "run_and_report",
    "shortfalls",
    "url_target",
]
