"""Resume as a library feature: ``run_jobs(..., journal=...)`` and ``resume_jobs``
against the simulator over real sockets. Exactly-once is judged by the
simulator's own per-Reference counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import structlog
from cli_harness import simulator_jobs, wait_until
from conftest import SimClient
from test_dispatcher_support import START_JOBS, fast_poll, fast_settings, requests_to, scenario

from async_orch import (
    ClientClosedError,
    ConfigurationError,
    DispatchLimits,
    Hooks,
    InvalidRequestError,
    JobHandle,
    JobRequest,
    JobStore,
    OrchestratorClient,
    Outcome,
)
from async_orch._journal import Journal
from async_orch._journaled import records_for, target_of

COUNT = 12


def _requests() -> list[JobRequest]:
    return [JobRequest(process="Echo", folder="HR", inputs={"i": i}) for i in range(COUNT)]


async def test_a_batch_cut_short_then_resumed_starts_each_request_exactly_once(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    path = tmp_path / "batch.sqlite"
    started: list[JobHandle] = []
    # Slow starts, so the cut lands with some jobs started and others not.
    limits = DispatchLimits(max_in_flight=1, starts_per_second=20.0)
    async with OrchestratorClient(fast_settings(sim), limits=limits, poll=fast_poll()) as orch:
        with anyio.CancelScope() as cut:

            def on_started(index: int, handle: JobHandle) -> None:
                started.append(handle)
                if len(started) == 4:
                    cut.cancel()  # the caller gives up: a crash as far as the batch knows

            await orch.run_jobs(_requests(), journal=path, hooks=Hooks(on_started=on_started))
        assert cut.cancelled_caught
        assert 4 <= len(started) < COUNT, "the cut came too late to test anything"

        results = await orch.resume_jobs(path)

    # The jobs the journal had final are not repeated; the rest come in request order.
    indexes = [r.index for r in results]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
    assert all(r.outcome is Outcome.SUCCESSFUL for r in results)
    assert all(r.request is not None and r.outputs == r.request.inputs for r in results)
    with Journal.open(path, read_only=True) as journal:
        jobs = journal.jobs()
    assert len(jobs) == COUNT and all(j.outcome == "successful" for j in jobs)
    counters = simulator_jobs(sim)
    references = {j.handle.reference for j in jobs}
    assert len(references) == COUNT
    assert counters["by_reference"] == dict.fromkeys(references, 1)
    assert counters["duplicate_references"] == {}
    assert counters["created"] == COUNT


async def test_resume_adopts_a_job_whose_start_the_store_never_heard_of(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """The process died after StartJobs reached the server, before the store's
    write: the resume finds the job by Reference and never posts it again. The
    store is given as an object (any JobStore), not as a path."""
    sim = await start_simulator(scenario(), time_scale=50.0)
    settings = fast_settings(sim)
    async with OrchestratorClient(settings, poll=fast_poll()) as orch:
        # The SQLite journal, created empty and given as a store.
        store = Journal.create(
            tmp_path / "store.sqlite", target=target_of(settings), batch_id="lost", requests=[]
        )
        with store:
            checked: JobStore = store  # it is one, as mypy checks here
            requests = [
                JobRequest(process="Echo", folder="HR", inputs={"i": i}, reference=f"lost-{i}")
                for i in range(3)
            ]
            checked.record_requests(records_for(requests, "lost"))
            async with aiohttp.ClientSession() as http:
                await SimClient(sim, http).start(
                    "HR", "Echo", Reference="lost-1", InputArguments='{"i": 1}'
                )
            results = await orch.resume_jobs(checked)

    assert [(r.index, r.reference, r.outputs) for r in results] == [
        (i, f"lost-{i}", {"i": i}) for i in range(3)
    ]
    assert simulator_jobs(sim)["by_reference"] == {f"lost-{i}": 1 for i in range(3)}
    assert requests_to(sim, START_JOBS) == 3  # lost-1 by the "dead" run, two by the resume


async def test_resuming_a_finished_batch_starts_nothing(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    path = tmp_path / "done.sqlite"
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        first = await orch.run_jobs(_requests()[:3], journal=path)
        assert [r.outcome for r in first] == [Outcome.SUCCESSFUL] * 3
        assert [r.index for r in first] == [0, 1, 2]
        assert await orch.resume_jobs(path) == []
    assert simulator_jobs(sim)["created"] == 3


async def test_a_request_the_journal_cannot_keep_is_refused_before_anything(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    path = tmp_path / "refused.sqlite"
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with pytest.raises(InvalidRequestError, match=r"requests\[1\] sets jobs_count"):
            await orch.run_jobs(
                [
                    JobRequest(process="Echo", folder="HR"),
                    JobRequest(process="Echo", folder="HR", jobs_count=2),
                ],
                journal=path,
            )
    assert not path.exists()
    assert requests_to(sim, START_JOBS) == 0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (".", "is a directory; give the path of a new file, such as"),
        ("done.sqlite", "already exists; resume it with resume_jobs("),
        ("/dev/full", "exists and is not a regular file"),
    ],
    ids=["directory", "existing", "device"],
)
async def test_a_journal_path_taken_by_something_else_says_what_it_is(
    start_simulator: Callable[..., Any], tmp_path: Path, name: str, message: str
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    (tmp_path / "done.sqlite").write_bytes(b"")
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with pytest.raises(ConfigurationError) as caught:
            await orch.run_jobs(_requests()[:1], journal=tmp_path / name)
    assert message in str(caught.value)
    assert "--" not in str(caught.value)  # the library's text names no CLI flag
    assert requests_to(sim, START_JOBS) == 0


async def test_two_resumes_of_one_store_at_once_start_nothing_twice(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """A store given as an object to two resumes at once (a service retrying, say):
    the second is refused at once; without that both looked the same requests up,
    found nothing and started every one of them."""
    sim = await start_simulator(scenario(), time_scale=50.0)
    settings = fast_settings(sim)
    store = Journal.create(
        tmp_path / "store.sqlite",
        target=target_of(settings),
        batch_id="twice",
        requests=records_for(_requests()[:3], "twice"),
    )
    with store:
        async with OrchestratorClient(settings, poll=fast_poll()) as orch:
            outcomes = await asyncio.gather(
                orch.resume_jobs(store), orch.resume_jobs(store), return_exceptions=True
            )
    finished, refused = outcomes
    assert isinstance(finished, list) and len(finished) == 3
    assert isinstance(refused, ConfigurationError) and "in use by another batch" in str(refused)
    assert simulator_jobs(sim)["by_reference"] == {f"ao-twice-{i}": 1 for i in range(3)}


async def test_a_resume_waiting_out_the_reconcile_window_says_so_in_the_log(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    # The last run did not end by itself and started nothing: the resume may not
    # start before the window has passed, and a library caller hears why it waits.
    sim = await start_simulator(scenario(), time_scale=50.0)
    settings = fast_settings(sim)
    # Long enough that the lookups before it never use it all up on a slow machine.
    settings = replace(settings, retry=replace(settings.retry, reconcile_window=1.5))
    path = tmp_path / "cut.sqlite"
    Journal.create(
        path,
        target=target_of(settings),
        batch_id="cut",
        requests=records_for(_requests()[:2], "cut"),
    ).close()
    with structlog.testing.capture_logs() as logs:
        async with OrchestratorClient(settings, poll=fast_poll()) as orch:
            results = await orch.resume_jobs(path)
    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL] * 2
    (waiting,) = [e for e in logs if e["event"] == "async_orch.resume_waiting_reconcile_window"]
    assert waiting["not_found"] == 2 and 0 < waiting["seconds"] <= 1.5


async def test_a_run_ended_by_an_error_is_resumed_without_waiting_the_reconcile_window(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """The run ended early but lived to record it (a callback raised here): no
    StartJobs of it was left in doubt, so the requests it never posted start at
    once, each exactly once (the window is ten minutes: waiting it would time out)."""
    sim = await start_simulator(scenario(), time_scale=50.0)
    settings = fast_settings(sim)
    path = tmp_path / "error.sqlite"
    limits = DispatchLimits(max_in_flight=1, starts_per_second=20.0)
    started: list[JobHandle] = []

    def on_started(index: int, handle: JobHandle) -> None:
        started.append(handle)
        if len(started) == 4:
            raise RuntimeError("a broken callback")

    async with OrchestratorClient(settings, limits=limits, poll=fast_poll()) as orch:
        with pytest.raises(RuntimeError, match="a broken callback"):
            await orch.run_jobs(_requests(), journal=path, hooks=Hooks(on_started=on_started))
    with Journal.open(path, read_only=True) as journal:
        assert journal.starts_in_doubt() == frozenset()  # recorded without any hook
        assert 4 <= len(journal.jobs()) < COUNT

    settings = replace(settings, retry=replace(settings.retry, reconcile_window=600.0))
    with structlog.testing.capture_logs() as logs:
        async with OrchestratorClient(settings, poll=fast_poll()) as orch:
            with anyio.fail_after(60):
                results = await orch.resume_jobs(path)
    assert not [e for e in logs if e["event"] == "async_orch.resume_waiting_reconcile_window"]
    assert all(r.outcome is Outcome.SUCCESSFUL for r in results)
    with Journal.open(path, read_only=True) as journal:
        jobs = journal.jobs()
    assert len(jobs) == COUNT and all(j.outcome == "successful" for j in jobs)
    counters = simulator_jobs(sim)
    assert counters["created"] == COUNT and counters["duplicate_references"] == {}
    assert set(counters["by_reference"].values()) == {1}


@pytest.mark.parametrize(
    ("abandoned", "waits"),
    [
        ({"uncertain_references": []}, False),  # ended early, nothing in doubt
        ({"uncertain_references": ["ao-cut-1"]}, True),  # a start of it in doubt
        ({"uncertain_references": ["someone-else"]}, False),  # in doubt, but found or not ours
        ({"uncertain_references": "ao-cut-1"}, True),  # not what async-orch writes: any may be
        (None, True),  # no word of how it ended (killed)
    ],
)
async def test_a_resume_waits_the_reconcile_window_only_for_starts_in_doubt(
    start_simulator: Callable[..., Any],
    tmp_path: Path,
    abandoned: dict[str, Any] | None,
    waits: bool,
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    settings = fast_settings(sim)
    settings = replace(settings, retry=replace(settings.retry, reconcile_window=1.5))
    path = tmp_path / "cut.sqlite"
    records = records_for(_requests()[:2], "cut")
    target = target_of(settings)
    with Journal.create(path, target=target, batch_id="cut", requests=records) as journal:
        if abandoned is not None:
            journal.record_event("abandoned", reason="ValueError", **abandoned)
    with structlog.testing.capture_logs() as logs:
        async with OrchestratorClient(settings, poll=fast_poll()) as orch:
            results = await orch.resume_jobs(path)
    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL] * 2
    waited = [e for e in logs if e["event"] == "async_orch.resume_waiting_reconcile_window"]
    assert bool(waited) is waits
    assert simulator_jobs(sim)["by_reference"] == {"ao-cut-0": 1, "ao-cut-1": 1}


async def test_a_client_closed_under_an_ambiguous_start_leaves_that_start_in_doubt(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """Attack (resume review): the application closes its client while the server
    holds a StartJobs. The POST fails ambiguously, the lookup then raises
    ClientClosedError (no cancellation): the start must still be recorded in
    doubt, so the resume waits the window and adopts the job the server completes
    late, instead of starting a second one at once."""
    late, window = 4.0, 12.0  # the server completes it after 4 s; the window is longer
    sim = await start_simulator(scenario(), time_scale=50.0)
    settings = fast_settings(sim)
    settings = replace(settings, retry=replace(settings.retry, reconcile_window=window))
    path = tmp_path / "closed.sqlite"
    request = JobRequest(process="Echo", folder="HR", inputs={"i": 0}, reference="held-0")
    sim.simulator.set_faults({"late_completion_rate": 1.0, "late_completion_seconds": late})
    failure: list[BaseException] = []
    with structlog.testing.capture_logs() as logs:
        async with OrchestratorClient(settings, poll=fast_poll()) as orch:

            async def run() -> None:
                try:
                    await orch.run_jobs([request], journal=path)
                except ClientClosedError as exc:
                    failure.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                # Until the server holds the StartJobs:
                await wait_until(
                    lambda: any(e["event"] == "async_orch.simulator.fault_injected" for e in logs)
                )
                await orch.aclose()
    held_since = time.monotonic()
    sim.simulator.set_faults({}, clear=True)
    assert failure
    with Journal.open(path, read_only=True) as journal:
        assert journal.starts_in_doubt() == frozenset({"held-0"})
    async with OrchestratorClient(settings, poll=fast_poll()) as orch:
        with anyio.fail_after(60):
            results = await orch.resume_jobs(path)
    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL]
    # A second job would come from the resume at once, then the held one at 4 s.
    await anyio.sleep(max(0.0, held_since + late + 1.0 - time.monotonic()))
    assert simulator_jobs(sim)["by_reference"] == {"held-0": 1}
