"""The dispatcher end to end against the simulator: faults, progress, bad requests.

The simulator runs on the real clock, sped up, so jobs of 1-2 simulated seconds
take a few tens of milliseconds; the client polls every few tens of milliseconds.
Assertions are about outcomes (every job created once, outputs equal inputs),
never about how long things took.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import gc
from collections.abc import Callable
from typing import Any

import pytest
from test_dispatcher_support import (
    FOLDERS,
    START_JOBS,
    engine_jobs,
    fast_poll,
    fast_settings,
    requests_to,
    scenario,
)

from async_orch._client import OrchestratorClient
from async_orch._dispatcher import DispatchLimits
from async_orch._errors import (
    FolderNotFoundError,
    InvalidRequestError,
    ProcessNotFoundError,
    UncertainStartError,
)
from async_orch._jobs import JobRequest, Outcome, Progress
from async_orch._options import Hooks
from async_orch.simulator import SimulatorHandle

FAULTS = {
    "server_error_rate": 0.04,  # 500, 502, 503 (text bodies for the gateway ones)
    "server_error_statuses": [500, 502, 503, 504],
    "drop_rate": 0.03,  # connections closed unanswered
    "ambiguous_start_rate": 0.08,  # StartJobs creates the jobs, then drops the answer
    "throttle_burst_seconds": 0.3,  # every request gets 429 + Retry-After ...
    "throttle_burst_every": 2.0,  # ... for 0.3 s of every 2 s
    "revoke_tokens_every": 0.7,  # every token revoked every 0.7 s
}


async def test_500_jobs_under_faults_each_created_exactly_once_with_its_outputs(
    start_simulator: Callable[..., Any],
) -> None:
    sim: SimulatorHandle = await start_simulator(
        scenario(jobs_list=10_000), time_scale=50.0, faults=FAULTS, seed=11
    )
    requests = [
        JobRequest(process="Echo", folder=FOLDERS[i % 4], inputs={"n": i, "text": f"job {i}"})
        for i in range(500)
    ]
    async with OrchestratorClient(
        fast_settings(sim),
        limits=DispatchLimits(max_in_flight=32, start_attempts=8),
        poll=fast_poll(budget=1200),
    ) as orch:
        results = await orch.run_jobs(requests)

    assert [r.index for r in results] == list(range(500))
    # A start whose answer was lost and whose lookups after the window all failed is reported
    # uncertain (never posted again); under these fault rates that is rare.
    outcomes = collections.Counter(r.outcome for r in results)
    assert set(outcomes) <= {Outcome.SUCCESSFUL, Outcome.UNCERTAIN}, outcomes
    assert outcomes[Outcome.UNCERTAIN] <= 25, outcomes
    for result in results:
        if result.outcome is Outcome.UNCERTAIN:
            assert isinstance(result.error, UncertainStartError), result
            continue
        assert result.request is not None, result
        assert result.outputs == result.request.inputs, result
    stats = sim.simulator.stats()
    # Every kind of fault was met, so the test cannot pass by luck.
    assert all(stats["faults"][kind] > 0 for kind in (
        "server_error", "throttle", "drop", "ambiguous_start", "token_revocation"
    )), stats["faults"]  # fmt: skip
    assert stats["rejections"]["401"] > 0  # revoked tokens were refused, then renewed
    # Exactly once: one job per Reference, each from a single StartJobs call; an
    # uncertain request has at most one.
    references = {r.handle.reference for r in results if r.handle}
    uncertain = {r.error.reference for r in results if isinstance(r.error, UncertainStartError)}
    by_reference = stats["jobs"]["by_reference"]
    assert {k: v for k, v in by_reference.items() if k in references} == dict.fromkeys(
        references, 1
    )
    assert set(by_reference) <= references | uncertain
    assert stats["jobs"]["duplicate_references"] == {}
    # Some starts were reconciled by Reference rather than posted again.
    assert any(r.attempts > 1 for r in results)


async def test_progress_counts_add_up_per_folder(start_simulator: Callable[..., Any]) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    requests = [
        JobRequest(process="Echo", folder=FOLDERS[i % 3], inputs={"i": i}) for i in range(30)
    ]
    requests.append(JobRequest(process="Echo", folder="Nowhere"))
    snapshots: list[Progress] = []

    def on_progress(progress: Progress) -> None:
        assert all(n >= 0 for n in progress.by_state.values()), progress
        assert sum(progress.by_state.values()) <= progress.total
        snapshots.append(copy.deepcopy(progress))

    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        results = await orch.run_jobs(requests, hooks=Hooks(on_progress=on_progress))

    final = snapshots[-1]
    assert final.total == len(results) == 31
    assert final.finished == 31
    assert +final.by_state == {"successful": 30, "not_started": 1}
    for folder in FOLDERS[:3]:
        assert +final.by_folder[folder] == {"successful": 10}
        assert final.folder_finished(folder) == 10
    assert +final.by_folder["Nowhere"] == {"not_started": 1}
    seen_states = {state for p in snapshots for state, n in p.by_state.items() if n > 0}
    assert {"queued", "Pending", "successful"} <= seen_states


async def test_unknown_folders_and_processes_are_not_started_and_others_are_unaffected(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    requests = [
        JobRequest(process="Echo", folder="Shared", inputs={"ok": 1}),
        JobRequest(process="Echo", folder="Finanse", inputs={"typo": "folder"}),
        JobRequest(process="Ehco", folder="HR", inputs={"typo": "process"}),
        JobRequest(process="Echo", folder="Finance", inputs={"ok": 2}),
    ]
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        results = await orch.run_jobs(requests)

    outcomes = [r.outcome for r in results]
    assert outcomes == [
        Outcome.SUCCESSFUL,
        Outcome.NOT_STARTED,
        Outcome.NOT_STARTED,
        Outcome.SUCCESSFUL,
    ]
    assert isinstance(results[1].error, FolderNotFoundError)
    assert "Finance" in str(results[1].error)  # the close match is offered
    assert isinstance(results[2].error, ProcessNotFoundError)
    assert "Echo" in str(results[2].error)
    assert all(r.handle is None and r.attempts == 0 for r in results[1:3])
    # No StartJobs was sent for them: two calls, two jobs, both good ones.
    assert requests_to(sim, START_JOBS) == 2
    assert sorted(j.effective_inputs.get("ok") for j in engine_jobs(sim)) == [1, 2]


async def test_jobs_count_gives_one_result_per_job(start_simulator: Callable[..., Any]) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    requests = [
        JobRequest(process="Echo", folder="Shared", inputs={"a": 1}, jobs_count=3),
        JobRequest(process="Echo", folder="HR", inputs={"b": 2}),
        JobRequest(process="Nope", folder="HR", jobs_count=2),
    ]
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        results = await orch.run_jobs(requests)

    assert [r.index for r in results] == [0, 0, 0, 1, 2, 2]
    assert [r.outcome for r in results[:4]] == [Outcome.SUCCESSFUL] * 4
    assert len({r.job_id for r in results[:3]}) == 3
    assert all(r.outputs == {"a": 1} for r in results[:3])
    assert [r.outcome for r in results[4:]] == [Outcome.NOT_STARTED] * 2
    stats = sim.simulator.stats()
    assert stats["jobs"]["created"] == 4
    assert requests_to(sim, START_JOBS) == 2  # one call for all three


async def test_duplicate_references_are_refused_before_anything_is_sent(
    start_simulator: Callable[..., Any],
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    requests = [
        JobRequest(process="Echo", folder="Shared", reference="same"),
        JobRequest(process="Echo", folder="HR", reference="same"),
    ]
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        with pytest.raises(
            InvalidRequestError, match=r"requests\[1\]: reference 'same' is also requests\[0\]'s"
        ):
            await orch.run_jobs(requests)
        # The same through the iterator, which closes its result streams on the
        # way out (an unclosed one would be reported when collected).
        with pytest.raises(
            InvalidRequestError, match=r"requests\[1\]: reference 'same' is also requests\[0\]'s"
        ):
            async with contextlib.aclosing(orch.iter_jobs(requests)) as results:
                async for _ in results:
                    pass
        gc.collect()
    assert sim.simulator.stats()["jobs"]["created"] == 0
