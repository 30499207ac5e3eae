"""Embedded in a service that logs with the standard library (uvicorn, FastAPI):
until structlog is configured, the library's warnings go to ``logging`` (or, with
no logging set up at all, to stderr), nothing below warning is logged, and
nothing is ever written to stdout."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import structlog
from test_dispatcher_support import fast_poll, fast_settings, scenario

from async_orch import Hooks, JobHandle, JobRequest, OrchestratorClient, Outcome


async def run_and_cancel_a_slow_job(start_simulator: Callable[..., Any]) -> JobHandle:
    """Start a job that never ends, then cancel the batch: the library warns
    ``async_orch.jobs_left_running``. Also starts a request for an unknown folder,
    which is logged at info (``async_orch.start_failed``)."""
    sim = await start_simulator(scenario(), time_scale=50.0)
    handles: list[JobHandle] = []

    def started(index: int, handle: JobHandle) -> None:
        handles.append(handle)
        scope.cancel()

    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        results = await orch.run_jobs([JobRequest(process="Echo", folder="Nowhere")])
        assert [r.outcome for r in results] == [Outcome.NOT_STARTED]
        with anyio.CancelScope() as scope:
            await orch.run_jobs(
                [JobRequest(process="Slow", folder="HR")], hooks=Hooks(on_started=started)
            )
    assert scope.cancelled_caught
    return handles[0]


async def test_a_warning_reaches_stdlib_logging_as_key_values_and_nothing_reaches_stdout(
    start_simulator: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert not structlog.is_configured()
    caplog.set_level(logging.DEBUG)
    handle = await run_and_cancel_a_slow_job(start_simulator)

    ours = [r for r in caplog.records if r.name.startswith("async_orch")]
    assert [(r.name, r.levelname) for r in ours] == [("async_orch.cancellation", "WARNING")]
    message = ours[0].getMessage()
    assert message.startswith("async_orch.jobs_left_running reason='CancelledError' count=1 ")
    assert f"job_ids=[{handle.job_id}]" in message
    assert f"references=[{handle.reference!r}]" in message
    assert "\n" not in message
    assert capsys.readouterr().out == ""


async def test_once_structlog_is_configured_every_event_goes_there_and_none_to_logging(
    start_simulator: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        await run_and_cancel_a_slow_job(start_simulator)
    names = {(e["log_level"], e["event"]) for e in events}
    assert ("info", "async_orch.start_failed") in names
    assert ("warning", "async_orch.jobs_left_running") in names
    assert [r for r in caplog.records if r.name.startswith("async_orch")] == []


@pytest.mark.slow
def test_with_no_logging_set_up_at_all_a_warning_is_printed_to_stderr() -> None:
    # A fresh interpreter: pytest's own logging handlers would hide Python's
    # last-resort handler, which is what an application without logging gets.
    code = (
        "from async_orch._logs import get_logger\n"
        "log = get_logger('async_orch.example')\n"
        "log.info('async_orch.not_shown', n=1)\n"
        "log.warning('async_orch.shown', count=2, folder='Finance/Invoices', ids=[1, 2])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == ""
    assert done.stderr == "async_orch.shown count=2 folder='Finance/Invoices' ids=[1, 2]\n"
