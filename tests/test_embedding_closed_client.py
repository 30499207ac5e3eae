"""Embedded in a service: a client used outside its ``async with`` block, or whose
injected aiohttp session the service closed, raises ``ClientClosedError`` naming
``OrchestratorClient`` and how to open it, never an aiohttp or internal error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import aiohttp
import anyio
import pytest
from test_dispatcher_support import START_JOBS, fast_poll, fast_settings, requests_to, scenario

from async_orch import (
    ClientClosedError,
    Hooks,
    JobHandle,
    JobRequest,
    OrchestratorClient,
    OrchestratorError,
    Outcome,
)
from async_orch._transport import Transport
from async_orch.simulator import SimulatorHandle

REQUESTS = [JobRequest(process="Echo", folder="HR", inputs={"n": 1})]
HOW_TO_OPEN = "async with OrchestratorClient(settings) as orch:"


async def every_call_is_refused(orch: OrchestratorClient, *, session_closed: bool) -> None:
    handle = JobHandle(
        job_id=1, job_key=None, folder_id=1, folder_key=None, folder_path="HR", reference=None
    )
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: orch.run_jobs(REQUESTS),
        lambda: orch.start_jobs(REQUESTS),
        lambda: orch.wait_jobs([handle]),
        lambda: orch.api.list_folders(refresh=True),
        lambda: orch.api.get_job(1, 42),
    ]
    for call in calls:
        with pytest.raises(ClientClosedError) as caught:
            await call()
        assert isinstance(caught.value, OrchestratorError)
        assert caught.value.session_closed is session_closed
        assert "OrchestratorClient" in str(caught.value)
        assert HOW_TO_OPEN in str(caught.value)
    with pytest.raises(ClientClosedError):
        async with aclosing(orch.iter_jobs(REQUESTS)) as results:
            async for _ in results:
                pass


async def started_simulator(start_simulator: Callable[..., Any]) -> SimulatorHandle:
    sim: SimulatorHandle = await start_simulator(scenario(), time_scale=200.0)
    return sim


async def test_a_client_used_before_or_after_async_with_says_how_to_open_it(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await started_simulator(start_simulator)
    orch = OrchestratorClient(fast_settings(sim), poll=fast_poll())
    await every_call_is_refused(orch, session_closed=False)
    async with orch:
        results = await orch.run_jobs(REQUESTS)
    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL]
    await every_call_is_refused(orch, session_closed=False)
    assert requests_to(sim, START_JOBS) == 1  # only the call made inside the block


async def test_a_closed_injected_session_is_client_closed_error_not_aiohttps(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await started_simulator(start_simulator)
    session = aiohttp.ClientSession()
    async with OrchestratorClient(fast_settings(sim), session=session, poll=fast_poll()) as orch:
        results = await orch.run_jobs(REQUESTS)
        assert [r.outcome for r in results] == [Outcome.SUCCESSFUL]
        await session.close()
        await every_call_is_refused(orch, session_closed=True)
        with pytest.raises(ClientClosedError, match=r"OrchestratorClient\(session=\.\.\.\)"):
            await orch.run_jobs(REQUESTS)
    assert requests_to(sim, START_JOBS) == 1


async def test_a_session_closed_while_a_request_waits_to_retry_is_client_closed_error(
    start_simulator: Callable[..., Any],
) -> None:
    # The check before sending cannot see this: the session is closed during the
    # wait before a retry, so aiohttp's own "Session is closed" must be mapped.
    sim = await started_simulator(start_simulator)
    async with aiohttp.ClientSession() as session:

        async def close_instead_of_waiting(delay: float) -> None:
            await session.close()

        transport = Transport(fast_settings(sim), session=session, sleep=close_instead_of_waiting)
        await transport.request("GET", "odata/Folders")  # the token is fetched here
        sim.simulator.set_faults({"server_error_rate": 1.0, "server_error_statuses": [503]})
        with pytest.raises(ClientClosedError) as caught:
            await transport.request("GET", "odata/Folders")
    assert caught.value.session_closed
    assert isinstance(caught.value.__cause__, RuntimeError)  # aiohttp's, chained
    assert transport.stats.count("odata/Folders", 503) == 1


async def close_mid_batch(
    orch: OrchestratorClient, close: Callable[[], Awaitable[object]], left: list[Any]
) -> ClientClosedError:
    """Run three Slow jobs; once all started, ``close``; the error the batch raised."""
    slow = [JobRequest(process="Slow", folder="HR", inputs={"n": n}) for n in range(3)]
    started = anyio.Event()

    def on_started(index: int, handle: JobHandle) -> None:
        if index == len(slow) - 1:
            started.set()

    async def close_when_started() -> None:
        await started.wait()
        await close()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(close_when_started)
            with pytest.raises(ClientClosedError) as caught:
                await orch.run_jobs(
                    slow, hooks=Hooks(on_started=on_started, on_abandoned=left.append)
                )
    return caught.value


async def test_closing_the_session_mid_batch_ends_the_batch_with_client_closed_error(
    start_simulator: Callable[..., Any],
) -> None:
    # Not polled on until a timeout: the error comes out at once.
    sim = await start_simulator(scenario(), time_scale=50.0)
    left: list[Any] = []
    session = aiohttp.ClientSession()
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll(), session=session) as orch:
        await close_mid_batch(orch, session.close, left)
    assert len(left) == 1 and len(left[0].left_running) == 3  # reported, not forgotten


async def test_a_client_closed_under_a_running_batch_says_so(
    start_simulator: Callable[..., Any],
) -> None:
    """The call was made inside the block: the error must not say it was not."""
    sim = await start_simulator(scenario(), time_scale=50.0)
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        error = await close_mid_batch(orch, orch.aclose, [])
    assert "or it was closed while the call was still running" in str(error)
