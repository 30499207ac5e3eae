"""A host that accepts connections and never answers, at the first token request:
the same fatal "host unreachable" as a refused port, after one request timeout,
not minutes of retries (issue 15). Later stalls, once a token was granted, are
retried as before. Real listening sockets; the CLI as a subprocess."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_harness import assert_one_line_exit_2, cli_env, run_cli
from fakes import FakeSender, reply

from async_orch import (
    ClientCredentials,
    JobHandle,
    JobRequest,
    OrchestratorClient,
    RequestTimeoutError,
    RequestTimeouts,
    RetryPolicy,
    Settings,
    TransportError,
)
from async_orch._transport import Transport


@dataclass
class SilentHost:
    """A listening socket whose every connection is accepted and never answered."""

    port: int
    connections: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/org/tenant/orchestrator_"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/org/identity_/connect/token"


@pytest.fixture
async def silent_host() -> AsyncIterator[SilentHost]:
    host = SilentHost(port=0)

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host.connections += 1
        await host.release.wait()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    host.port = server.sockets[0].getsockname()[1]
    async with server:
        yield host
        host.release.set()


def _settings(host: SilentHost) -> Settings:
    return Settings(
        url=host.url,
        credentials=ClientCredentials(client_id="app", client_secret="secret"),
        timeout=RequestTimeouts(total=0.3, connect=0.3),
        # Retries that the old code spent on the silent token endpoint, one timeout each.
        retry=RetryPolicy(attempts=3, wait_initial=0.01, wait_jitter=0.0),
    )


def _assert_unreachable(error: BaseException, host: SilentHost) -> None:
    text = str(error)
    assert "did not answer within 0.3 s (ASYNC_ORCH_TIMEOUT)" in text, text
    assert host.token_url in text, text
    assert "Check the URL" in text and "raise ASYNC_ORCH_TIMEOUT" in text, text
    assert host.connections == 1  # one request timeout, no retry


async def test_run_jobs_raises_transport_error_after_one_timeout(silent_host: SilentHost) -> None:
    async with OrchestratorClient(_settings(silent_host)) as orch:
        with pytest.raises(TransportError) as info:
            await orch.run_jobs([JobRequest(process="Echo", folder="Shared")])
    _assert_unreachable(info.value, silent_host)


async def test_wait_jobs_raises_transport_error_after_one_timeout(
    silent_host: SilentHost,
) -> None:
    handle = JobHandle(
        job_id=5, job_key=None, folder_id=1, folder_key=None, folder_path="Shared", reference=None
    )
    async with OrchestratorClient(_settings(silent_host)) as orch:
        with pytest.raises(TransportError) as info:
            await orch.wait_jobs([handle])
    _assert_unreachable(info.value, silent_host)


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ("dispatch", "--process", "Echo", "--folder", "Shared", "--count", "1"),
        ("jobs", "--folder", "Shared", "--id", "5"),
    ],
    ids=["dispatch", "jobs"],
)
async def test_cli_exits_2_with_one_line(
    silent_host: SilentHost, tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = cli_env(
        tmp_path,
        UIPATH_URL=silent_host.url,
        ASYNC_ORCH_TIMEOUT="0.3",
        ASYNC_ORCH_RETRY_ATTEMPTS="3",
    )
    run = await run_cli(*command, env=env)
    assert_one_line_exit_2(
        run,
        "cannot reach Orchestrator",
        "did not answer within 0.3 s (ASYNC_ORCH_TIMEOUT)",
        silent_host.token_url,
    )
    assert "retrying" not in run.stderr
    assert silent_host.connections == 1


@pytest.mark.slow
async def test_check_gives_up_after_the_configured_timeout(
    silent_host: SilentHost, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, UIPATH_URL=silent_host.url, ASYNC_ORCH_TIMEOUT="0.3")
    run = await run_cli("check", env=env)  # it waited its own 60 s before
    assert run.returncode == 2, run
    assert "FAIL  token" in run.stdout and "Traceback" not in run.stderr
    assert silent_host.connections == 1


async def test_a_stall_after_a_token_was_granted_is_retried() -> None:
    """Once the token endpoint answered, a renewal that times out is transient."""
    base = "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_"
    token_url = "https://cloud.uipath.com/acme/identity_/connect/token"
    granted = {"access_token": "t1", "expires_in": 3600}
    sender = FakeSender(
        reply(200, granted),  # the first token
        reply(401),  # the API refuses it: renew once
        RequestTimeoutError("no complete response in time", method="POST", url=token_url),
        reply(200, {**granted, "access_token": "t2"}),
        reply(200, {"value": []}),
    )
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    settings = Settings(
        url=base, credentials=ClientCredentials(client_id="app", client_secret="secret")
    )
    async with Transport(settings, sender=sender, sleep=sleep) as transport:
        response = await transport.request("GET", "odata/Jobs")
    assert response.status == 200
    assert len(sender.sent_to(token_url)) == 3 and len(waits) == 1
