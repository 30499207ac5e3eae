"""Review of attack h9b: refusals of calls in flight together (token), the results a
batch ended by a refusal had given, and a journal's jobs ended by a refusal.
Simulator over real sockets, faults put in front of it by a middleware."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import pytest
from conftest import add_simulator_middleware
from test_attack_h9 import _jobs_list_or_read, _refuse_after_starts
from test_dispatcher_support import fast_poll, fast_settings

from async_orch import (
    Abandoned,
    Hooks,
    JobRequest,
    OrchestratorClient,
    PermissionDeniedError,
    Progress,
)
from async_orch.simulator import SimulatorHandle, parse_scenario

_Handler = Callable[[aiohttp.web.Request], Awaitable[aiohttp.web.StreamResponse]]

_TOKEN_REFUSAL = {"message": "You are not authenticated!", "errorCode": 0}


async def test_three_reads_refused_for_the_token_at_one_instant_do_not_end_the_batch(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token outage that comes and goes: the first reads by id of three jobs are
    held until all three are in flight, then each is answered 401, and so is its
    try after the transport's own token renewal; every later call is answered.
    The three refusals of one instant counted as three in a row, so the batch
    raised the AuthenticationError (and run_jobs lost its results) though all
    three jobs ended Successful. Now a token refusal counts only for a call sent
    after the last one counted arrived, as a folder's does."""
    refused: Counter[str] = Counter()  # 401s per read's path (one job each)
    all_in = asyncio.Event()

    @aiohttp.web.middleware
    async def refuse(request: aiohttp.web.Request, handler: _Handler) -> aiohttp.web.StreamResponse:
        read = request.method == "GET" and "/odata/Jobs(" in request.path
        first_three = request.path in refused or len(refused) < 3
        if read and first_three and refused[request.path] < 2:  # the read, then its retry
            refused[request.path] += 1
            if len(refused) == 3:
                all_in.set()
            with contextlib.suppress(TimeoutError):  # a bound, should the test fail
                await asyncio.wait_for(all_in.wait(), 5)
            return aiohttp.web.json_response(_TOKEN_REFUSAL, status=401)
        return await handler(request)

    add_simulator_middleware(monkeypatch, refuse)
    sim: SimulatorHandle = await start_simulator(time_scale=60.0)
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"n": n}) for n in range(3)]
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        results = await orch.run_jobs(requests, timeout=30)
    assert all_in.is_set()  # three reads were in flight together, all refused
    assert sorted(refused.values()) == [2, 2, 2]  # each read and its retry after renewal
    assert [r.outcome.value for r in results] == ["successful"] * 3
    assert [r.outputs for r in results] == [{"n": n} for n in range(3)]


# Shared's Echo jobs end at once; its Slow ones run for days of simulated time.
_ECHO_AND_SLOW = """
[[tenants]]
organization = "acme"
name = "Prod"

[[tenants.credentials]]
client_id = "app"
client_secret = "app-secret"
scopes = ["OR.Folders.Read", "OR.Execution.Read", "OR.Jobs"]

[[tenants.processes]]
name = "Echo"
duration = 1
outputs = "echo"

[[tenants.processes]]
name = "Slow"
duration = 1000000
outputs = "echo"

[[tenants.folders]]
path = "Shared"
robots = 5
"""


async def test_a_batch_ended_by_a_refusal_hands_over_its_results_and_every_started_job(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every folder refused mid-run (403 on its Jobs lists and reads, once 3 of its 5
    jobs had ended): run_jobs raises the PermissionDeniedError, and the results of
    the 3 jobs that had ended were lost with the list it did not return (the
    report of what was left named the 2 running jobs only). Now the report carries
    the results the batch had: every started job is in one or the other."""
    middleware, armed = _refuse_after_starts(_jobs_list_or_read)
    add_simulator_middleware(monkeypatch, middleware)
    sim: SimulatorHandle = await start_simulator(
        parse_scenario(_ECHO_AND_SLOW, name="slow"), time_scale=60.0
    )
    requests = [
        JobRequest(process=p, folder="Shared", inputs={"n": n})
        for n, p in enumerate(["Echo", "Slow", "Echo", "Slow", "Echo"])
    ]
    started: set[int] = set()
    abandoned: list[Abandoned] = []

    def on_progress(progress: Progress) -> None:
        if progress.by_state.get("successful") == 3:
            armed["on"] = True  # every Echo ended: now the folder is refused

    hooks = Hooks(
        on_started=lambda index, handle: started.add(handle.job_id),
        on_progress=on_progress,
        on_abandoned=abandoned.append,
    )
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with pytest.raises(PermissionDeniedError):
            await orch.run_jobs(requests, timeout=30, hooks=hooks)
    [report] = abandoned
    assert [(r.index, r.outcome.value, r.outputs) for r in report.results] == [
        (n, "successful", {"n": n}) for n in (0, 2, 4)
    ]
    left = {h.job_id for h in (*report.left_running, *report.stopped, *report.ended)}
    assert len(started) == 5 and len(left) == 2  # the Slow jobs, refused while running
    assert started == {r.job_id for r in report.results} | left
