"""A Reference used before names an older job: a lookup that finds it does not
adopt it (an attack review: a resume reported the old jobs' ids and outputs as
the new requests' and never ran the new work). Pure rules without an event
loop, then a resume against the simulator over real sockets."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from cli_harness import simulator_jobs
from conftest import SimClient
from test_dispatcher_support import START_JOBS, fast_poll, fast_settings, requests_to, scenario

from async_orch import (
    JobRequest,
    NotStartedError,
    OrchestratorClient,
    Outcome,
    ReferenceInUseError,
    RequestTimeoutError,
    RetryPolicy,
)
from async_orch._journal import Journal
from async_orch._journaled import records_for, target_of
from async_orch._models import Job
from async_orch._retries import (
    Adopted,
    BatchRetries,
    Failed,
    LookUp,
    Post,
    StartProtocol,
    Wait,
    sort_found_jobs,
)

BEGAN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def job(job_id: int, *, created: datetime | None, process: str | None = "Echo") -> Job:
    row: dict[str, Any] = {"Id": job_id, "State": "Successful", "Reference": "r"}
    if created is not None:
        row["CreationTime"] = created.isoformat().replace("+00:00", "Z")
    if process is not None:
        row["ReleaseName"] = process
    return Job.from_api(row)


def test_a_job_created_well_before_the_batch_is_not_the_batchs() -> None:
    old = job(1, created=BEGAN - timedelta(days=1))
    skewed = job(2, created=BEGAN - timedelta(seconds=20))  # inside the clock tolerance
    new = job(3, created=BEGAN + timedelta(seconds=2))
    found = sort_found_jobs([old, skewed, new], not_before=BEGAN, process="Echo")
    assert found.ours == [skewed, new]
    assert [j for j, _ in found.foreign] == [old]
    assert found.refusal("r", "HR") is None  # one of ours is there: adopt it

    only_old = sort_found_jobs([old], not_before=BEGAN, process="Echo")
    error = only_old.refusal("r", "HR")
    assert isinstance(error, ReferenceInUseError) and isinstance(error, NotStartedError)
    assert (error.reference, error.job_id, error.folder) == ("r", 1, "HR")
    assert "Reference 'r' already names job 1 in folder 'HR'" in str(error)
    assert "created 2025-02-28T12:00:00+00:00, before this batch began" in str(error)
    assert "give it a new reference" in str(error)


def test_a_job_of_another_process_is_not_the_batchs_and_missing_fields_do_not_count() -> None:
    other = job(1, created=BEGAN, process="Other")
    found = sort_found_jobs([other], not_before=BEGAN, process="echo")
    assert found.ours == [] and "a job of process 'Other', not 'echo'" in found.foreign[0][1]
    assert sort_found_jobs([job(2, created=BEGAN, process="ECHO")], not_before=BEGAN,
                           process="Echo").ours  # fmt: skip
    bare = job(3, created=None, process=None)
    assert sort_found_jobs([bare], not_before=BEGAN, process="Echo").ours == [bare]
    assert sort_found_jobs([job(4, created=BEGAN - timedelta(days=9))], not_before=None,
                           process=None).ours  # fmt: skip


def _ambiguous_start(now: float = 0.0) -> StartProtocol:
    p = StartProtocol(
        "r", folder="HR", max_posts=4, window=10.0, policy=RetryPolicy(),
        batch=BatchRetries(100), process="Echo", first_post_at=BEGAN,
    )  # fmt: skip
    assert isinstance(p.next_step(now), Post)
    p.post_failed(RequestTimeoutError("no answer", method="POST", url="u"), now)
    return p


def test_an_ambiguous_start_that_finds_only_an_older_job_is_refused_not_adopted() -> None:
    p = _ambiguous_start()
    old = job(1, created=BEGAN - timedelta(hours=3))
    assert isinstance(p.next_step(0.0), LookUp)
    p.looked_up([old], sent_at=0.0)  # within the window: ours may still come
    assert p.next_step(1.0) == Wait(10.0)
    assert isinstance(p.next_step(10.0), LookUp)
    p.looked_up([old], sent_at=10.0)
    step = p.next_step(10.0)
    assert isinstance(step, Failed) and isinstance(step.error, ReferenceInUseError)
    assert step.error.job_id == 1
    assert p.posts == 1  # never posted again


def test_an_ambiguous_start_adopts_its_own_job_beside_an_older_one() -> None:
    p = _ambiguous_start()
    old, mine = job(1, created=BEGAN - timedelta(hours=3)), job(2, created=BEGAN)
    assert isinstance(p.next_step(0.0), LookUp)
    p.looked_up([old, mine], sent_at=0.0)
    assert p.next_step(0.0) == Adopted([mine])


async def test_a_resume_does_not_adopt_older_jobs_that_share_a_reference(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    """The review's repro: References oldref-1..3 ran before; a journaled batch of
    newref-0 + oldref-1..3 died before any write; the resume starts newref-0 and
    reports oldref-1..3 as not started (ReferenceInUseError), never adopting the
    old jobs nor posting them."""
    # Simulated time an hour behind this machine's clock: the old jobs are old.
    sim = await start_simulator(scenario(), time_scale=50.0, wall_clock=lambda: time.time() - 3600)
    settings = fast_settings(sim)
    async with aiohttp.ClientSession() as http:
        client = SimClient(sim, http)
        old_ids = [
            (await client.start("HR", "Echo", Reference=f"oldref-{i}"))[0]["Id"] for i in (1, 2, 3)
        ]
    async with OrchestratorClient(settings, poll=fast_poll()) as orch:
        store = Journal.create(
            tmp_path / "store.sqlite", target=target_of(settings), batch_id="b", requests=[]
        )
        with store:
            requests = [
                JobRequest(process="Echo", folder="HR", inputs={"i": i}, reference=reference)
                for i, reference in enumerate(["newref-0", "oldref-1", "oldref-2", "oldref-3"])
            ]
            store.record_requests(records_for(requests, "b"))
            store.record_event("finished", interrupted=True)  # killed: the window is waited
            results = await orch.resume_jobs(store)
            rows = {r.index: r for r in store.requests()}

    assert [r.index for r in results] == [0, 1, 2, 3]
    assert results[0].outcome is Outcome.SUCCESSFUL and results[0].outputs == {"i": 0}
    for result, old_id in zip(results[1:], old_ids, strict=True):
        assert result.outcome is Outcome.NOT_STARTED and result.job_id is None
        assert isinstance(result.error, ReferenceInUseError)
        assert result.error.job_id == old_id
        assert rows[result.index].outcome == "not_started"
        assert f"already names job {old_id}" in (rows[result.index].info or "")
    assert simulator_jobs(sim)["by_reference"] == {
        "newref-0": 1, "oldref-1": 1, "oldref-2": 1, "oldref-3": 1,
    }  # fmt: skip
    assert requests_to(sim, START_JOBS) == 4  # three old ones, then newref-0 alone
