"""Attack h10b: a batch ended by a hook raising as a job ends, token refusals of calls
made one after another, and journal resumes of jobs ended by a refusal. Simulator
over real sockets, faults put in front of it by a middleware."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp.web
import pytest
from cli_harness import cli_env, run_cli
from conftest import add_simulator_middleware
from test_attack_h9 import _SCOPE_REFUSAL
from test_attack_h10 import _ECHO_AND_SLOW, _key_of, _refuse_folder, _started_once
from test_dispatcher_support import fast_poll, fast_settings

from async_orch import (
    Abandoned,
    AuthenticationError,
    Hooks,
    JobRequest,
    OrchestratorClient,
    PermissionDeniedError,
    Progress,
    StopPolicy,
)
from async_orch._journal import Journal
from async_orch.simulator import SimulatorHandle, parse_scenario


class _Boom(Exception):
    pass


@pytest.mark.parametrize("api", ["run_jobs", "stream_jobs"])
async def test_on_progress_raising_as_a_job_ends_names_that_job(
    start_simulator: Callable[..., Any], api: str
) -> None:
    """on_progress raising when the first job ends (a display that broke): the job had
    left the batch's table, and its result was given nowhere: not in run_jobs's
    Abandoned.results, not yielded by stream_jobs, not in stopped, left_running or
    ended. Now its result is handed on whatever on_progress does; every started job
    is named once."""
    sim: SimulatorHandle = await start_simulator(
        parse_scenario(_ECHO_AND_SLOW, name="slow"), time_scale=60.0
    )
    requests = [JobRequest(process=p, folder="Shared", inputs={"n": n})
                for n, p in enumerate(["Echo", "Slow", "Slow"])]  # fmt: skip
    started: set[int] = set()
    abandoned: list[Abandoned] = []
    yielded: list[int | None] = []

    def on_progress(progress: Progress) -> None:
        if progress.by_state.get("successful"):
            raise _Boom("display broke")

    hooks = Hooks(
        on_started=lambda index, handle: started.add(handle.job_id),
        on_progress=on_progress,
        on_abandoned=abandoned.append,
    )
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with pytest.raises(_Boom):
            if api == "run_jobs":
                await orch.run_jobs(requests, timeout=30, hooks=hooks)
            else:
                async with orch.stream_jobs(requests, timeout=30, hooks=hooks) as results:
                    async for result in results:
                        yielded.append(result.job_id)
    [report] = abandoned
    assert len(started) == 3
    assert _named(report, yielded) == sorted(started), (report, yielded)


_Handler = Callable[[aiohttp.web.Request], Awaitable[aiohttp.web.StreamResponse]]
_TOKEN_REFUSAL = {"message": "You are not authenticated!", "errorCode": 0}
# 24 Echo jobs that run at once and end together: 3 waves of the watcher's 8 readers.
_MANY = _ECHO_AND_SLOW.replace("robots = 5", "robots = 30")


def _refuse_reads(limit: float, *, tries: float = 2, status: int = 401) -> tuple[Any, Counter[str]]:
    """A middleware answering ``status`` (401, or 403: a scope taken away) to the first
    ``limit`` jobs' reads by id, ``tries`` times each (2 for a 401: the read, and its
    try after the transport's token renewal)."""
    body = _TOKEN_REFUSAL if status == 401 else _SCOPE_REFUSAL
    refused: Counter[str] = Counter()

    @aiohttp.web.middleware
    async def refuse(request: aiohttp.web.Request, handler: _Handler) -> aiohttp.web.StreamResponse:
        read = request.method == "GET" and "/odata/Jobs(" in request.path
        ours = request.path in refused or len(refused) < limit
        if read and ours and refused[request.path] < tries:
            refused[request.path] += 1
            return aiohttp.web.json_response(body, status=status)
        return await handler(request)

    return refuse, refused


@pytest.mark.parametrize("status", [401, 403], ids=["token", "folder-scope"])
async def test_a_short_outage_over_three_waves_of_reads_does_not_end_the_batch(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    """24 jobs end together; their reads by id go out 8 at a time (the watcher's
    readers), each reader sending its next as soon as the last was refused. A
    token outage of the first 24 reads (3 round trips, some 40 ms) refused 3 waves
    of calls, each sent after the last refusal counted arrived: 3 in a row, and
    the batch raised AuthenticationError though all 24 jobs ended Successful. Now
    a refusal counts only for a call sent min_interval after the last one counted
    arrived (as one job's own retries are paced). A folder's refusals (403) are
    counted alike: they ended the folder's jobs, and the batch (its only folder)."""
    tries = 2 if status == 401 else 1  # a 403 is not retried by the transport
    middleware, refused = _refuse_reads(24, tries=tries, status=status)
    add_simulator_middleware(monkeypatch, middleware)
    sim: SimulatorHandle = await start_simulator(
        parse_scenario(_MANY, name="many"), time_scale=60.0
    )
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"n": n}) for n in range(24)]
    poll = dataclasses.replace(fast_poll(), min_interval=0.2, max_interval=1.0)
    async with OrchestratorClient(fast_settings(sim), poll=poll) as orch:
        results = await orch.run_jobs(requests, timeout=30)
    assert sorted(refused.values()) == [tries] * 24  # every job's read was refused, once
    assert [r.outcome.value for r in results] == ["successful"] * 24
    assert [r.outputs for r in results] == [{"n": n} for n in range(24)]


async def test_a_token_refused_for_good_still_ends_the_batch_promptly(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same 24 jobs, their reads refused for good: AuthenticationError after a
    few min_interval, not the batch timeout."""
    middleware, refused = _refuse_reads(float("inf"), tries=float("inf"))
    add_simulator_middleware(monkeypatch, middleware)
    sim: SimulatorHandle = await start_simulator(
        parse_scenario(_MANY, name="many"), time_scale=60.0
    )
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"n": n}) for n in range(24)]
    poll = dataclasses.replace(fast_poll(), min_interval=0.2, max_interval=1.0)
    began = time.monotonic()
    async with OrchestratorClient(fast_settings(sim), poll=poll) as orch:
        with pytest.raises(AuthenticationError):
            await orch.run_jobs(requests, timeout=30)
    assert time.monotonic() - began < 5
    assert len(refused) == 24


# Two folders; Mid runs 90 simulated seconds (1.5 s at time_scale 60), Long for days.
_HR_AND_SHARED = (
    _ECHO_AND_SLOW
    + """
[[tenants.processes]]
name = "Mid"
duration = 90
outputs = "echo"

[[tenants.processes]]
name = "Long"
duration = 1000000
outputs = "echo"

[[tenants.folders]]
path = "HR"
robots = 5
"""
)


async def test_a_resume_while_one_folder_is_still_refused_finishes_the_others(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """HR refused (403 on its Jobs lists and reads) from the start; the run is
    cancelled once HR's jobs ended unknown by the refusal, Shared's still running.
    The resume re-attaches both (HR's as ended by a refusal), and its first call,
    a read of the first job (HR's), was taken as fatal: the resume raised the
    PermissionDeniedError and Shared's jobs could not be learnt until HR's access
    came back (before HR's rows were re-attached, it watched them). Now a 403 on
    that read is fatal only when every job waited for is in that folder: the
    watcher counts it per folder, HR's jobs end refused again (still marked), and
    Shared's end Successful."""
    middleware, refused = _refuse_folder()
    add_simulator_middleware(monkeypatch, middleware)
    scenario = parse_scenario(_HR_AND_SHARED, name="two")
    sim: SimulatorHandle = await start_simulator(scenario, time_scale=60.0)
    refused["key"] = _key_of(sim, "HR")
    journal = tmp_path / "batch.sqlite"
    requests = [JobRequest(process="Mid", folder=f, inputs={"n": n})
                for n, f in enumerate(["HR", "Shared"] * 2)]  # fmt: skip
    hr_ended = asyncio.Event()

    def on_progress(progress: Progress) -> None:
        if progress.by_state.get("unknown") == 2:
            hr_ended.set()

    hooks = Hooks(on_progress=on_progress)
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        run = asyncio.create_task(orch.run_jobs(requests, timeout=30, journal=journal, hooks=hooks))
        await asyncio.wait_for(hr_ended.wait(), 10)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        with Journal.open(journal, read_only=True) as stored:
            assert [(j.outcome, j.refused) for j in stored.jobs()] == [
                ("unknown", True), (None, False)
            ] * 2  # fmt: skip
        resumed = await orch.resume_jobs(journal, timeout=30)
    assert [(r.index, r.outcome.value) for r in resumed] == [
        (0, "unknown"), (1, "successful"), (2, "unknown"), (3, "successful")
    ]  # fmt: skip
    assert all(isinstance(r.error, PermissionDeniedError) for r in resumed[::2])
    with Journal.open(journal, read_only=True) as stored:
        assert [(j.outcome, j.refused) for j in stored.jobs()] == [
            ("unknown", True), ("successful", False)
        ] * 2  # fmt: skip
    _started_once(sim, 4)


@pytest.mark.slow  # starts the CLI
async def test_stop_journal_stops_the_other_folders_jobs_while_one_is_refused(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """HR refused (403 on its Jobs lists, reads and stops, not its starts): its jobs
    ended unknown by the refusal, Shared's timed out still running. ``stop --journal`` counts both
    left running, and sent HR's StopJobs first: its 403 ended the command, and
    Shared's jobs, the ones it could stop, were never stopped. Now a folder whose
    stop is refused is named, the other folders' jobs are stopped, and only they
    are waited for."""
    scenario = parse_scenario(_HR_AND_SHARED, name="two")
    hr: dict[str, str] = {}

    @aiohttp.web.middleware
    async def refuse(request: aiohttp.web.Request, handler: _Handler) -> aiohttp.web.StreamResponse:
        folder = (
            request.headers.get("X-UIPATH-FolderKey", "").lower(),
            request.headers.get("X-UIPATH-OrganizationUnitId", ""),
        )
        jobs = "/odata/Jobs" in request.path and "StartJobs" not in request.path
        if jobs and folder in {(hr["key"], ""), ("", hr["id"])}:
            return aiohttp.web.json_response(_SCOPE_REFUSAL, status=403)
        return await handler(request)

    add_simulator_middleware(monkeypatch, refuse)
    sim: SimulatorHandle = await start_simulator(scenario, time_scale=60.0)
    folder = sim.simulator.tenants[0].world.folder_by_path("HR")
    assert folder is not None
    hr.update(key=folder.key.lower(), id=str(folder.id))
    journal = tmp_path / "batch.sqlite"
    requests = [JobRequest(process=p, folder=f, inputs={"n": n})
                for n, (p, f) in enumerate([("Mid", "HR"), ("Long", "Shared")] * 2)]  # fmt: skip
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        first = await orch.run_jobs(requests, timeout=1, journal=journal)
    assert [r.outcome.value for r in first] == ["unknown", "timed_out"] * 2
    env = cli_env(tmp_path, UIPATH_CLIENT_ID="app", UIPATH_CLIENT_SECRET="app-secret")
    began = time.monotonic()
    stopped = await run_cli("stop", "--journal", str(journal), "--wait", "40", env=env)
    assert time.monotonic() - began < 30  # HR's jobs, not stopped, are not waited for
    assert "could not stop 2 jobs of folder HR: " in stopped.stderr, stopped.stderr
    assert "SoftStop sent to 2 unfinished jobs" in stopped.stderr
    with Journal.open(journal, read_only=True) as stored:
        states = [(j.request_index, j.state, j.stop_sent) for j in stored.jobs()]
    hr_left, shared_stopped = ("Pending", None), ("Stopped", "SoftStop")
    assert states == [(0, *hr_left), (1, *shared_stopped), (2, *hr_left), (3, *shared_stopped)]
    _started_once(sim, 4)


def _noting(*, when: tuple[str, int]) -> tuple[Hooks, set[int], list[Abandoned], asyncio.Event]:
    """Hooks noting the jobs started and the Abandoned report, and an event set once
    ``when[1]`` jobs are in the state (or outcome) ``when[0]``."""
    started: set[int] = set()
    abandoned: list[Abandoned] = []
    reached = asyncio.Event()

    def on_progress(progress: Progress) -> None:
        if progress.by_state.get(when[0]) == when[1]:
            reached.set()

    hooks = Hooks(
        on_started=lambda index, handle: started.add(handle.job_id),
        on_progress=on_progress,
        on_abandoned=abandoned.append,
    )
    return hooks, started, abandoned, reached


@pytest.mark.parametrize("journal", [False, True], ids=["plain", "journal"])
async def test_a_stream_left_with_results_unread_names_their_jobs(
    start_simulator: Callable[..., Any], tmp_path: Path, journal: bool
) -> None:
    """stream_jobs left (``break``) after the first result while 11 more jobs had
    ended, their results waiting in the stream: those 11 jobs were named nowhere
    (not yielded, not in Abandoned's stopped, left_running or ended). Now
    Abandoned.results holds the results the block did not read; with a journal it
    stays empty (the journal keeps those jobs unfinished: a resume reads them)."""
    sim: SimulatorHandle = await start_simulator(
        parse_scenario(_MANY, name="many"), time_scale=60.0
    )
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"n": n}) for n in range(12)]
    hooks, started, abandoned, all_ended = _noting(when=("successful", 12))
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        if journal:
            # A journaled batch's stream is the dispatcher's (run_jobs reads it all):
            # cancel it once every job has ended, its results unread.
            run = asyncio.create_task(
                orch.run_jobs(requests, timeout=30, journal=tmp_path / "j.sqlite", hooks=hooks)
            )
            await asyncio.wait_for(all_ended.wait(), 10)
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
        else:
            async with orch.stream_jobs(requests, timeout=30, hooks=hooks) as results:
                async for result in results:
                    await asyncio.wait_for(all_ended.wait(), 10)
                    first = result
                    break
    [report] = abandoned
    if journal:
        assert report.results == ()
        return
    assert len(report.results) == 11
    assert _named(report, [first.job_id]) == sorted(started)
    assert [r.index for r in report.results] == sorted(r.index for r in report.results)


async def _leave_after(sim: SimulatorHandle, k: int) -> tuple[set[int], list[int], Abandoned]:
    """Stream 24 jobs and leave after the ``k``-th result; return the jobs started, every
    job named (yielded, or in the Abandoned report) and that report."""
    requests = [JobRequest(process="Echo", folder="Shared", inputs={"n": n}) for n in range(24)]
    started: set[int] = set()
    abandoned: list[Abandoned] = []
    yielded: list[int | None] = []
    hooks = Hooks(on_started=lambda i, h: started.add(h.job_id), on_abandoned=abandoned.append)
    async with (
        OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch,
        orch.stream_jobs(requests, timeout=30, hooks=hooks) as results,
    ):
        async for result in results:
            yielded.append(result.job_id)
            if len(yielded) == k:
                break
    [report] = abandoned
    return started, _named(report, yielded), report


def _named(report: Abandoned, yielded: list[int | None]) -> list[int]:
    """The jobs yielded or named by ``report`` (its results, stopped, left running,
    ended), sorted: equal to the jobs started when each is named once."""
    named = yielded + [r.job_id for r in report.results]
    named += [h.job_id for h in (*report.left_running, *report.stopped, *report.ended)]
    return sorted(job_id or 0 for job_id in named)


async def test_a_stream_left_as_jobs_end_loses_no_result(
    start_simulator: Callable[..., Any],
) -> None:
    """24 jobs ending together, the block left (``break``) after its k-th result, for
    k = 1..8. A result was handed to the stream by ``send()``, whose checkpoint the
    leaving cancelled: the job was out of the batch's table already, and its
    result neither in the stream nor anywhere (8 of 24 jobs named nowhere, k = 5).
    Now it is put in the stream without a checkpoint; every started job is
    yielded, unread in Abandoned.results, or in its stopped, left_running or ended."""
    scenario = parse_scenario(_MANY, name="many")
    sim: SimulatorHandle = await start_simulator(scenario, time_scale=60.0)
    for k in range(1, 9):
        started, named, _ = await _leave_after(sim, k)
        assert named == sorted(started), k


async def _three_slow_jobs(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, middleware: Any
) -> tuple[SimulatorHandle, list[JobRequest]]:
    """A simulator behind ``middleware`` and 3 requests of its Slow process (they run
    until stopped) in Shared."""
    add_simulator_middleware(monkeypatch, middleware)
    sim: SimulatorHandle = await start_simulator(
        parse_scenario(_ECHO_AND_SLOW, name="slow"), time_scale=60.0
    )
    requests = [JobRequest(process="Slow", folder="Shared", inputs={"n": n}) for n in range(3)]
    return sim, requests


async def test_a_cancel_while_jobs_are_being_stopped_still_reports_them(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_jobs cancelled, its jobs being stopped on the way out (StopPolicy.on_cancel),
    and cancelled again while the StopJobs call is in flight (a caller's timeout
    around a cancellation; a shutdown). asyncio's cancel goes through anyio's
    shield: the stop was cut short and on_abandoned never called, so the 3
    running jobs were named nowhere and not even logged. Now the report is made
    whatever cuts the stop short: they are left running (their stop unknown)."""
    stopping = asyncio.Event()

    @aiohttp.web.middleware
    async def see_stops(
        request: aiohttp.web.Request, handler: _Handler
    ) -> aiohttp.web.StreamResponse:
        if request.path.endswith("StopJobs"):
            stopping.set()
        return await handler(request)

    sim, requests = await _three_slow_jobs(start_simulator, monkeypatch, see_stops)
    hooks, started, abandoned, running = _noting(when=("Running", 3))
    stop = StopPolicy(on_cancel=True, grace=30)
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        run = asyncio.create_task(orch.run_jobs(requests, timeout=60, stop=stop, hooks=hooks))
        await asyncio.wait_for(running.wait(), 10)
        run.cancel()
        await asyncio.wait_for(stopping.wait(), 10)
        run.cancel()  # again, while its jobs are being stopped
        with pytest.raises(asyncio.CancelledError):
            await run
    [report] = abandoned
    assert _named(report, []) == sorted(started)
    assert len(report.left_running) == 3


@pytest.mark.parametrize("status", [401, 403], ids=["token", "folder-scope"])
async def test_a_cancel_whose_stop_is_refused_still_raises_the_cancellation(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    """run_jobs cancelled with StopPolicy.on_cancel, every Jobs call refused from then
    on (the token revoked, or the scope taken away): the stop's own watcher met 3
    refusals in a row and raised, so the cancelled run_jobs raised an
    ExceptionGroup of that error instead of CancelledError (and, before 8709bb7,
    on_abandoned was never called). Now the stop's failure is logged; the
    cancellation comes out, and the 3 jobs are reported left running."""
    armed = {"on": False}

    @aiohttp.web.middleware
    async def refuse(request: aiohttp.web.Request, handler: _Handler) -> aiohttp.web.StreamResponse:
        if armed["on"] and "/odata/Jobs" in request.path:
            body = _TOKEN_REFUSAL if status == 401 else _SCOPE_REFUSAL
            return aiohttp.web.json_response(body, status=status)
        return await handler(request)

    sim, requests = await _three_slow_jobs(start_simulator, monkeypatch, refuse)
    hooks, started, abandoned, running = _noting(when=("Running", 3))
    stop = StopPolicy(on_cancel=True, grace=1)
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        run = asyncio.create_task(orch.run_jobs(requests, timeout=60, stop=stop, hooks=hooks))
        await asyncio.wait_for(running.wait(), 10)
        armed["on"] = True
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    [report] = abandoned
    assert sorted(h.job_id for h in report.left_running) == sorted(started)
