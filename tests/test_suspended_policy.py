"""The user's choice for jobs Suspended at their deadline (issue 13 point 4):
``StopPolicy(on_suspended=...)`` and ``dispatch --on-suspended``, against the built-in
"realistic" scenario, whose Finance/PurchaseApproval suspends 10 s in until resumed."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from cli_harness import cli_env, run_cli
from test_dispatcher_support import STOP_JOBS, engine_jobs, fast_poll, fast_settings

from async_orch import (
    Hooks,
    InvalidRequestError,
    JobHandle,
    JobRequest,
    JobState,
    OrchestratorClient,
    Outcome,
    StopPolicy,
)
from async_orch.simulator import SimulatorHandle

SCALE = 100.0  # pickup (2 s) takes 20 ms, the suspension comes 0.12 s in
DEADLINE = 1.0  # real seconds: long after the job is seen Suspended
APPROVAL = JobRequest(process="PurchaseApproval", folder="Finance", inputs={"po": 7})


async def test_a_stopped_suspended_job_is_seen_stopped_though_suspended_jobs_are_polled_seldom(
    realistic: SimulatorHandle,
) -> None:
    """A Suspended job is re-checked only every max_interval; once a stop is sent it is
    checked again soon, so it is seen Stopped within the grace (not killed, then
    reported timed out while it had stopped long before)."""
    poll = replace(fast_poll(), max_interval=60.0)  # far longer than the grace
    async with OrchestratorClient(fast_settings(realistic), poll=poll) as orch:
        (result,) = await orch.run_jobs(
            [APPROVAL], timeout=DEADLINE, stop=StopPolicy(on_timeout=True, grace=2.0)
        )
    assert result.outcome is Outcome.STOPPED and result.state is JobState.STOPPED
    assert result.stop_sent == "SoftStop"  # no Kill: the SoftStop was seen to work


@pytest.fixture
async def realistic(start_simulator: Callable[..., Any]) -> SimulatorHandle:
    handle: SimulatorHandle = await start_simulator("realistic", time_scale=SCALE)
    return handle


def stop_calls(sim: SimulatorHandle) -> int:
    return sum(sim.simulator.stats()["requests"].get(STOP_JOBS, {}).values())


def test_the_policy_is_checked_when_built() -> None:
    with pytest.raises(InvalidRequestError, match="on_suspended must be one of 'timeout'"):
        StopPolicy(on_suspended="stop")  # type: ignore[arg-type]


async def test_report_leaves_the_job_suspended_and_gives_it_its_own_outcome(
    realistic: SimulatorHandle,
) -> None:
    async with OrchestratorClient(fast_settings(realistic), poll=fast_poll()) as orch:
        (result,) = await orch.run_jobs(
            [APPROVAL],
            timeout=DEADLINE,
            stop=StopPolicy(on_timeout=True, grace=0.5, on_suspended="report"),
        )
    assert result.outcome is Outcome.SUSPENDED
    assert result.state is JobState.SUSPENDED and result.timed_out
    assert result.stop_sent is None and stop_calls(realistic) == 0
    assert [j.state for j in engine_jobs(realistic)] == [JobState.SUSPENDED]
    # Why, as a timed_out result says which limit passed (new-user review h9).
    assert result.info == (
        "still Suspended when the batch timeout (1 s) passed; left suspended, not stopped, "
        "as on_suspended asks: it may still resume and run"
    )


async def test_timeout_the_default_stops_a_suspended_job_like_any_other(
    realistic: SimulatorHandle,
) -> None:
    async with OrchestratorClient(fast_settings(realistic), poll=fast_poll()) as orch:
        (result,) = await orch.run_jobs(
            [APPROVAL], timeout=DEADLINE, stop=StopPolicy(on_timeout=True, grace=0.5)
        )
    assert result.outcome is Outcome.STOPPED and result.last_state is JobState.STOPPED
    assert stop_calls(realistic) >= 1


@pytest.fixture
def deadline_lifted() -> Iterator[anyio.Event]:
    """Set when the watcher lifts a Suspended job's deadline (its log event)."""
    lifted = anyio.Event()
    saved = structlog.get_config() if structlog.is_configured() else None

    def catch(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        if event.get("event") == "async_orch.suspended_waited_for":
            lifted.set()
        raise structlog.DropEvent

    structlog.configure(processors=[catch])
    try:
        yield lifted
    finally:
        if saved is None:
            structlog.reset_defaults()
        else:
            structlog.configure(**saved)


async def test_wait_lifts_the_deadline_until_the_job_is_resumed_and_ends(
    realistic: SimulatorHandle, deadline_lifted: anyio.Event
) -> None:
    engine = realistic.simulator.tenants[0].engine
    suspended: list[JobHandle] = []

    def on_state(handle: JobHandle, _old: JobState | None, new: JobState) -> None:
        if new is JobState.SUSPENDED:
            suspended.append(handle)

    async def approve_after_the_deadline() -> None:
        await deadline_lifted.wait()
        assert suspended and suspended[0].job_key is not None
        # The approver answers (what ResumeJob does), after the batch's deadline.
        assert engine.resume_job(realistic.simulator.sim_now(), suspended[0].job_key)

    async with (
        OrchestratorClient(fast_settings(realistic), poll=fast_poll()) as orch,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(approve_after_the_deadline)
        (result,) = await orch.run_jobs(
            [APPROVAL],
            timeout=DEADLINE,
            stop=StopPolicy(on_timeout=True, grace=0.5, on_suspended="wait"),
            hooks=Hooks(on_state=on_state),
        )
    assert deadline_lifted.is_set()
    assert result.outcome is Outcome.SUCCESSFUL and result.outputs is not None
    assert result.stop_sent is None and stop_calls(realistic) == 0


@pytest.mark.slow  # starts a process
async def test_dispatch_on_suspended_report(realistic: SimulatorHandle, tmp_path: Path) -> None:
    run = await run_cli(
        "dispatch", "--url", realistic.url, "--process", "PurchaseApproval",
        "--folder", "Finance", "--count", "2", "--timeout", "2", "--stop-on-timeout",
        "--on-suspended", "report", env=cli_env(tmp_path),
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    rows = run.rows()
    assert [(r["outcome"], r["state"]) for r in rows] == [("suspended", "Suspended")] * 2
    assert "2 jobs: suspended 2" in run.stderr
    assert stop_calls(realistic) == 0
