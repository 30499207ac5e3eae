"""One rule for the default folder (issue 15 point 2): ``Settings.folder``
(UIPATH_FOLDER_PATH, a profile's folder) applies wherever a folder is needed and
none is given: the library's JobRequest, ``dispatch`` and ``jobs``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import cli_env, run_cli

from async_orch import (
    ClientCredentials,
    InvalidRequestError,
    JobRequest,
    OrchestratorClient,
    Outcome,
    Settings,
    Started,
)
from async_orch._cli.profiles import merge_environment
from async_orch.simulator import SimulatorHandle


def _settings(sim: SimulatorHandle, folder: str | None) -> Settings:
    credentials = ClientCredentials(client_id=sim.client_id, client_secret=sim.client_secret)
    return Settings(url=sim.url, credentials=credentials, folder=folder)


async def test_a_request_with_no_folder_runs_in_the_settings_folder(
    fast_simulator: SimulatorHandle,
) -> None:
    async with OrchestratorClient(_settings(fast_simulator, "Finance")) as orch:
        results = await orch.run_jobs([JobRequest(process="Echo"), JobRequest(process="Echo")])
        started = await orch.start_jobs([JobRequest(process="Echo", folder="HR")])
    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL] * 2
    assert {r.handle.folder_path for r in results if r.handle} == {"Finance"}
    assert [r.request.folder for r in results if r.request] == ["Finance"] * 2
    assert isinstance(started[0], Started) and started[0].handles[0].folder_path == "HR"


async def test_a_request_with_no_folder_and_no_default_is_refused_before_anything_starts(
    fast_simulator: SimulatorHandle,
) -> None:
    async with OrchestratorClient(_settings(fast_simulator, None)) as orch:
        with pytest.raises(InvalidRequestError, match=r"requests\[1\]: no folder: give"):
            await orch.run_jobs(
                [JobRequest(process="Echo", folder="HR"), JobRequest(process="Echo")]
            )
    assert fast_simulator.simulator.stats()["jobs"]["created"] == 0


@pytest.mark.slow
async def test_dispatch_and_jobs_use_the_default_folder(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=3600.0)
    env = cli_env(tmp_path, UIPATH_URL=sim.url, UIPATH_FOLDER_PATH="HR")
    done = await run_cli(
        "dispatch", "--process", "Echo", "--count", "2", "--reference-prefix", "df",
        "--journal", str(tmp_path / "j.sqlite"), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {row["folder"] for row in done.rows()} == {"HR"}

    shown = await run_cli("jobs", "--reference", "df-1", env=env)
    assert shown.returncode == 0, shown.stderr
    assert [(r["folder"], r["reference"]) for r in shown.rows()] == [("HR", "df-1")]


@pytest.mark.slow
async def test_rows_name_a_folder_given_by_id_or_key_by_its_full_path(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=3600.0)
    credentials = ClientCredentials(client_id=sim.client_id, client_secret=sim.client_secret)
    async with OrchestratorClient(Settings(url=sim.url, credentials=credentials)) as orch:
        folder = await orch.api.resolve_folder("Finance/Comptabilité")
    assert folder.key is not None
    by_id = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", str(folder.id),
        "--journal", str(tmp_path / "id.sqlite"), env=cli_env(tmp_path),
    )  # fmt: skip
    assert by_id.returncode == 0, by_id.stderr
    assert [row["folder"] for row in by_id.rows()] == ["Finance/Comptabilité"]
    by_key = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--journal",
        str(tmp_path / "key.sqlite"), env=cli_env(tmp_path, UIPATH_FOLDER_KEY=folder.key),
    )  # fmt: skip
    assert by_key.returncode == 0, by_key.stderr
    assert [row["folder"] for row in by_key.rows()] == ["Finance/Comptabilité"]


@pytest.mark.slow
async def test_a_folder_path_and_key_both_set_are_refused_in_one_line(tmp_path: Path) -> None:
    env = cli_env(
        tmp_path,
        UIPATH_URL="http://127.0.0.1:9/o/t/orchestrator_",
        UIPATH_FOLDER_PATH="HR",
        UIPATH_FOLDER_KEY="2b5c0e6e",
    )
    run = await run_cli("dispatch", "--process", "Echo", "--dry-run", env=env)
    assert run.returncode == 2
    (line,) = run.stderr.splitlines()
    assert "UIPATH_FOLDER_KEY (2b5c0e6e) and UIPATH_FOLDER_PATH ('HR') are both set" in line


def test_a_profile_or_the_environment_gives_the_folder_whole() -> None:
    environ = {"UIPATH_FOLDER_KEY": "k-from-env"}
    profile = {"UIPATH_FOLDER_PATH": "Finance"}
    chosen = merge_environment(environ, profile, profile_wins=True)
    assert (chosen.get("UIPATH_FOLDER_PATH"), chosen.get("UIPATH_FOLDER_KEY")) == ("Finance", None)
    default = merge_environment(environ, profile, profile_wins=False)
    assert (default.get("UIPATH_FOLDER_PATH"), default.get("UIPATH_FOLDER_KEY")) == (
        None,
        "k-from-env",
    )
