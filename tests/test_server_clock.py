"""Jobs found by Reference are judged on the server's clock (its Date headers), so
this machine's clock running ahead does not make the batch's own job look older
than the batch. Pure ServerClock rules without an event loop, then a batch over
real sockets whose local clock is 10 minutes ahead of the simulator's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from cli_harness import simulator_jobs
from conftest import SimClient
from test_dispatcher_support import engine_jobs, fast_poll, fast_settings, scenario

from async_orch import JobRequest, Outcome, ReferenceInUseError
from async_orch._dispatcher import Dispatcher
from async_orch._journal import Journal
from async_orch._journaled import records_for, resume_plan, target_of
from async_orch._models import Job
from async_orch._resources import OrchestratorAPI
from async_orch._retries import ADOPTION_CLOCK_TOLERANCE, sort_found_jobs
from async_orch._server_clock import UNKNOWN_OFFSET_MARGIN, ServerClock
from async_orch._transport import Transport

LOCAL = datetime(2026, 12, 4, 21, 0, 0, tzinfo=UTC)


def reads(moment: datetime) -> Callable[[], datetime]:
    """A clock that reads ``moment``."""
    return lambda: moment


def test_the_offset_is_the_servers_date_less_the_local_time_at_receipt() -> None:
    clock = ServerClock()
    assert clock.offset is None and clock.to_server(LOCAL) == LOCAL  # no Date yet: local
    clock.observe("Fri, 04 Dec 2026 20:50:00 GMT", reads(LOCAL))  # the server 10 minutes behind
    assert clock.offset == timedelta(minutes=-10)
    assert clock.to_server(LOCAL + timedelta(hours=1)) == datetime(2026, 12, 4, 21, 50, tzinfo=UTC)


def test_garbage_and_missing_headers_are_ignored() -> None:
    clock = ServerClock()
    for header in (None, "", "yesterday", "Fri, 99 Foo 2026 25:61:00 GMT", "\x00"):
        clock.observe(header, reads(LOCAL))
    assert clock.offset is None
    clock.observe("Fri, 04 Dec 2026 21:00:30 GMT", reads(LOCAL))
    clock.observe("not a date", reads(LOCAL))
    assert clock.offset == timedelta(seconds=30)


def test_the_offset_is_a_median_that_one_wrong_date_does_not_move() -> None:
    clock = ServerClock(samples=5)
    for second in range(4):
        now = LOCAL + timedelta(seconds=second)
        clock.observe(f"Fri, 04 Dec 2026 21:00:{second + 5:02d} GMT", reads(now))  # 5 s ahead
    clock.observe(
        "Fri, 04 Dec 2026 23:00:00 GMT", reads(LOCAL + timedelta(seconds=4))
    )  # a stray one
    assert clock.offset == timedelta(seconds=5)
    # A repeat of the last header (the same second) adds no sample.
    clock.observe("Fri, 04 Dec 2026 23:00:00 GMT", reads(LOCAL + timedelta(seconds=4)))
    clock.observe("Fri, 04 Dec 2026 23:00:00 GMT", reads(LOCAL + timedelta(seconds=4)))
    assert clock.offset == timedelta(seconds=5)


def test_a_step_of_the_local_clock_is_followed_within_a_few_samples() -> None:
    clock = ServerClock(samples=5)
    for second in range(5):
        clock.observe(
            f"Fri, 04 Dec 2026 21:00:{second:02d} GMT", reads(LOCAL + timedelta(seconds=second))
        )
    assert clock.offset == timedelta(0)
    stepped = LOCAL + timedelta(minutes=10)  # NTP stepped this machine 10 minutes ahead
    for second in range(5, 8):
        clock.observe(
            f"Fri, 04 Dec 2026 21:00:{second:02d} GMT", reads(stepped + timedelta(seconds=second))
        )
    assert clock.offset == timedelta(minutes=-10)


def test_a_date_without_a_zone_is_read_as_utc() -> None:
    clock = ServerClock()
    clock.observe("Fri, 04 Dec 2026 21:00:00 -0000", reads(LOCAL))
    assert clock.offset == timedelta(0)


async def _run_with_local_clock_ahead(
    start_simulator: Callable[..., Any], *, convert: bool
) -> tuple[Any, Any, Transport]:
    """One request, its StartJobs answer always lost (the job is created), from a
    client whose clock is 10 minutes ahead of the simulator's (time_scale 1: its
    CreationTime is real time, as its Date header is)."""
    sim = await start_simulator(scenario(echo=(0.05, 0.1), pickup_delay=0.05), time_scale=1.0)
    sim.simulator.set_faults({"ambiguous_start_rate": 1.0, "ambiguous_start_mode": "drop"})
    settings = fast_settings(sim)

    def ahead() -> datetime:
        return datetime.now(UTC) + timedelta(minutes=10)

    async with aiohttp.ClientSession() as session:
        transport = Transport(settings, session=session, wall_clock=ahead)
        dispatcher = Dispatcher(
            OrchestratorAPI(transport),
            poll=fast_poll(),
            retry=settings.retry,
            # convert=False: the code before this change (this machine's clock).
            server_now=transport.server_now if convert else ahead,
        )
        (result,) = await dispatcher.run(
            [JobRequest(process="Echo", folder="HR", inputs={"i": 1}, reference="mine-1")],
            timeout=60,
        )
    return sim, result, transport


async def test_a_lost_start_is_adopted_when_this_machines_clock_is_ahead(
    start_simulator: Callable[..., Any],
) -> None:
    sim, result, transport = await _run_with_local_clock_ahead(start_simulator, convert=True)
    offset = transport.server_clock.offset
    assert offset is not None and abs(offset + timedelta(minutes=10)) < timedelta(seconds=5)
    assert result.outcome is Outcome.SUCCESSFUL and result.outputs == {"i": 1}
    assert simulator_jobs(sim)["by_reference"] == {"mine-1": 1}
    assert sim.simulator.stats()["faults"]["ambiguous_start"] == 1


async def test_on_this_machines_clock_the_own_job_is_refused_but_named(
    start_simulator: Callable[..., Any],
) -> None:
    """What the conversion fixes (and what happens when no Date ever came): the
    batch's own job looks 10 minutes older than the batch. It is refused, yet not
    forgotten: the error and the row's info name its id."""
    sim, result, _ = await _run_with_local_clock_ahead(start_simulator, convert=False)
    assert result.outcome is Outcome.NOT_STARTED and result.job_id is None
    assert isinstance(result.error, ReferenceInUseError)
    assert simulator_jobs(sim)["by_reference"] == {"mine-1": 1}  # never posted again
    (job_id,) = [j.id for j in engine_jobs(sim)]
    assert result.error.job_id == job_id
    assert f"already names job {job_id}" in (result.to_dict()["info"] or "")


async def _resume_with_local_clock_ahead(
    start_simulator: Callable[..., Any], tmp_path: Path, *, convert: bool
) -> tuple[list[Any], list[Any], list[Any], Journal, int]:
    """A journal created on a clock 10 minutes ahead, whose run died after its
    StartJobs reached the server; resumed on that clock. Its job was created at
    the simulator's (real) time, 10 minutes before the journal says it began."""
    sim = await start_simulator(scenario(), time_scale=1.0)
    settings = fast_settings(sim)

    def ahead() -> datetime:
        return datetime.now(UTC) + timedelta(minutes=10)

    store = Journal.create(
        tmp_path / "store.sqlite", target=target_of(settings), batch_id="b", requests=[],
        clock=ahead,
    )  # fmt: skip
    request = JobRequest(process="Echo", folder="HR", inputs={"i": 1}, reference="mine-1")
    store.record_requests(records_for([request], "b"))
    store.record_event("finished", interrupted=True)
    async with aiohttp.ClientSession() as session:
        (job,) = await SimClient(sim, session).start("HR", "Echo", Reference="mine-1")
        transport = Transport(settings, session=session, wall_clock=ahead)
        start, reattach, refused = await resume_plan(
            OrchestratorAPI(transport),
            store,
            window_ends=0.0,  # the window is over: nothing is waited for
            to_server=transport.server_clock.to_server if convert else lambda local: local,
        )
    return start, reattach, refused, store, int(job["Id"])


async def test_a_resume_adopts_its_job_when_this_machines_clock_is_ahead(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    start, reattach, refused, store, job_id = await _resume_with_local_clock_ahead(
        start_simulator, tmp_path, convert=True
    )
    with store:
        assert (start, refused) == ([], [])
        assert [j.job_id for j in reattach] == [job_id]


async def test_a_resume_on_this_machines_clock_refuses_its_job_but_names_it(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    start, reattach, refused, store, job_id = await _resume_with_local_clock_ahead(
        start_simulator, tmp_path, convert=False
    )
    with store:
        assert (start, reattach) == ([], [])
        ((record, error),) = refused
        assert record.reference == "mine-1"
        assert isinstance(error, ReferenceInUseError) and error.job_id == job_id
        (row,) = store.requests()
        assert row.outcome == "not_started" and f"already names job {job_id}" in (row.info or "")


def test_before_any_date_the_server_may_be_minutes_behind_after_one_it_is_known() -> None:
    clock = ServerClock()
    assert clock.earliest_server_time(LOCAL) == LOCAL - UNKNOWN_OFFSET_MARGIN
    clock.observe("Fri, 04 Dec 2026 20:50:00 GMT", reads(LOCAL))  # the server 10 minutes behind
    assert clock.earliest_server_time(LOCAL) == LOCAL - timedelta(minutes=10)


def test_a_reference_reused_a_minute_before_the_batch_is_refused_once_the_clock_is_known() -> None:
    """The verification run's case: old jobs created ~35 s before the journal were
    adopted while the margin was 5 minutes of assumed skew; with the offset measured
    the margin is ADOPTION_CLOCK_TOLERANCE."""
    clock = ServerClock()
    clock.observe("Fri, 04 Dec 2026 21:00:00 GMT", reads(LOCAL))  # in step with this machine
    began = clock.earliest_server_time(LOCAL)
    old = Job.from_api({"Id": 1, "State": "Successful", "Reference": "r", "ReleaseName": "Echo",
                        "CreationTime": "2026-12-04T20:59:25Z"})  # fmt: skip
    assert sort_found_jobs([old], not_before=began, process="Echo").ours == []
    assert timedelta(seconds=35) > ADOPTION_CLOCK_TOLERANCE
