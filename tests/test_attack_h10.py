"""Review of attack h9b: refusals of calls in flight together (token), the results a
batch ended by a refusal had given, and a journal's jobs ended by a refusal.
Simulator over real sockets, faults put in front of it by a middleware."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp.web
import pytest
import structlog
from cli_harness import cli_env, run_cli
from conftest import add_simulator_middleware
from test_attack_h9 import _SCOPE_REFUSAL, _jobs_list_or_read, _refuse_after_starts
from test_dispatcher_support import fast_poll, fast_settings

from async_orch import (
    Abandoned,
    Hooks,
    JobRequest,
    OrchestratorClient,
    PermissionDeniedError,
    Progress,
)
from async_orch._journal import Journal
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


async def _refused_once_three_of_five_ended(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[SimulatorHandle, list[JobRequest], Callable[[Progress], None]]:
    """A simulator whose Shared folder answers 403 to Jobs lists and reads once the
    returned on_progress saw 3 jobs Successful; 5 requests there, the 3 Echo jobs
    quick, the 2 Slow ones still running then."""
    middleware, armed = _refuse_after_starts(_jobs_list_or_read)
    add_simulator_middleware(monkeypatch, middleware)
    sim: SimulatorHandle = await start_simulator(
        parse_scenario(_ECHO_AND_SLOW, name="slow"), time_scale=60.0
    )
    requests = [
        JobRequest(process=p, folder="Shared", inputs={"n": n})
        for n, p in enumerate(["Echo", "Slow", "Echo", "Slow", "Echo"])
    ]

    def on_progress(progress: Progress) -> None:
        if progress.by_state.get("successful") == 3:
            armed["on"] = True  # every Echo ended: now the folder is refused

    return sim, requests, on_progress


async def test_a_batch_ended_by_a_refusal_hands_over_its_results_and_every_started_job(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every folder refused mid-run (403 on its Jobs lists and reads, once 3 of its 5
    jobs had ended): run_jobs raises the PermissionDeniedError, and the results of
    the 3 jobs that had ended were lost with the list it did not return (the
    report of what was left named the 2 running jobs only). Now the report carries
    the results the batch had: every started job is in one or the other."""
    sim, requests, on_progress = await _refused_once_three_of_five_ended(
        start_simulator, monkeypatch
    )
    started: set[int] = set()
    abandoned: list[Abandoned] = []
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


def _failing_hook(abandoned: Abandoned) -> None:
    raise RuntimeError("the caller's store is down")


@pytest.mark.parametrize("on_abandoned", [None, _failing_hook], ids=["no hook", "hook raises"])
async def test_without_on_abandoned_the_results_a_failing_run_had_are_named(
    start_simulator: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    on_abandoned: Callable[[Abandoned], None] | None,
) -> None:
    """The same refusal with no on_abandoned to take Abandoned.results (or one that
    raised, review h11): the 3 results run_jobs had were said nowhere (the warning
    named the 2 running jobs only). Now a warning names the ended jobs, and the error
    itself says how many ended and how to receive their results."""
    sim, requests, on_progress = await _refused_once_three_of_five_ended(
        start_simulator, monkeypatch
    )
    started: dict[int, int] = {}
    hooks = Hooks(
        on_started=lambda i, h: started.update({i: h.job_id}),
        on_progress=on_progress,
        on_abandoned=on_abandoned,
    )
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with (
            structlog.testing.capture_logs() as logs,
            pytest.raises(PermissionDeniedError) as raised,
        ):
            await orch.run_jobs(requests, timeout=30, hooks=hooks)
    [note] = raised.value.__notes__
    assert note.startswith("3 job(s) of the batch had ended before this error (3 successful)")
    assert "Hooks(on_abandoned=...)" in note
    [said] = [e for e in logs if e["event"] == "async_orch.results_not_returned"]
    assert said["log_level"] == "warning" and said["reason"] == "PermissionDeniedError"
    assert said["job_ids"] == [started[n] for n in (0, 2, 4)]
    assert said["by_outcome"] == {"successful": 3}


def _refuse_folder() -> tuple[Any, dict[str, Any]]:
    """A middleware answering 403 (a scope taken away) to the Jobs lists and reads
    about the jobs of the folder whose Key is ``refused["key"]``, while ``refused["on"]``."""
    refused: dict[str, Any] = {"key": None, "on": True}

    @aiohttp.web.middleware
    async def refuse(request: aiohttp.web.Request, handler: _Handler) -> aiohttp.web.StreamResponse:
        ours = request.headers.get("X-UIPATH-FolderKey", "").lower() == refused["key"]
        if ours and refused["on"] and request.method == "GET" and _jobs_list_or_read(request):
            return aiohttp.web.json_response(_SCOPE_REFUSAL, status=403)
        return await handler(request)

    return refuse, refused


def _key_of(sim: SimulatorHandle, path: str) -> str:
    folder = sim.simulator.tenants[0].world.folder_by_path(path)
    assert folder is not None
    return folder.key.lower()


def _started_once(sim: SimulatorHandle, count: int) -> None:
    """The simulator created ``count`` jobs, each of its own Reference, by one StartJobs."""
    jobs = sim.simulator.stats()["jobs"]
    assert jobs["created"] == count
    assert set(jobs["by_reference"].values()) == {1} and jobs["duplicate_references"] == {}


async def test_a_journaled_job_ended_by_a_refusal_is_watched_again_on_resume(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """HR's Jobs lists and reads are refused (403) from the start: its jobs end
    ``unknown`` with the PermissionDeniedError, Shared's end Successful. The
    journal wrote HR's as final, so a resume once access was back reported them
    ``unknown`` again from the journal and never learnt they had ended Successful.
    Now a resume re-attaches them by id (never starting them again) and reports
    their real outcome."""
    middleware, refused = _refuse_folder()
    add_simulator_middleware(monkeypatch, middleware)
    sim: SimulatorHandle = await start_simulator(time_scale=60.0)
    refused["key"] = _key_of(sim, "HR")
    journal = tmp_path / "batch.sqlite"
    requests = [JobRequest(process="Echo", folder=f, inputs={"n": n}) for n, f in
                enumerate(["HR", "Shared"] * 3)]  # fmt: skip
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        first = await orch.run_jobs(requests, timeout=30, journal=journal)
        assert [r.outcome.value for r in first] == ["unknown", "successful"] * 3
        assert all(isinstance(r.error, PermissionDeniedError) for r in first[::2])
        refused["on"] = False  # access is back
        resumed = await orch.resume_jobs(journal, timeout=30)
    # HR's jobs, watched again by id: their real outcome, and the journal's now.
    assert [(r.index, r.outcome.value, r.outputs) for r in resumed] == [
        (n, "successful", {"n": n}) for n in (0, 2, 4)
    ]
    assert [r.job_id for r in resumed] == [r.job_id for r in first[::2]]
    with Journal.open(journal, read_only=True) as stored:
        assert [(j.outcome, j.state, j.refused) for j in stored.jobs()] == [
            ("successful", "Successful", False)
        ] * 6
    _started_once(sim, 6)


async def _dispatch_hr_and_shared(sim: SimulatorHandle, journal: Path, env: Any) -> Any:
    """``dispatch`` of 4 Echo jobs, HR and Shared in turn, journaled, rows as JSON lines."""
    return await run_cli(
        "dispatch", "--url", sim.url, "--process", "Echo", "--folder", "HR", "--folder",
        "Shared", "--count", "4", "--inputs", '{"n": 7}', "--journal", str(journal),
        "--format", "jsonl",
        env=env,
    )  # fmt: skip


async def _dispatch_with_hr_refused(
    start_simulator: Callable[..., Any], refused: dict[str, Any], tmp_path: Path
) -> tuple[SimulatorHandle, Any, Path, Any]:
    """A simulator whose HR folder ``refused`` (a middleware of :func:`_refuse_folder`,
    already added) refuses, and the first ``dispatch`` against it (exit 1: HR's jobs
    unknown): the simulator, the CLI's environment, the journal and that run."""
    sim: SimulatorHandle = await start_simulator(time_scale=60.0)
    refused["key"] = _key_of(sim, "HR")
    env, journal = cli_env(tmp_path), tmp_path / "batch.sqlite"
    first = await _dispatch_hr_and_shared(sim, journal, env)
    assert first.returncode == 1, first.stderr
    return sim, env, journal, first


@pytest.mark.slow  # starts the CLI twice
async def test_dispatch_resume_learns_the_outcome_of_jobs_ended_by_a_refusal(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The CLI's dispatch, HR refused from the start (403 on its Jobs lists and
    reads): HR's jobs end ``unknown`` with the refusal; once access is back,
    ``dispatch --resume`` reports their real outcome, never starting one again."""
    middleware, refused = _refuse_folder()
    add_simulator_middleware(monkeypatch, middleware)
    sim, env, journal, first = await _dispatch_with_hr_refused(start_simulator, refused, tmp_path)
    by_folder = {r["folder"]: r["outcome"] for r in first.rows()}
    assert by_folder == {"HR": "unknown", "Shared": "successful"}, first.stdout
    assert f"learn their outcome with:\n  async-orch dispatch --resume {journal}" in first.stderr
    refused["on"] = False  # access is back
    resumed = await run_cli(
        "dispatch", "--resume", str(journal), "--format", "jsonl", "--quiet", env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    rows = resumed.rows()
    assert [(r["outcome"], r["state"], r["outputs"]) for r in rows] == [
        ("successful", "Successful", {"n": 7})
    ] * 4
    assert [r["job_id"] for r in rows] == [r["job_id"] for r in first.rows()]
    _started_once(sim, 4)


_ACCESS_LOST = {
    "message": "Folder does not exist or the user does not have access to the folder.",
    "errorCode": 1100,
}


@pytest.mark.slow  # starts the CLI twice
async def test_dispatch_says_a_resume_also_starts_the_requests_refused_at_start(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """HR's access lost after its first start: its Jobs lists and reads are refused
    (403) and its second StartJobs answered 1100, so one HR job ends ``unknown`` and
    one request ``not_started``. dispatch's last line named the resume for the first
    only; a resume starts the second too (once), and the line now says so."""
    middleware, refused = _refuse_folder()
    starts = {"hr": 0}

    @aiohttp.web.middleware
    async def refuse_second_start(
        request: aiohttp.web.Request, handler: _Handler
    ) -> aiohttp.web.StreamResponse:
        ours = request.headers.get("X-UIPATH-FolderKey", "").lower() == refused["key"]
        if ours and refused["on"] and request.method == "POST" and "StartJobs" in request.path:
            starts["hr"] += 1
            if starts["hr"] > 1:
                return aiohttp.web.json_response(_ACCESS_LOST, status=400)
        return await handler(request)

    add_simulator_middleware(monkeypatch, middleware)
    add_simulator_middleware(monkeypatch, refuse_second_start)
    sim, env, journal, first = await _dispatch_with_hr_refused(start_simulator, refused, tmp_path)
    outcomes = sorted((r["folder"], r["outcome"]) for r in first.rows())
    assert outcomes == [("HR", "not_started"), ("HR", "unknown")] + [("Shared", "successful")] * 2
    expected = (
        f"outcome (and start the 1 not started) with:\n  async-orch dispatch --resume {journal}"
    )
    assert expected in first.stderr
    refused["on"] = False  # access is back
    resumed = await run_cli(
        "dispatch", "--resume", str(journal), "--format", "jsonl", "--quiet", env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    assert [r["outcome"] for r in resumed.rows()] == ["successful"] * 4
    _started_once(sim, 4)


@pytest.mark.slow  # starts the CLI
async def test_dispatch_ended_by_an_error_mid_run_still_writes_its_rows(
    start_simulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every folder's Jobs lists and reads refused (403) once the jobs started: the run
    ends with the error, exit 2. Its rows went nowhere (the journal only; an interrupt
    wrote them): now they are written as an interrupt's are, the error after them."""
    middleware, armed = _refuse_after_starts(_jobs_list_or_read)
    add_simulator_middleware(monkeypatch, middleware)
    armed["on"] = True  # StartJobs is not refused: the jobs start, then nothing answers
    sim: SimulatorHandle = await start_simulator(time_scale=60.0)
    env, journal = cli_env(tmp_path), tmp_path / "batch.sqlite"
    run = await _dispatch_hr_and_shared(sim, journal, env)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "every folder of the batch is refused (HR, Shared)" in run.stderr.splitlines()[-1]
    rows = run.rows()
    assert len(rows) == 4 and all(isinstance(r["job_id"], int) for r in rows), run.stdout
    assert {r["folder"] for r in rows} == {"HR", "Shared"}
    _started_once(sim, 4)
