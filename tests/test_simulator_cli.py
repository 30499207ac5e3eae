"""`async-orch simulator` as a user runs it: a subprocess, stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from async_orch._cli import build_parser

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0  # a cold interpreter on a busy machine


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "async_orch",
        "simulator",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _read_banner(stream: asyncio.StreamReader) -> tuple[str, str]:
    """The banner up to its "  TOKEN=" line, and that line. Fails on EOF (the
    simulator ended) and after STARTUP_TIMEOUT, rather than waiting for ever."""

    async def read() -> tuple[str, str]:
        banner: list[str] = []
        while raw := await stream.readline():
            line = raw.decode()
            if line.startswith("  TOKEN="):
                return "".join(banner), line
            banner.append(line)
        raise AssertionError("output ended before the TOKEN= line:\n" + "".join(banner))

    return await asyncio.wait_for(read(), STARTUP_TIMEOUT)


async def _demo_token(http: aiohttp.ClientSession, root: str) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
    }
    async with http.post(root + "/identity_/connect/token", data=form) as response:
        return str((await response.json())["access_token"])


async def test_the_banner_reader_fails_at_end_of_output_instead_of_spinning() -> None:
    stream = asyncio.StreamReader()
    stream.feed_data(b"Orchestrator simulator: ...\n  Try:\n")
    stream.feed_eof()
    with pytest.raises(AssertionError, match="output ended before the TOKEN= line"):
        await _read_banner(stream)


@pytest.mark.slow
async def test_runs_prints_the_url_first_serves_and_stops_cleanly_on_sigint(
    http: aiohttp.ClientSession,
) -> None:
    process = await _spawn("--port", "0", "--time-scale", "60", "--seed", "5")
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)).decode()
        url = first.strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith(
            "/demo/DefaultTenant/orchestrator_"
        )
        root = url.removesuffix("/demo/DefaultTenant/orchestrator_")
        text, line = await _read_banner(process.stdout)
        assert f"Token URL          {root}/identity_/connect/token" in text
        assert "demo-client" in text and "demo-secret" in text and "time scale 60x, seed 5" in text
        assert "Finance/Comptabilité" in text
        assert line.strip().endswith("/odata/Folders") and "curl -s" in line

        token = await _demo_token(http, root)
        async with http.get(
            url + "/odata/Folders", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert response.status == 200
            assert len((await response.json())["value"]) == 4
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT)
    assert process.returncode == 0, stderr.decode()
    assert "simulator stopped" in stderr.decode()
    assert "Traceback" not in stderr.decode()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "/nonexistent/s.toml"], "cannot read scenario file"),
        (["--fault", "drop=1"], "--fault: unknown key(s) drop"),
        (["--fault", "drop_rate"], "--fault expects key=value"),
        (["--time-scale", "0"], "argument --time-scale: '0' is not a finite number more than 0"),
        (["--port", "99999"], "argument --port: '99999' is not a port; give a number from 0"),
        (["--port", "-1"], "argument --port: '-1' is not a port"),
        (["--state", "/nonexistent/s.sqlite"], "cannot use /nonexistent/s.sqlite as a simulator"),
        (["--state", str(REPO / "README.md")], "README.md as a simulator state file"),
    ],
)
async def test_configuration_errors_exit_2_with_one_clear_line(
    args: list[str], message: str
) -> None:
    process = await _spawn("--port", "0", *args)
    stdout, stderr = await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT)
    assert process.returncode == 2
    assert stdout == b""
    assert message in stderr.decode() and "Traceback" not in stderr.decode()


def test_parser_defaults() -> None:
    args = build_parser().parse_args(["simulator"])
    assert (args.host, args.port, args.scenario, args.time_scale, args.seed, args.fault) == (
        "127.0.0.1",
        8765,
        None,
        None,
        None,
        [],
    )
    args = build_parser().parse_args(
        ["simulator", "--fault", "drop_rate=0.1", "--fault", "slow_rate=1"]
    )
    assert args.fault == ["drop_rate=0.1", "slow_rate=1"]


async def _banner_and_stop(*args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Start the simulator, read its banner, stop it; return (stdout so far, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "async_orch", "simulator", "--port", "0", *args,
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        text, line = await _read_banner(process.stdout)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT)
    assert process.returncode == 0, stderr.decode()
    return text + line, stderr.decode()


@pytest.mark.slow
async def test_admin_token_is_printed_or_chosen_and_loopback_gives_no_warning() -> None:
    text, stderr = await _banner_and_stop()
    token = text.split("Admin token", 1)[1].split()[0]
    assert len(token) >= 32 and f"Bearer {token}" in text
    assert "warning" not in stderr
    text, _ = await _banner_and_stop(env={"ASYNC_ORCH_SIMULATOR_ADMIN_TOKEN": "chosen"})
    assert "Admin token        chosen " in text


@pytest.mark.slow
async def test_binding_every_address_prints_a_warning() -> None:
    _, stderr = await _banner_and_stop("--host", "0.0.0.0")
    assert "warning: listening on 0.0.0.0, reachable from other machines" in stderr
    assert stderr.count("0.0.0.0") == 1, stderr  # once: not also as a log line


@pytest.mark.slow
async def test_state_file_keeps_jobs_across_a_restart_of_the_command(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Start a job, stop the simulator, start it again on the same file: the job is
    there with its Key and Reference, and the next job gets the next id."""
    state = tmp_path / "sim.sqlite"
    jobs: list[dict[str, Any]] = []
    for reference in ("before", "after"):
        process = await _spawn("--port", "0", "--state", str(state), "--time-scale", "60")
        try:
            assert process.stdout is not None
            url = (await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)).decode()
            url = url.strip()
            text, _ = await _read_banner(process.stdout)
            assert f"State file         {state}" in text
            root = url.removesuffix("/demo/DefaultTenant/orchestrator_")
            token = await _demo_token(http, root)
            headers = {"Authorization": f"Bearer {token}", "X-UIPATH-FolderPath": "Shared"}
            async with http.get(url + "/odata/Jobs", headers=headers) as response:
                listed = (await response.json())["value"]
            assert [(j["Id"], j["Key"], j["Reference"]) for j in listed] == [
                (j["Id"], j["Key"], j["Reference"]) for j in jobs
            ]
            start = {"startInfo": {"ReleaseName": "Echo", "Reference": reference}}
            async with http.post(
                url + "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs",
                json=start,
                headers=headers,
            ) as response:
                assert response.status == 201
                jobs += (await response.json())["value"]
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT)
    assert jobs[1]["Id"] == jobs[0]["Id"] + 1
    assert state.stat().st_mode & 0o777 == 0o600
