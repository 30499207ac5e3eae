"""Bad input never shows a traceback: one clear message on stderr and exit code 2."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import (
    REPO,
    assert_one_line_exit_2,
    cli_env,
    closed_port,
    run_cli,
    simulator_jobs,
)

from async_orch._cli.common import non_negative, positive, positive_int
from async_orch._journal import Journal, JournalTarget, RequestRecord
from async_orch._journal_lock import JournalLock
from async_orch.simulator import SimulatorHandle


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "env_extra", "needles"),
    [
        (["--process", "Echo", "--folder", "Shared", "--inputs", "{n: 1}"], {},
         ["InputArguments must be a JSON object"]),
        (["--process", "Echo", "--folder", "Shared", "--inputs", "[1, 2]"], {},
         ["JSON object"]),
        (["--process", "Echo", "--folder", "Sahred"], {},
         ["folder 'Sahred' not found", "available: Shared"]),
        (["--process", "Ecoh", "--folder", "Shared"], {},
         ["process 'Ecoh' not found in folder 'Shared'", "Echo"]),
        (["--process", "Echo", "--folder", "Shared"], {"UIPATH_CLIENT_SECRET": "wrong"},
         ["authentication failed", "invalid_client", "UIPATH_CLIENT_SECRET"]),
        (["--process", "Echo", "--folder", "Shared", "--count", "0"], {},
         ["argument --count: '0' is not a whole number of at least 1"]),
        (["--folder", "Shared"], {}, ["--process NAME"]),
        (["--process", "Echo", "--folder", "Shared", "--list-budget-redis", "http://cache:6379"],
         {}, ["Redis URL must look like redis://HOST:PORT/DB", "'http'"]),
    ],
    ids=["malformed-inputs", "inputs-not-object", "unknown-folder", "unknown-process",
         "bad-credentials", "zero-count", "no-process", "list-budget-redis-url"],
)  # fmt: skip
async def test_bad_dispatch_input_is_one_line_and_exit_2(
    start_simulator: Callable[..., Any],
    tmp_path: Path,
    flags: list[str],
    env_extra: dict[str, str],
    needles: list[str],
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    run = await run_cli("dispatch", "--url", sim.url, *flags, env=cli_env(tmp_path, **env_extra))
    assert_one_line_exit_2(run, *needles)
    assert simulator_jobs(sim)["created"] == 0
    assert not (tmp_path / "state").exists()  # no journal for a run that never began


@pytest.mark.slow
async def test_unreachable_host_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/demo/DefaultTenant/orchestrator_"
    # One attempt: the transport's retries of a refused connection only add time here.
    env = cli_env(tmp_path, ASYNC_ORCH_RETRY_ATTEMPTS="1")
    run = await run_cli(
        "dispatch", "--url", url, "--process", "Echo", "--folder", "Shared", env=env
    )
    assert_one_line_exit_2(run, "cannot reach Orchestrator", "Check the URL")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("url", "needles"),
    [
        ("cloud.uipath.com/acme/tenant", ["no scheme; write 'https://cloud.uipath.com"]),
        ("https://cloud.uipath.com/acme", ["tenant missing"]),
        ("http://[::1/a/b/orchestrator_",
         ["Orchestrator URL 'http://[::1/a/b/orchestrator_': not a valid URL (Invalid IPv6 URL)"]),
        ("http://127.0.0.1:99999/a/b/orchestrator_", ["not a valid URL (Port out of range"]),
    ],
)  # fmt: skip
async def test_malformed_url_is_one_line_and_exit_2(
    tmp_path: Path, url: str, needles: list[str]
) -> None:
    run = await run_cli(
        "dispatch", "--url", url, "--process", "Echo", "--folder", "Shared", env=cli_env(tmp_path)
    )
    assert_one_line_exit_2(run, *needles)


@pytest.mark.slow
async def test_missing_credentials_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    del env["UIPATH_CLIENT_ID"], env["UIPATH_CLIENT_SECRET"]
    run = await run_cli(
        "dispatch", "--url", "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_",
        "--process", "Echo", "--folder", "Shared", env=env,
    )  # fmt: skip
    assert_one_line_exit_2(run, "no credentials", "UIPATH_CLIENT_ID")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "suffix", "needles"),
    [
        ("folder,inputs\nShared,{}\n", ".csv", ["missing process"]),
        ('{"folder": "Shared", "process": "Echo"}\nnot json\n', ".jsonl", [":2: not valid JSON"]),
        ("folder,process\n", ".csv", ["holds no jobs"]),
        ("x", ".txt", ["must end in .csv or .jsonl"]),
    ],
    ids=["csv-header", "jsonl-line", "empty", "suffix"],
)
async def test_bad_job_file_is_one_line_and_exit_2(
    tmp_path: Path, content: str, suffix: str, needles: list[str]
) -> None:
    path = tmp_path / f"jobs{suffix}"
    path.write_text(content, encoding="utf-8")
    run = await run_cli(
        "dispatch", "--url", "http://127.0.0.1:9/demo/DefaultTenant/orchestrator_",
        "--file", str(path), env=cli_env(tmp_path),
    )  # fmt: skip
    assert_one_line_exit_2(run, *needles)


@pytest.mark.slow
async def test_resume_of_a_file_that_is_not_a_journal_is_exit_2(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("hello", encoding="utf-8")
    run = await run_cli("dispatch", "--resume", str(bogus), env=cli_env(tmp_path))
    assert_one_line_exit_2(run, "is not an async-orch journal")
    missing = await run_cli("dispatch", "--resume", str(tmp_path / "x"), env=cli_env(tmp_path))
    assert_one_line_exit_2(missing, "no journal at")
    for command in (["dispatch", "--resume"], ["jobs", "--journal"], ["stop", "--journal"]):
        folder = await run_cli(*command, str(tmp_path), env=cli_env(tmp_path))
        assert_one_line_exit_2(folder, f"journal {tmp_path} is a directory; give the path")


@pytest.mark.slow
async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    run = await run_cli("dispatch", "--count", "many", env=cli_env(tmp_path))
    assert_one_line_exit_2(run, "argument --count: 'many' is not a whole number")


@pytest.mark.parametrize(
    ("parse", "text", "needle"),
    [
        (positive, "-1", "is not a finite number more than 0"),
        (positive, "0", "is not a finite number more than 0"),
        (positive, "nan", "is not a finite number more than 0"),
        (positive, "inf", "is not a finite number more than 0"),
        (positive, "soon", "is not a finite number more than 0"),
        (non_negative, "-0.5", "is not a finite number 0 or more"),
        (positive_int, "0", "is not a whole number of at least 1"),
        (positive_int, "2.5", "is not a whole number of at least 1"),
    ],
)
def test_durations_rates_and_counts_are_checked_by_argparse(
    parse: Callable[[str], float], text: str, needle: str
) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=needle):
        parse(text)


def test_good_durations_rates_and_counts_are_read() -> None:
    assert positive("2.5") == 2.5
    assert non_negative("0") == 0.0
    assert positive_int("16") == 16


@pytest.mark.slow
async def test_a_negative_timeout_is_a_usage_error_before_anything_starts(tmp_path: Path) -> None:
    # Accepted, it would start the jobs only to abandon them at once.
    env = cli_env(tmp_path)
    args = ["--process", "Echo", "--folder", "Shared", "--count", "3", "--quiet"]
    for flag, value in [("--timeout", "-1"), ("--job-timeout", "0"), ("--stop-grace", "-1")]:
        run = await run_cli("dispatch", "--simulator", *args, flag, value, env=env)
        assert run.returncode == 2, run.stderr
        assert f"argument {flag}: '{value}' is not a finite number" in run.stderr
        assert "Traceback" not in run.stderr
    assert not (tmp_path / "state").exists()  # no journal was written


@pytest.mark.slow
async def test_every_writer_of_a_journal_in_use_gets_one_line_and_exit_2(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    env = cli_env(tmp_path)
    busy = tmp_path / "busy.sqlite"
    target = JournalTarget(url=sim.url, organization="demo", tenant="DefaultTenant")
    record = RequestRecord(index=0, reference="busy-0", folder="Shared", process="Echo")
    Journal.create(busy, target=target, batch_id="busy", requests=[record]).close()
    fresh = tmp_path / "fresh.sqlite"
    holder = f"(pid {os.getpid()} on host {socket.gethostname()}, since "
    # This test's process holds both journals' locks, as a running dispatch would.
    with JournalLock(busy), JournalLock(fresh):
        for journal, args in [
            (busy, ["dispatch", "--resume", str(busy)]),
            (busy, ["stop", "--journal", str(busy)]),
            (busy, ["jobs", "--journal", str(busy), "--refresh"]),
            (fresh, ["dispatch", "--url", sim.url, "--process", "Echo", "--folder", "Shared",
                     "--journal", str(fresh)]),
        ]:  # fmt: skip
            run = await run_cli(*args, env=env)
            assert_one_line_exit_2(
                run,
                f"error: journal {journal} is in use by another async-orch process {holder}",
                "nothing to clean up",
                f"async-orch jobs --journal {journal}",
            )
        shown = await run_cli("jobs", "--journal", str(busy), env=env)  # reading takes no lock
        assert shown.returncode == 1, shown.stderr  # an unfinished job: 1, as documented
        assert [(r["reference"], r["outcome"]) for r in shown.rows()] == [("busy-0", "unfinished")]
    assert not fresh.exists()
    assert simulator_jobs(sim)["created"] == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env_extra", "needles"),
    [
        ({"UIPATH_URL": "http://[::1", "UIPATH_ORGANIZATION_NAME": "acme",
          "UIPATH_TENANT_NAME": "t"}, ["Orchestrator URL 'http://[::1': not a valid URL"]),
        ({"UIPATH_URL": "http://127.0.0.1:9/a/b/orchestrator_",
          "ASYNC_ORCH_IDENTITY_URL": "http://[::1"},
         ["identity_url (ASYNC_ORCH_IDENTITY_URL) 'http://[::1': not a valid URL"]),
    ],
    ids=["UIPATH_URL", "ASYNC_ORCH_IDENTITY_URL"],
)  # fmt: skip
async def test_a_malformed_url_in_the_environment_is_one_line_and_exit_2(
    tmp_path: Path, env_extra: dict[str, str], needles: list[str]
) -> None:
    run = await run_cli(
        "dispatch", "--process", "Echo", "--folder", "Shared", env=cli_env(tmp_path, **env_extra)
    )
    assert_one_line_exit_2(run, *needles)


@pytest.mark.slow
async def test_an_unwritable_output_fails_before_anything_starts(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    env = cli_env(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    missing = blocker / "out.jsonl"  # its folder cannot be made: a file is in the way
    no_folder = f"{missing}: {blocker} is not a folder"
    echo = ["--process", "Echo", "--folder", "Shared"]
    load = [*echo, "--load-profile", "constant:1:2", "--max-jobs", "2", "--yes-start-real-jobs"]
    journal = str(tmp_path / "j.sqlite")  # never opened: the output is checked first
    cases = [
        (["dispatch", "--simulator", *echo, "--output", str(missing)], f"--output {no_folder}"),
        (["dispatch", "--url", sim.url, *echo, "-o", str(missing)], f"--output {no_folder}"),
        (["dispatch", "--url", sim.url, *echo, "-o", str(tmp_path)],
         f"--output {tmp_path} is a folder; give a file path in it"),
        (["dispatch", "--resume", journal, "-o", str(missing)], f"--output {no_folder}"),
        (["jobs", "--journal", journal, "-o", str(missing)], f"--output {no_folder}"),
        (["stop", "--journal", journal, "-o", str(missing)], f"--output {no_folder}"),
        (["loadtest", "--url", sim.url, *load, "--report", str(missing)], f"--report {no_folder}"),
        (["loadtest", "--url", sim.url, *load, "--report", str(tmp_path / "r.html"),
          "--json", str(missing)], f"--json {no_folder}"),
        (["loadtest", "--url", sim.url, *load, "--report", str(tmp_path / "r.json")],
         "and its JSON would be the same file"),
    ]  # fmt: skip
    for args, needle in cases:
        assert_one_line_exit_2(await run_cli(*args, env=env), needle)
    assert simulator_jobs(sim)["created"] == 0
    assert not (tmp_path / "state").exists()  # no journal either
    leftovers = ("missing", "r.html", "r.json", "j.sqlite")
    assert not [name for name in leftovers if (tmp_path / name).exists()]


@pytest.mark.slow
async def test_checking_the_output_keeps_an_old_file_and_leaves_no_new_one(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text('{"index": 0}\n', encoding="utf-8")
    fresh = tmp_path / "fresh.jsonl"
    for output in (earlier, fresh):
        run = await run_cli(
            "dispatch", "--url", sim.url, "--process", "Ecoh", "--folder", "Shared",
            "--output", str(output), env=cli_env(tmp_path),
        )  # fmt: skip
        assert_one_line_exit_2(run, "process 'Ecoh' not found")
    assert earlier.read_text(encoding="utf-8") == '{"index": 0}\n'
    assert not fresh.exists()


@pytest.mark.slow
async def test_files_that_are_not_utf8_are_one_line_and_exit_2(tmp_path: Path) -> None:
    # As Excel saves "CSV" on Windows: cp1252, so "é" is the single byte 0xE9.
    jobs = tmp_path / "jobs.csv"
    jobs.write_bytes(
        'folder,process,inputs\nShared,Echo,"{""client"": ""Café""}"\n'.encode("cp1252")
    )
    run = await run_cli("dispatch", "--simulator", "--file", str(jobs), env=cli_env(tmp_path))
    assert_one_line_exit_2(
        run, f"job file {jobs} is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"
    )
    config = tmp_path / "config.toml"
    config.write_bytes('[profiles.default]\nfolder = "Comptabilité"\n'.encode("cp1252"))
    run = await run_cli(
        "dispatch", "--config", str(config), "--url", "http://127.0.0.1:9/a/b/orchestrator_",
        "--process", "Echo", "--folder", "Shared", env=cli_env(tmp_path),
    )  # fmt: skip
    assert_one_line_exit_2(
        run, f"config file {config} is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"
    )


@pytest.mark.slow
async def test_output_and_journal_make_a_missing_folder_alike(tmp_path: Path) -> None:
    """-o and --journal treat a missing folder the same way: made, private (0700)."""
    out = tmp_path / "new" / "results" / "r.jsonl"
    journal = tmp_path / "other" / "journals" / "j.sqlite"
    run = await run_cli(
        "dispatch", "--simulator", "--process", "Echo", "--folder", "Shared", "--count", "2",
        "--quiet", "-o", str(out), "--journal", str(journal), env=cli_env(tmp_path),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert len(out.read_text().splitlines()) == 2 and journal.exists()
    for folder in (out.parent, out.parent.parent, journal.parent, journal.parent.parent):
        assert folder.stat().st_mode & 0o777 == 0o700, folder


@pytest.mark.slow
async def test_output_dash_writes_results_to_stdout(tmp_path: Path) -> None:
    """`-o -` means stdout, as for most tools, not a file named "-"."""
    dash = REPO / "-"  # the CLI runs in the checkout
    assert not dash.exists()
    try:
        run = await run_cli(
            "dispatch", "--simulator", "--process", "Echo", "--folder", "Shared", "--count", "2",
            "--quiet", "-o", "-", env=cli_env(tmp_path),
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert [row["state"] for row in run.rows()] == ["Successful", "Successful"]
        assert not dash.exists()
    finally:
        dash.unlink(missing_ok=True)
