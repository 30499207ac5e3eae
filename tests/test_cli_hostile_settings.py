"""Hostile settings (environment, --url, proxies, output paths) given to the real CLI:
one line naming the variable or flag and the fix, exit 2, never a traceback, never a
secret (issue 15)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_harness import assert_one_line_exit_2, cli_env, run_cli
from test_dispatcher_support import START_JOBS, requests_to

from async_orch.simulator import SimulatorHandle

pytestmark = pytest.mark.slow  # every test here starts a process

# A byte that is not UTF-8, as Python keeps it in os.environ (surrogateescape).
BAD_BYTE = b"\xff".decode("utf-8", "surrogateescape")

# (variables, what the one line must say).
HOSTILE_ENVIRONMENTS: list[tuple[dict[str, str], str]] = [
    ({"UIPATH_CLIENT_SECRET": "S3CRET" + BAD_BYTE},
     "UIPATH_CLIENT_SECRET holds a byte that is not UTF-8 (0xff)"),
    ({"UIPATH_CLIENT_ID": "S3CRET" + BAD_BYTE},
     "UIPATH_CLIENT_ID holds a byte that is not UTF-8 (0xff)"),
    ({"ASYNC_ORCH_SCOPES": "S3CRET" + BAD_BYTE},
     "ASYNC_ORCH_SCOPES holds a byte that is not UTF-8 (0xff)"),
    ({"UIPATH_FOLDER_PATH": "S3CRET" + b"\xed".decode("utf-8", "surrogateescape")},
     "UIPATH_FOLDER_PATH holds a byte that is not UTF-8 (0xed)"),
    ({"ASYNC_ORCH_TIMEOUT": "nan"},
     "ASYNC_ORCH_TIMEOUT='nan' must be a finite number of seconds, more than 0"),
    ({"ASYNC_ORCH_TIMEOUT": "-1"}, "ASYNC_ORCH_TIMEOUT='-1' must be a finite number"),
    ({"ASYNC_ORCH_CONNECT_TIMEOUT": "0"}, "ASYNC_ORCH_CONNECT_TIMEOUT='0' must be a finite"),
]  # fmt: skip
ENV_IDS = ["secret-byte", "client-id-byte", "scopes-byte", "folder-byte", "timeout-nan",
           "timeout-negative", "connect-timeout-0"]  # fmt: skip


@pytest.mark.parametrize(("variables", "needle"), HOSTILE_ENVIRONMENTS, ids=ENV_IDS)
async def test_a_hostile_variable_is_one_line_naming_it(
    start_simulator: Callable[..., Any], tmp_path: Path, variables: dict[str, str], needle: str
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    run = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--count", "1", "--quiet",
        env=cli_env(tmp_path, **variables),
    )  # fmt: skip
    assert_one_line_exit_2(run, needle)
    assert "S3CRET" not in run.stderr
    assert "RetryPolicy" not in run.stderr and "RequestTimeouts" not in run.stderr
    assert requests_to(sim, START_JOBS) == 0


async def test_a_host_name_idna_refuses_is_one_line(tmp_path: Path) -> None:
    url = "http://\u00ebxample\u202e.com/a/b/orchestrator_"
    run = await run_cli("dispatch", "--url", url, "--process", "Echo", "--folder", "Shared",
                        env=cli_env(tmp_path))  # fmt: skip
    assert_one_line_exit_2(run, "not a valid URL (Host", "cannot contain '\\u202e'")


async def test_a_long_folder_variable_is_cut_short_in_the_message(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    run = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--count", "1", "--quiet",
        env=cli_env(tmp_path, UIPATH_FOLDER_PATH="x" * 100_000),
    )  # fmt: skip
    assert_one_line_exit_2(run, "xxx'... (100,000 chars) not found")
    assert len(run.stderr) < 1_000


@pytest.mark.parametrize(
    ("variables", "needle"),
    [
        ({"HTTP_PROXY": "htp://x"},
         "proxy variable HTTP_PROXY 'htp://x' is not an http:// URL with a host"),
        ({"HTTP_PROXY": "http://[::1"},
         "proxy variable HTTP_PROXY 'http://[::1' is not a valid URL (Invalid IPv6 URL)"),
        ({"https_proxy": "proxy.corp:3128"}, "proxy variable https_proxy 'proxy.corp:3128'"),
        ({"HTTPS_PROXY": "http://user:S3CRET@[::1"}, "proxy variable HTTPS_PROXY is not a valid"),
    ],
    ids=["scheme", "ipv6", "no-scheme", "credentials"],
)  # fmt: skip
async def test_a_proxy_variable_aiohttp_cannot_use_is_one_line_naming_it(
    start_simulator: Callable[..., Any], tmp_path: Path, variables: dict[str, str], needle: str
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    run = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "Shared", "--quiet",
        env=cli_env(tmp_path, **variables),
    )  # fmt: skip
    assert_one_line_exit_2(run, needle, "write it like http://proxy.example.com:3128")
    assert "S3CRET" not in run.stderr
    assert requests_to(sim, START_JOBS) == 0


@pytest.mark.parametrize(
    ("journal", "needle"),
    [
        ("{tmp}", "journal {tmp} is a directory; give the path of a new file"),
        ("/dev/full", "journal /dev/full exists and is not a regular file"),
        ("{tmp}/old.sqlite", "journal {tmp}/old.sqlite already exists; resume it with "
         "--resume {tmp}/old.sqlite, or choose another path with --journal"),
    ],
    ids=["directory", "device", "existing"],
)  # fmt: skip
async def test_a_journal_path_taken_by_something_else_says_what_it_is(
    start_simulator: Callable[..., Any], tmp_path: Path, journal: str, needle: str
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    (tmp_path / "old.sqlite").write_bytes(b"")
    run = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "Shared", "--quiet",
        "--journal", journal.replace("{tmp}", str(tmp_path)),
        env=cli_env(tmp_path),
    )  # fmt: skip
    assert_one_line_exit_2(run, needle.replace("{tmp}", str(tmp_path)))
    # Refused before any network call (no name lookup, no token, no References).
    assert sim.simulator.stats()["requests"] == {}


async def test_an_organization_without_its_tenant_is_one_line_naming_the_url(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim: SimulatorHandle = await start_simulator(time_scale=20.0)
    url = f"{sim.root_url}/{sim.organization}"  # the tenant left out
    run = await run_cli(
        "dispatch", "--url", url, "--process", "Echo", "--folder", "Shared", "--quiet",
        env=cli_env(tmp_path),
    )  # fmt: skip
    assert_one_line_exit_2(
        run,
        f"error: no Orchestrator API at {url} (GET odata/Folders answered 404)",
        "cloud URLs are https://cloud.uipath.com/{org}/{tenant}/orchestrator_",
    )
    assert requests_to(sim, START_JOBS) == 0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
async def test_results_that_cannot_be_written_say_where_they_are_kept(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    # /dev/full opens but refuses every write: an OSError traceback after the jobs ran.
    sim: SimulatorHandle = await start_simulator(time_scale=100.0)
    journal = tmp_path / "batch.sqlite"
    run = await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "Shared", "--count", "2",
        "--quiet", "--journal", str(journal), "-o", "/dev/full",
        env=cli_env(tmp_path),
    )  # fmt: skip
    assert_one_line_exit_2(
        run,
        "error: results could not be written to /dev/full (No space left on device); the "
        f"journal holds them: async-orch jobs --journal {journal} -o FILE",
    )
    again = await run_cli("jobs", "--journal", str(journal), env=cli_env(tmp_path))
    assert again.returncode == 0 and len(again.rows()) == 2  # the advice works


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
async def test_a_load_test_report_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    run = await run_cli(
        "loadtest", "--simulator", "--process", "Echo", "--folder", "Shared", "--quiet",
        "--load-profile", "constant:1:2", "--time-scale", "100",
        "--report", "/dev/full", "--json", str(tmp_path / "r.json"),
        env=cli_env(tmp_path),
    )  # fmt: skip
    assert_one_line_exit_2(
        run, "error: the load test ran, but its report could not be written to /dev/full"
    )
    assert (tmp_path / "r.json").exists()  # the other file still written
