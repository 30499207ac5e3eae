"""Errors no job can survive come out of the batch call, typed, before any result
(issue 15 point 1); per-job failures stay in the results. Real sockets, simulator."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from async_orch import (
    AuthenticationError,
    ClientCredentials,
    ConfigurationError,
    JobRequest,
    OrchestratorClient,
    Outcome,
    PermissionDeniedError,
    ProcessNotFoundError,
    RetryPolicy,
    Settings,
    Started,
    TransportError,
)
from async_orch.simulator import SimulatorHandle

REQUESTS = [JobRequest(process="Echo", folder=f) for f in ("Shared", "Finance", "HR")] * 2


def _settings(sim: SimulatorHandle, **changes: Any) -> Settings:
    url = changes.pop("url", sim.url)
    credentials = ClientCredentials(
        client_id=sim.client_id,
        client_secret=changes.pop("secret", sim.client_secret),
        **changes,
    )
    return Settings(
        url=url,
        credentials=credentials,
        retry=RetryPolicy(attempts=2, wait_initial=0.01, wait_jitter=0.0),
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it now: connections are refused


def _unknown_tenant(sim: SimulatorHandle) -> str:
    return f"{sim.root_url}/{sim.organization}/NoSuchTenant/orchestrator_"


CASES: dict[str, tuple[Callable[[SimulatorHandle], Settings], type[Exception], str]] = {
    "wrong-secret": (
        lambda sim: _settings(sim, secret="not-the-secret"),
        AuthenticationError,
        "Unknown client_id or wrong client_secret",
    ),
    "unreachable": (
        lambda sim: _settings(sim, url=f"http://127.0.0.1:{_closed_port()}/org/t/orchestrator_"),
        TransportError,
        "cannot connect",
    ),
    "unknown-tenant": (
        lambda sim: _settings(sim, url=_unknown_tenant(sim)),
        AuthenticationError,
        "Check the Orchestrator URL",
    ),
    # An organization without its tenant reads as an on-premises virtual directory,
    # where every API call is a 404: it was every job not_started with the raw 404.
    "no-api-here": (
        lambda sim: _settings(sim, url=f"{sim.root_url}/{sim.organization}"),
        ConfigurationError,
        r"no Orchestrator API at http://127\.0\.0\.1:\d+/demo \(GET odata/Folders answered "
        r"404\): check the URL .*cloud URLs are https://cloud\.uipath\.com/\{org\}/\{tenant\}",
    ),
    "missing-scope": (
        lambda sim: _settings(sim, scopes="OR.Folders.Read"),
        PermissionDeniedError,
        "none of the scopes this endpoint requires",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_run_jobs_raises_what_no_job_can_survive(
    fast_simulator: SimulatorHandle, case: str
) -> None:
    make, error, text = CASES[case]
    async with OrchestratorClient(make(fast_simulator)) as orch:
        with pytest.raises(error, match=text):
            await orch.run_jobs(REQUESTS)
    assert fast_simulator.simulator.stats()["jobs"]["created"] == 0


async def test_stream_jobs_raises_on_entering_the_block(fast_simulator: SimulatorHandle) -> None:
    got: list[object] = []
    async with OrchestratorClient(_settings(fast_simulator, secret="not-the-secret")) as orch:
        with pytest.raises(AuthenticationError):
            async with orch.stream_jobs(REQUESTS) as results:
                got.extend([result async for result in results])
    assert got == []


async def test_wait_jobs_raises_what_no_job_can_survive(fast_simulator: SimulatorHandle) -> None:
    async with OrchestratorClient(_settings(fast_simulator)) as orch:
        started = await orch.start_jobs(REQUESTS[:1])
    assert isinstance(started[0], Started)
    async with OrchestratorClient(_settings(fast_simulator, secret="not-the-secret")) as orch:
        with pytest.raises(AuthenticationError):
            await orch.wait_jobs(started[0].handles)


async def test_a_failure_of_some_requests_stays_in_their_results(
    fast_simulator: SimulatorHandle,
) -> None:
    requests = [*REQUESTS[:2], JobRequest(process="Ecko", folder="Shared")]
    async with OrchestratorClient(_settings(fast_simulator)) as orch:
        results = await orch.run_jobs(requests)
    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL] * 2 + [Outcome.NOT_STARTED]
    assert isinstance(results[2].error, ProcessNotFoundError)


async def test_a_name_typo_in_every_request_is_still_a_result(
    fast_simulator: SimulatorHandle,
) -> None:
    async with OrchestratorClient(_settings(fast_simulator)) as orch:
        results = await orch.run_jobs([JobRequest(process="Ecko", folder="Shared")])
    assert results[0].outcome is Outcome.NOT_STARTED
    assert isinstance(results[0].error, ProcessNotFoundError)


async def test_a_short_wrong_secret_leaves_the_server_message_whole(
    fast_simulator: SimulatorHandle,
) -> None:
    """The simulator's 'wrong client_secret' is its own word, not an echo of the secret
    "wrong": nothing is redacted, and so nothing marks the secret either."""
    async with OrchestratorClient(_settings(fast_simulator, secret="wrong")) as orch:
        with pytest.raises(AuthenticationError) as refused:
            await orch.run_jobs(REQUESTS)
    text = str(refused.value)
    assert "Unknown client_id or wrong client_secret" in text
    assert "[redacted]" not in text
