"""The CLI against the "realistic" simulator: stuck Pending jobs and refused starts
are reported, one line each, over real sockets (issue 13 point 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_harness import cli_env, run_cli


@pytest.mark.slow
async def test_dispatch_reports_jobs_stuck_pending_and_refused_starts(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    args = ["dispatch", "--simulator", "--scenario", "realistic", "--time-scale", "600"]
    args += ["--process", "Echo", "--folder", "HR", "--folder", "Sandbox", "--folder", "Shared"]
    args += ["--count", "3", "--pending-timeout", "1", "--timeout", "60", "-o", str(out)]
    done = await run_cli(*args, env=cli_env(tmp_path))
    assert done.returncode == 1, done.stderr  # some requests did not succeed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_folder = {row["folder"]: row for row in rows}
    assert by_folder["Shared"]["outcome"] == "successful"
    assert by_folder["HR"]["outcome"] == "stuck_pending"
    assert "stayed Pending for" in by_folder["HR"]["info"]
    assert by_folder["Sandbox"]["outcome"] == "not_started"
    assert "has no machine with unattended runtimes" in by_folder["Sandbox"]["info"]
    assert "stuck_pending 1" in done.stderr
