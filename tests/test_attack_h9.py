"""Attack h9: fatal refusals met mid-run, and a cancellation while a job's outputs
are read. Simulator over real sockets, faults put in front of it by a middleware."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import pytest
from conftest import add_simulator_middleware
from simulator_process import attachments_scenario
from test_dispatcher_support import fast_poll, fast_settings

from async_orch import (
    Abandoned,
    Hooks,
    JobRequest,
    NotFoundError,
    OrchestratorClient,
    PermissionDeniedError,
    StopPolicy,
)
from async_orch._config import DEFAULT_SCOPES, ClientCredentials
from async_orch.simulator import SimulatorHandle, parse_scenario

_Handler = Callable[[aiohttp.web.Request], Awaitable[aiohttp.web.StreamResponse]]

# The simulator's own scope refusal (orchestrator.py): a token without the scope.
_SCOPE_REFUSAL = {
    "message": "You are not authorized! The access token has none of the scopes this "
    "endpoint requires (OR.Jobs or OR.Jobs.Read).",
    "errorCode": 0,
}


def _refuse_after_starts(route: Callable[[aiohttp.web.Request], bool], status: int = 403) -> Any:
    """A middleware answering ``status`` to the requests ``route`` picks once armed."""
    armed = {"on": False}
    body = _SCOPE_REFUSAL if status == 403 else {"message": "Not Found", "errorCode": 0}

    @aiohttp.web.middleware
    async def refuse(request: aiohttp.web.Request, handler: _Handler) -> aiohttp.web.StreamResponse:
        if armed["on"] and request.method == "GET" and route(request):
            return aiohttp.web.json_response(body, status=status)
        return await handler(request)

    return refuse, armed


def _jobs_list(request: aiohttp.web.Request) -> bool:
    return request.path.endswith("/odata/Jobs")


def _job_read(request: aiohttp.web.Request) -> bool:
    return "/odata/Jobs(" in request.path


def _jobs_list_or_read(request: aiohttp.web.Request) -> bool:
    return _jobs_list(request) or _job_read(request)


REFUSALS: dict[str, tuple[Callable[[aiohttp.web.Request], bool], int, type[Exception], str]] = {
    # The scope taken from the credentials: lists and reads alike (OR.Jobs.Read).
    "scope-403": (_jobs_list_or_read, 403, PermissionDeniedError, "none of the scopes"),
    "read-403": (_job_read, 403, PermissionDeniedError, "none of the scopes"),
    "list-404": (_jobs_list, 404, NotFoundError, "HTTP 404"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_refusal_met_mid_run_raises_promptly(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Finding 1: a 403 on every Jobs list and read by id after the starts (or on
    every read by id), or a 404
    on every Jobs list (the tenant deleted, a proxy's route changed), was retried as
    a passing failure until the batch timeout: 60 jobs timed_out, no error, no
    warning (and without a timeout the batch would wait for ever)."""
    route, status, error, text = REFUSALS[case]
    middleware, armed = _refuse_after_starts(route, status)
    add_simulator_middleware(monkeypatch, middleware)
    sim: SimulatorHandle = await start_simulator(time_scale=60.0)
    requests = [JobRequest(process="Echo", folder=f) for f in ("Shared", "Finance", "HR")] * 20
    began = time.monotonic()
    async with OrchestratorClient(fast_settings(sim, attempts=2), poll=fast_poll()) as orch:
        with pytest.raises(error, match=text):
            await orch.run_jobs(
                requests, timeout=20, hooks=Hooks(on_started=lambda i, h: armed.update(on=True))
            )
    assert time.monotonic() - began < 10  # not the 20 s batch timeout
    stats = sim.simulator.stats()
    assert stats["jobs"]["created"] == 60 and stats["jobs"]["duplicate_references"] == {}


def _hang_downloads() -> Any:
    entered, released = asyncio.Event(), asyncio.Event()

    @aiohttp.web.middleware
    async def hang(request: aiohttp.web.Request, handler: _Handler) -> aiohttp.web.StreamResponse:
        if request.method == "GET" and "Attachments(" in request.path:
            entered.set()
            await released.wait()  # the OutputFile comes only once the test is over
        return await handler(request)

    return hang, entered, released


@pytest.mark.parametrize("on_cancel", [False, True], ids=["report", "stop"])
async def test_a_cancel_while_outputs_are_read_ends_at_once_and_reports_the_truth(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, on_cancel: bool
) -> None:
    """Finding 2: cancelled while the poller downloads a Successful job's
    OutputFile, the batch reported that job ``left_running`` (it was seen ended:
    on_state said Successful); with ``on_cancel=True`` it sent it a SoftStop and
    the cancellation waited for the download again (70 s with the default grace)."""
    hang, entered, released = _hang_downloads()
    add_simulator_middleware(monkeypatch, hang)
    sim: SimulatorHandle = await start_simulator(
        parse_scenario(attachments_scenario(), name="big"), time_scale=100.0
    )
    settings = fast_settings(sim)
    assert isinstance(settings.credentials, ClientCredentials)
    credentials = dataclasses.replace(
        settings.credentials, scopes=f"{DEFAULT_SCOPES} OR.Folders.Write"
    )
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"Text": "x" * 12_000})]
    abandoned: list[Abandoned] = []
    seen: dict[int, str] = {}
    hooks = Hooks(
        on_abandoned=abandoned.append,
        on_state=lambda handle, old, new: seen.__setitem__(handle.job_id, new.value),
    )
    stop = StopPolicy(on_cancel=on_cancel, grace=5)
    async with OrchestratorClient(
        dataclasses.replace(settings, credentials=credentials), poll=fast_poll()
    ) as orch:
        batch = asyncio.create_task(orch.run_jobs(requests, stop=stop, hooks=hooks))
        await asyncio.wait_for(entered.wait(), 20)
        began = time.monotonic()
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        ended = time.monotonic() - began
        released.set()  # else the simulator's shutdown waits for the hanging answer
    assert ended < 2
    [job_id] = seen
    assert seen[job_id] == "Successful"
    [report] = abandoned
    assert report.left_running == () and report.stop_sent == {}
    assert [h.job_id for h in report.ended] == [job_id]  # seen ended, no result: named
    stops = "POST /odata/Jobs/UiPath.Server.Configuration.OData.StopJobs"
    assert stops not in sim.simulator.stats()["requests"]


async def test_a_403_in_one_folder_ends_its_jobs_and_the_others_go_on(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A permission taken away in one folder only (its calls answered 403) ends that
    folder's jobs with the PermissionDeniedError, each in its result; the other
    folder's jobs end as they do and the batch returns (review of attack h9: counted
    as a token refusal, it ended the whole batch once the other folder was done, and
    run_jobs lost the results it had)."""
    refused: set[str] = set()

    @aiohttp.web.middleware
    async def refuse(request: aiohttp.web.Request, handler: _Handler) -> aiohttp.web.StreamResponse:
        folder = request.headers.get("X-UIPATH-FolderKey", "")
        if request.method == "GET" and _jobs_list_or_read(request) and folder in refused:
            return aiohttp.web.json_response(_SCOPE_REFUSAL, status=403)
        return await handler(request)

    def on_started(index: int, handle: Any) -> None:
        if handle.folder_path == "HR":
            refused.add(handle.folder_key)

    add_simulator_middleware(monkeypatch, refuse)
    sim: SimulatorHandle = await start_simulator(time_scale=60.0)
    requests = [JobRequest(process="Echo", folder=f, inputs={"n": n}) for n, f in
                enumerate(["HR", "Shared"] * 10)]  # fmt: skip
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        results = await orch.run_jobs(requests, timeout=20, hooks=Hooks(on_started=on_started))
    assert refused  # the HR jobs were started before their folder was refused
    for result in results:
        if result.request is not None and result.request.folder == "HR":
            assert isinstance(result.error, PermissionDeniedError), result
            assert result.job_id is not None  # started: its id is in the result
        else:
            assert result.outcome.value == "successful" and result.outputs == {"n": result.index}
