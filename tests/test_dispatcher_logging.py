"""The dispatcher stays quiet unless the application configured structlog; until then
its warnings go to the standard library's logging, never to structlog's stdout printer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import structlog
from fakes import FakeAPI

from async_orch._dispatcher import Dispatcher
from async_orch._jobs import JobRequest, Outcome
from async_orch._options import Hooks
from async_orch._planner import PollPolicy


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **values: self.events.append((level, event))


@pytest.fixture
def unconfigured_structlog(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """structlog as an application that never configured it leaves it; every
    logger call is recorded instead of printed."""
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    structlog.reset_defaults()
    recorder = Recorder()
    monkeypatch.setattr(structlog, "get_logger", lambda *args, **kwargs: recorder)
    try:
        yield recorder
    finally:
        if was_configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()


async def test_nothing_below_warning_is_logged_unless_structlog_is_configured(
    unconfigured_structlog: Recorder,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG, logger="async_orch")
    api = FakeAPI(finish_on_start=True)
    dispatcher = Dispatcher(api, poll=PollPolicy(min_interval=0.01))
    results = await dispatcher.run(
        [
            JobRequest(process="Echo", folder="Shared", inputs={"i": 1}),
            JobRequest(process="Echo", folder="Nowhere"),  # logs start_failed (info)
        ]
    )
    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL, Outcome.NOT_STARTED]
    assert caplog.records == []

    # A warning still gets through, to stdlib logging: jobs left running after a cancellation.
    slow = FakeAPI()
    dispatcher = Dispatcher(slow, poll=PollPolicy(min_interval=0.01))
    with anyio.CancelScope() as scope:
        await dispatcher.run(
            [JobRequest(process="Echo", folder="Shared")],
            hooks=Hooks(on_started=lambda index, handle: scope.cancel()),
        )
    assert [(r.name, r.levelno) for r in caplog.records] == [
        ("async_orch.cancellation", logging.WARNING)
    ]
    assert caplog.records[0].getMessage().startswith("async_orch.jobs_left_running ")
    assert unconfigured_structlog.events == []  # structlog's default would print to stdout
    assert capsys.readouterr().out == ""
