"""Attack h9b: per-folder refusals mid-run (poller) and never-listed jobs riding
along in id-list calls (planner). Simulator over real sockets, faults put in front
of it by a middleware."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import pytest
from conftest import add_simulator_middleware
from test_attack_h9 import _SCOPE_REFUSAL, _jobs_list_or_read
from test_dispatcher_support import fast_poll, fast_settings

from async_orch import (
    Hooks,
    JobRequest,
    OrchestratorClient,
    Outcome,
    PermissionDeniedError,
    PollPolicy,
)
from async_orch.simulator import SimulatorHandle

_Handler = Callable[[aiohttp.web.Request], Awaitable[aiohttp.web.StreamResponse]]


async def test_a_job_started_in_a_folder_after_it_was_refused_is_ended_too(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HR's calls are answered 403 once its first job started; its second job's
    StartJobs is held until HR was refused (3 in a row) and its first job ended
    with the error. The second job, watched after, was refused as well, yet
    _count_folder_refusal ignored refusals of a folder already refused: it was
    polled (refused) until the batch timeout, 15 s, and reported timed_out with
    no error (with no timeout, for ever). Now it ends with the 403 at once."""
    hr: dict[str, Any] = {"keys": set(), "refused": 0, "starts": 0, "started": set()}
    released = asyncio.Event()

    @aiohttp.web.middleware
    async def refuse(request: aiohttp.web.Request, handler: _Handler) -> aiohttp.web.StreamResponse:
        folder = request.headers.get("X-UIPATH-FolderKey") or request.headers.get(
            "X-UIPATH-FolderPath", ""
        )
        if request.method == "POST" and "StartJobs" in request.path:
            if folder in hr["started"]:  # HR's second start, the only folder with two
                hr["starts"] += 1
                await released.wait()
            hr["started"].add(folder)
        if request.method == "GET" and _jobs_list_or_read(request) and folder in hr["keys"]:
            hr["refused"] += 1
            return aiohttp.web.json_response(_SCOPE_REFUSAL, status=403)
        return await handler(request)

    def on_started(index: int, handle: Any) -> None:
        if handle.folder_path == "HR":
            hr["keys"].add(handle.folder_key)

    ended = {o.value for o in Outcome}

    def on_progress(progress: Any) -> None:
        if set(progress.by_folder.get("HR", {})) & ended:  # HR's first job ended refused
            released.set()

    add_simulator_middleware(monkeypatch, refuse)
    sim: SimulatorHandle = await start_simulator(time_scale=60.0)
    requests = [
        JobRequest(process="Echo", folder="HR", inputs={"n": 0}),
        JobRequest(process="Echo", folder="HR", inputs={"n": 1}),
        JobRequest(process="Echo", folder="Shared", inputs={"n": 2}),
    ]
    began = time.monotonic()
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        hooks = Hooks(on_started=on_started, on_progress=on_progress)
        results = await orch.run_jobs(requests, timeout=15, hooks=hooks)
    took = time.monotonic() - began
    assert hr["starts"] == 1 and released.is_set()
    assert results[2].outcome.value == "successful"
    assert isinstance(results[0].error, PermissionDeniedError)
    assert isinstance(results[1].error, PermissionDeniedError), results[1]
    assert took < 8


async def test_three_reads_refused_at_one_instant_do_not_end_a_folder(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 403 that comes and goes: HR's first three reads by id are held until all
    three are in flight, answered 403 together, and every later call is answered.
    The three answers of one instant counted as three refusals in a row, so HR's
    50 jobs ended with the PermissionDeniedError (outcome unknown) though every one
    of them ended Successful on the server. Measured with the default PollPolicy: a
    403 lasting 0.1 s from HR's first read by id (16 calls refused, 8 readers in
    flight) ended all of HR's 100 jobs of 200; by list calls alone it takes about
    5 s of 403s, unchanged. Now a refusal counts only for a call sent after the
    last one counted arrived."""
    keys: set[str] = set()
    held = {"reads": 0}
    all_in = asyncio.Event()

    @aiohttp.web.middleware
    async def refuse(request: aiohttp.web.Request, handler: _Handler) -> aiohttp.web.StreamResponse:
        folder = request.headers.get("X-UIPATH-FolderKey", "")
        read = request.method == "GET" and "/odata/Jobs(" in request.path
        if read and folder in keys and held["reads"] < 3:
            held["reads"] += 1
            if held["reads"] == 3:
                all_in.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_in.wait(), 2)
            return aiohttp.web.json_response(_SCOPE_REFUSAL, status=403)
        return await handler(request)

    def on_started(index: int, handle: Any) -> None:
        if handle.folder_path == "HR":
            keys.add(handle.folder_key)

    add_simulator_middleware(monkeypatch, refuse)
    sim: SimulatorHandle = await start_simulator(time_scale=60.0)
    requests = [
        JobRequest(process="Echo", folder=f, inputs={"n": n})
        for n, f in enumerate(["HR", "Shared"] * 50)
    ]
    async with OrchestratorClient(fast_settings(sim), poll=PollPolicy()) as orch:
        results = await orch.run_jobs(requests, timeout=60, hooks=Hooks(on_started=on_started))
    assert all_in.is_set()  # three reads were in flight together, all refused
    assert [r.outcome.value for r in results] == ["successful"] * 100
