"""Attack h10b: a batch ended by a hook raising as a job ends, token refusals of calls
made one after another, and journal resumes of jobs ended by a refusal. Simulator
over real sockets, faults put in front of it by a middleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from test_attack_h10 import _ECHO_AND_SLOW
from test_dispatcher_support import fast_poll, fast_settings

from async_orch import Abandoned, Hooks, JobRequest, OrchestratorClient, Progress
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
    yielded: list[int] = []

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
                        yielded.append(result.job_id or 0)
    [report] = abandoned
    named = (
        [r.job_id or 0 for r in report.results]
        + yielded
        + [h.job_id for h in (*report.left_running, *report.stopped, *report.ended)]
    )
    assert len(started) == 3
    assert sorted(named) == sorted(started), (report, yielded)
