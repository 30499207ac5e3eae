"""OrchestratorClient's dispatch API against the simulator: start in one client,
wait in another (handles carried as JSON), iterate results, resize limits."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import anyio
from test_dispatcher_support import (
    GET_JOB,
    LIST_JOBS,
    START_JOBS,
    engine_jobs,
    fast_poll,
    fast_settings,
    requests_to,
    scenario,
)

from async_orch._client import OrchestratorClient
from async_orch._dispatcher import DispatchLimits, Started, StartFailure
from async_orch._errors import FolderNotFoundError, JobLostError, NotFoundError
from async_orch._jobs import JobHandle, JobRequest, JobResult, Outcome, Progress, Summary
from async_orch._options import Hooks
from async_orch._planner import PollPolicy
from async_orch._states import JobState


async def test_start_in_one_client_then_wait_in_another_from_json(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    requests = [
        JobRequest(process="Echo", folder="Finance/Comptabilité", inputs={"n": 1}, jobs_count=2),
        JobRequest(process="Echo", folder="HR", inputs={"n": 2}),
        JobRequest(process="Echo", folder="Nowhere", inputs={"n": 3}),
    ]
    persisted: list[str] = []
    async with OrchestratorClient(fast_settings(sim)) as first:
        outcome = await first.start_jobs(
            requests, on_started=lambda i, h: persisted.append(json.dumps(h.to_dict()))
        )
    assert [type(o) for o in outcome] == [Started, Started, StartFailure]
    assert isinstance(outcome[2], StartFailure)
    assert isinstance(outcome[2].error, FolderNotFoundError)
    started = [h for o in outcome if isinstance(o, Started) for h in o.handles]
    assert len(persisted) == len(started) == 3

    handles = [JobHandle.from_dict(json.loads(text)) for text in reversed(persisted)]
    assert sorted(handles, key=lambda h: h.job_id) == sorted(started, key=lambda h: h.job_id)
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as second:
        results = await second.wait_jobs(handles)

    assert [r.handle for r in results] == handles  # in the order given
    assert [r.index for r in results] == [0, 1, 2]
    assert all(r.outcome is Outcome.SUCCESSFUL for r in results)
    assert all(r.request is None for r in results)  # only handles were given
    expected = {h.job_id: {"n": 2 if h.folder_path == "HR" else 1} for h in handles}
    assert {r.job_id: r.outputs for r in results} == expected
    assert requests_to(sim, START_JOBS) == 2  # waiting never starts anything


async def test_wait_jobs_with_a_timeout_reports_the_last_state(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start_simulator(scenario(), time_scale=100.0)
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        (started,) = await orch.start_jobs([JobRequest(process="Slow", folder="Shared")])
        assert isinstance(started, Started)
        progress: list[Progress] = []
        (result,) = await orch.wait_jobs(
            started.handles, timeout=1.0, hooks=Hooks(on_progress=progress.append)
        )

    assert result.outcome is Outcome.TIMED_OUT and result.timed_out
    assert result.state is JobState.RUNNING
    assert progress[-1].finished == progress[-1].total == 1
    assert {j.state for j in engine_jobs(sim)} == {JobState.RUNNING}


async def test_iter_jobs_yields_results_as_jobs_end(start_simulator: Callable[..., Any]) -> None:
    sim = await start_simulator(scenario(echo=(1.0, 1.0)), time_scale=100.0)
    requests = [
        JobRequest(process="Slow", folder="Shared", inputs={"slow": 1}, timeout=1.0),
        JobRequest(process="Echo", folder="HR", inputs={"fast": 1}),
    ]
    async with (
        OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch,
        contextlib.aclosing(orch.iter_jobs(requests)) as results,
    ):
        seen = [result async for result in results]

    # The quick Echo job ends first although it was asked for second.
    assert [r.index for r in seen] == [1, 0]
    assert [r.outcome for r in seen] == [Outcome.SUCCESSFUL, Outcome.TIMED_OUT]
    assert seen[1].info == "still Running when the job timeout (1 s) passed; it may still run"
    summary = Summary.of(seen)
    assert summary.by_outcome == {"successful": 1, "timed_out": 1}
    assert not summary.all_successful


async def test_client_set_limits_reaches_the_dispatcher(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    async with OrchestratorClient(
        fast_settings(sim), limits=DispatchLimits(max_in_flight=2), poll=fast_poll()
    ) as orch:
        orch.set_limits(max_in_flight=8, per_folder=3, starts_per_second=1000.0)
        limits = orch.dispatcher.limits
        assert (limits.max_in_flight, limits.per_folder, limits.starts_per_second) == (
            8,
            3,
            1000.0,
        )
        results = await orch.run_jobs(
            [JobRequest(process="Echo", folder="Shared", inputs={"i": i}) for i in range(6)]
        )
    assert all(r.ok for r in results)


async def test_iter_jobs_starts_requests_and_re_attaches_to_handles_in_one_batch(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    states: list[tuple[int, JobState | None, JobState]] = []
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        (earlier,) = await orch.start_jobs(
            [JobRequest(process="Echo", folder="HR", inputs={"n": 1})]
        )
        assert isinstance(earlier, Started)
        async with contextlib.aclosing(
            orch.iter_jobs(
                [JobRequest(process="Echo", folder="Shared", inputs={"n": 2})],
                handles=earlier.handles,
                hooks=Hooks(on_state=lambda h, old, new: states.append((h.job_id, old, new))),
            )
        ) as results:
            seen = sorted([r async for r in results], key=lambda r: r.index)

    assert [r.index for r in seen] == [0, 1]  # the handle's result comes after the requests'
    assert seen[1].handle == earlier.handles[0]
    assert [r.outputs for r in seen] == [{"n": 2}, {"n": 1}]
    assert requests_to(sim, START_JOBS) == 2  # the earlier job was not started again
    # Every job's final state was heard before its result.
    assert {job_id: new for job_id, _, new in states} == {
        r.job_id: JobState.SUCCESSFUL for r in seen
    }


async def test_concurrent_batches_of_one_client_share_its_list_budget(
    start_simulator: Callable[..., Any],
) -> None:
    # A service handling 20 requests at once, each a small batch, must not spend
    # 20 budgets against the tenant's one limit on GET /odata/Jobs.
    sim = await start_simulator(scenario(jobs_list=10), time_scale=50.0)
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll(budget=10)) as orch:
        batches = [
            [
                JobRequest(process="Echo", folder="HR", inputs={"caller": c, "n": n})
                for n in range(3)
            ]
            for c in range(20)
        ]
        async with anyio.create_task_group() as tg:
            outcomes: dict[int, list[JobResult]] = {}

            async def handler(caller: int) -> None:
                outcomes[caller] = await orch.run_jobs(batches[caller])

            for caller in range(20):
                tg.start_soon(handler, caller)

    for caller, results in outcomes.items():
        assert [r.outputs for r in results] == [{"caller": caller, "n": n} for n in range(3)]
    assert sim.simulator.stats()["rejections"].get("429", 0) == 0
    assert requests_to(sim, LIST_JOBS) <= 2  # paced 6 s apart; the jobs end within that


async def test_waiting_for_a_job_that_does_not_exist_ends_with_the_404(
    start_simulator: Callable[..., Any],
) -> None:
    # A persisted handle can outlive its job (purged, or from another tenant).
    sim = await start_simulator(scenario(), time_scale=50.0)
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        folder = await orch.api.resolve_folder("HR")
        real = (await orch.start_jobs([JobRequest(process="Echo", folder="HR")]))[0]
        assert isinstance(real, Started)
        gone = JobHandle(
            job_id=999_999, job_key=None, folder_id=folder.id, folder_key=folder.key,
            folder_path="HR", reference=None,
        )  # fmt: skip
        results = await orch.wait_jobs([gone, *real.handles], timeout=30)  # no hang

    assert results[0].outcome is Outcome.UNKNOWN
    assert isinstance(results[0].error, JobLostError)
    assert "404" in str(results[0].error) and results[0].error.job_id == 999_999
    assert isinstance(results[0].error.__cause__, NotFoundError)
    assert results[0].error.__cause__.status == 404
    assert results[1].outcome is Outcome.SUCCESSFUL  # the real job is unaffected
    assert requests_to(sim, GET_JOB) >= 3  # a few 404s in a row, not one


async def test_one_list_call_carries_the_jobs_of_every_batch_running_at_once(
    start_simulator: Callable[..., Any],
) -> None:
    # Ten small batches at once: each list call of one of them also asks about
    # the others' jobs of that folder, so ten batches do not need ten calls.
    sim = await start_simulator(scenario(), time_scale=50.0)  # jobs end in ~0.1 s
    poll = PollPolicy(list_budget_per_minute=60, min_interval=0.02, max_interval=100.0)
    async with OrchestratorClient(fast_settings(sim), poll=poll) as orch:
        outcomes: dict[int, list[JobResult]] = {}

        async def handler(caller: int) -> None:
            requests = [
                JobRequest(process="Echo", folder="HR", inputs={"c": caller, "n": n})
                for n in range(2)
            ]
            outcomes[caller] = await orch.run_jobs(requests)

        async with anyio.create_task_group() as tg:
            for caller in range(10):
                tg.start_soon(handler, caller)

    assert all(r.outcome is Outcome.SUCCESSFUL for rs in outcomes.values() for r in rs)
    # One list call a second; alone, each batch would wait for its own (ten or more).
    assert requests_to(sim, LIST_JOBS) <= 5
    assert requests_to(sim, GET_JOB) == 20  # each job read once, for its outputs
