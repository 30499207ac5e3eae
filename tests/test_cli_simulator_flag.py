"""--simulator (issue 15 point 4): refused with another target, and a journal made
with it cannot be resumed, refreshed or stopped: the commands say why and what to do."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from cli_harness import assert_one_line_exit_2, cli_env, run_cli

from async_orch import ConfigurationError
from async_orch._cli.common import refuse_simulator_with_target


def _args(**given: str | None) -> argparse.Namespace:
    return argparse.Namespace(url=given.get("url"), profile=given.get("profile"))


@pytest.mark.parametrize(
    ("flags", "environ", "named"),
    [
        ({"url": "https://cloud.uipath.com/o/t/orchestrator_"}, {}, "--url"),
        ({}, {"UIPATH_URL": "https://cloud.uipath.com/o/t/orchestrator_"}, "UIPATH_URL"),
        ({"profile": "prod"}, {}, "--profile"),
        ({}, {"ASYNC_ORCH_PROFILE": "prod"}, "ASYNC_ORCH_PROFILE"),
    ],
    ids=["url", "env-url", "profile", "env-profile"],
)
def test_simulator_with_another_target_is_refused(
    flags: dict[str, str], environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        refuse_simulator_with_target(_args(**flags), environ)
    message = str(refused.value)
    assert message.startswith(f"--simulator runs its own Orchestrator, but {named} names another")
    assert "\n" not in message


def test_two_targets_name_another_in_plural() -> None:
    flags = _args(url="https://cloud.uipath.com/o/t/orchestrator_")
    with pytest.raises(ConfigurationError) as refused:
        refuse_simulator_with_target(flags, {"UIPATH_URL": "https://x.example/o/t/orchestrator_"})
    assert "but --url and UIPATH_URL name another: " in str(refused.value)


def test_simulator_alone_is_fine() -> None:
    refuse_simulator_with_target(_args(), {"UIPATH_URL": " ", "UIPATH_CLIENT_ID": "x"})


@pytest.mark.slow
async def test_a_journal_of_dispatch_simulator_cannot_be_resumed_refreshed_or_stopped(
    tmp_path: Path,
) -> None:
    env = cli_env(tmp_path)
    journal = tmp_path / "sim.sqlite"
    refused = await run_cli(
        "dispatch", "--simulator", "--url", "https://cloud.uipath.com/o/t/orchestrator_",
        "--process", "Echo", "--folder", "Shared", env=env,
    )  # fmt: skip
    assert_one_line_exit_2(refused, "--simulator runs its own Orchestrator, but --url")

    done = await run_cli(
        "dispatch", "--simulator", "--time-scale", "3600", "--process", "Echo",
        "--folder", "Shared", "--count", "2", "--journal", str(journal), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = await run_cli("jobs", "--journal", str(journal), env=env)  # offline: fine
    assert shown.returncode == 0 and len(shown.rows()) == 2, shown.stderr

    for command, what in [
        (["dispatch", "--resume", str(journal)], "resume"),
        (["jobs", "--journal", str(journal), "--refresh"], "refresh"),
        (["stop", "--journal", str(journal)], "stop"),
    ]:
        run = await run_cli(*command, env=env)
        assert_one_line_exit_2(
            run,
            f"cannot {what} the jobs of {journal}: it was made by dispatch --simulator",
            "start `async-orch simulator` in another terminal",
        )
