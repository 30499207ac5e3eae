"""The pure job engine: life cycle, capacity, priority, stops, outputs, reproducibility."""

from __future__ import annotations

import json

import pytest

from async_orch._states import JobState
from async_orch.simulator.engine import Job, JobEngine, StartOrder, UnknownJobError
from async_orch.simulator.outputs import FAULT_MESSAGES, compute_outputs
from async_orch.simulator.scenario import (
    Duration,
    EngineTimings,
    FolderSpec,
    ProcessSpec,
    TenantSpec,
)
from async_orch.simulator.world import World, build_world

T0 = 1_700_000_000.0
TIMINGS = EngineTimings(pickup_delay=2.0, soft_stop_delay=5.0, kill_delay=1.0)


def make_world(*, capacity: int = 2, fault_rate: float = 0.0, outputs: str = "echo") -> World:
    processes = (
        ProcessSpec(
            name="Fixed",
            duration=Duration(low=10, high=10),
            outputs=outputs,
            fault_rate=fault_rate,
            input_arguments='{"Default": 1}',
        ),
        ProcessSpec(name="Random", duration=Duration(low=20, high=90), fault_rate=fault_rate),
    )
    tenant = TenantSpec(
        organization="org",
        name="T",
        tenancy_name="T",
        folders=(
            FolderSpec(path="A", capacity=capacity, robots=("R1", "R2"), processes=processes),
            FolderSpec(path="B", capacity=1, robots=("R3",), processes=processes),
        ),
    )
    return build_world(tenant)


def make_engine(world: World | None = None, seed: str = "s") -> JobEngine:
    return JobEngine(world or make_world(), timings=TIMINGS, seed=seed, first_job_id=1000)


def order(
    world: World, *, folder: str = "A", process: str = "Fixed", count: int = 1, **kwargs: object
) -> StartOrder:
    f = world.folder_by_path(folder)
    assert f is not None
    release = f.release_by_name(process)
    assert release is not None
    return StartOrder(folder=f, release=release, robots=(None,) * count, **kwargs)  # type: ignore[arg-type]


def state_of(job: Job) -> JobState:
    """The job's state, read through a call so type narrowing does not stick."""
    return job.state


def states(engine: JobEngine, jobs: list[int]) -> list[JobState]:
    result = []
    for job_id in jobs:
        job = engine.job(job_id)
        assert job is not None
        result.append(job.state)
    return result


def test_job_goes_pending_running_successful_at_the_planned_times() -> None:
    engine = make_engine()
    (job,) = engine.start_jobs(T0, order(engine.world, input_arguments='{"x": 1}'))
    assert state_of(job) is JobState.PENDING and job.id == 1000
    assert [job.start_time] == [None] and job.robot is not None  # slot given, not started

    engine.advance(T0 + 1.9)
    assert state_of(job) is JobState.PENDING
    engine.advance(T0 + 2.0)
    assert state_of(job) is JobState.RUNNING and job.start_time == T0 + 2.0
    assert (job.info, job.output_arguments) == (None, None)

    engine.advance(T0 + 11.99)
    assert state_of(job) is JobState.RUNNING
    engine.advance(T0 + 12.0)
    assert state_of(job) is JobState.SUCCESSFUL
    assert job.end_time == T0 + 12.0 == job.last_modification_time
    assert job.info == "Job completed"
    # Echo returns the effective inputs: release defaults overlaid with the job's.
    assert json.loads(job.output_arguments or "") == {"Default": 1, "x": 1}


def test_capacity_keeps_extra_jobs_pending_until_a_slot_frees_fifo() -> None:
    engine = make_engine()
    jobs = [j.id for j in engine.start_jobs(T0, order(engine.world, count=5))]
    engine.advance(T0 + 2)
    assert states(engine, jobs) == [JobState.RUNNING] * 2 + [JobState.PENDING] * 3
    assert engine.running(engine.world.folders[0].id) == 2
    # The first two end at T0+12; the next two get their slots then and start at T0+14.
    engine.advance(T0 + 12)
    assert states(engine, jobs) == [JobState.SUCCESSFUL] * 2 + [JobState.PENDING] * 3
    engine.advance(T0 + 14)
    assert states(engine, jobs)[2:] == [JobState.RUNNING, JobState.RUNNING, JobState.PENDING]
    engine.advance(T0 + 36)
    assert states(engine, jobs) == [JobState.SUCCESSFUL] * 5
    assert engine.running(engine.world.folders[0].id) == 0


def test_folders_have_separate_capacity() -> None:
    engine = make_engine()
    a = engine.start_jobs(T0, order(engine.world, folder="A", count=2))
    b = engine.start_jobs(T0, order(engine.world, folder="B", count=2))
    engine.advance(T0 + 2)
    assert [j.state for j in a] == [JobState.RUNNING] * 2
    assert [j.state for j in b] == [JobState.RUNNING, JobState.PENDING]


def test_higher_priority_overtakes_waiting_jobs_but_not_running_ones() -> None:
    engine = make_engine(make_world(capacity=1))
    first = engine.start_jobs(T0, order(engine.world))[0]
    low = engine.start_jobs(T0, order(engine.world, job_priority="Low", specific_priority=15))[0]
    high = engine.start_jobs(T0, order(engine.world, job_priority="High", specific_priority=85))[0]
    engine.advance(T0 + 12)  # the first ends; the high one takes the slot
    assert first.state is JobState.SUCCESSFUL
    engine.advance(T0 + 14)
    assert (high.state, low.state) == (JobState.RUNNING, JobState.PENDING)


def test_round_robin_spreads_jobs_over_the_folder_robots() -> None:
    engine = make_engine()
    jobs = engine.start_jobs(T0, order(engine.world, count=2))
    assert {j.robot.name for j in jobs if j.robot} == {"R1", "R2"}


def test_soft_stop_of_a_running_job_goes_through_stopping() -> None:
    engine = make_engine()
    (job,) = engine.start_jobs(T0, order(engine.world))
    engine.advance(T0 + 3)
    engine.stop_jobs(T0 + 3, job.folder.id, [job.id], "SoftStop")
    assert state_of(job) is JobState.STOPPING and job.stop_strategy == "SoftStop"
    engine.advance(T0 + 7.9)
    assert state_of(job) is JobState.STOPPING
    engine.advance(T0 + 8)  # soft_stop_delay 5, and the natural end (T0+12) never comes
    assert state_of(job) is JobState.STOPPED and job.end_time == T0 + 8
    assert job.output_arguments is None and job.info
    engine.advance(T0 + 100)
    assert state_of(job) is JobState.STOPPED


def test_kill_goes_through_terminating_and_kill_overrides_soft_stop() -> None:
    engine = make_engine()
    a, b = engine.start_jobs(T0, order(engine.world, count=2))
    engine.advance(T0 + 3)
    engine.stop_jobs(T0 + 3, a.folder.id, [a.id], "Kill")
    assert a.state is JobState.TERMINATING
    engine.stop_jobs(T0 + 3, b.folder.id, [b.id], "SoftStop")
    engine.stop_jobs(T0 + 3.5, b.folder.id, [b.id], "Kill")
    assert b.state is JobState.TERMINATING
    engine.advance(T0 + 4.5)
    assert (a.state, b.state) == (JobState.STOPPED, JobState.STOPPED)
    assert b.end_time == T0 + 4.5


def test_stopping_a_pending_job_ends_it_at_once_and_frees_its_slot() -> None:
    engine = make_engine(make_world(capacity=1))
    first, second = engine.start_jobs(T0, order(engine.world, count=2))
    engine.stop_jobs(T0 + 1, first.folder.id, [first.id], "SoftStop")
    assert first.state is JobState.STOPPED and first.start_time is None
    assert first.end_time == T0 + 1
    engine.advance(T0 + 3)  # the freed slot went to the second job at T0+1
    assert second.state is JobState.RUNNING and second.start_time == T0 + 3


def test_stop_checks_every_id_before_changing_anything() -> None:
    engine = make_engine()
    a = engine.start_jobs(T0, order(engine.world, folder="A"))[0]
    b = engine.start_jobs(T0, order(engine.world, folder="B"))[0]
    with pytest.raises(UnknownJobError) as info:
        engine.stop_jobs(T0, a.folder.id, [a.id, b.id], "Kill")  # b is in another folder
    assert info.value.job_id == b.id
    assert a.state is JobState.PENDING
    with pytest.raises(UnknownJobError):
        engine.stop_jobs(T0, a.folder.id, [999], "Kill")
    with pytest.raises(ValueError, match="strategy"):
        engine.stop_jobs(T0, a.folder.id, [a.id], "Pause")


def test_stopping_a_finished_job_is_ignored() -> None:
    engine = make_engine()
    (job,) = engine.start_jobs(T0, order(engine.world))
    engine.advance(T0 + 20)
    engine.stop_jobs(T0 + 20, job.folder.id, [job.id], "Kill")
    assert job.state is JobState.SUCCESSFUL and job.stop_strategy is None


def test_faulted_jobs_carry_an_execution_error_and_no_outputs() -> None:
    engine = make_engine(make_world(fault_rate=1.0))
    (job,) = engine.start_jobs(T0, order(engine.world))
    engine.advance(T0 + 12)
    assert job.state is JobState.FAULTED
    assert job.info in FAULT_MESSAGES and job.info.startswith("Execution error : ")
    assert job.output_arguments is None


def test_random_durations_stay_in_range_and_outcomes_follow_the_fault_rate() -> None:
    engine = make_engine(make_world(fault_rate=0.5, capacity=1000))
    jobs = engine.start_jobs(T0, order(engine.world, process="Random", count=400))
    assert all(20 <= j.duration <= 90 for j in jobs)
    engine.advance(T0 + 200)
    faulted = sum(j.state is JobState.FAULTED for j in jobs)
    assert {j.state for j in jobs} == {JobState.FAULTED, JobState.SUCCESSFUL}
    assert 120 < faulted < 280  # binomial(400, 0.5): far outside 6 sigma otherwise


def test_same_seed_and_requests_give_the_same_jobs() -> None:
    def run(seed: str) -> list[tuple[str, float, str, str | None]]:
        engine = make_engine(make_world(fault_rate=0.3), seed=seed)
        engine.start_jobs(T0, order(engine.world, process="Random", count=20))
        engine.start_jobs(T0 + 5, order(engine.world, folder="B", count=3))
        engine.advance(T0 + 1000)
        return [(j.key, j.duration, j.state.value, j.output_arguments) for j in engine.jobs()]

    assert run("a") == run("a")
    assert run("a") != run("b")


def test_each_call_shares_a_batch_key_and_references_are_counted_per_call() -> None:
    engine = make_engine()
    first = engine.start_jobs(T0, order(engine.world, count=2, reference="r1"))
    second = engine.start_jobs(T0, order(engine.world, reference="r1"))
    engine.start_jobs(T0, order(engine.world, reference="r2"))
    engine.start_jobs(T0, order(engine.world))
    assert first[0].batch_execution_key == first[1].batch_execution_key
    assert first[0].batch_execution_key != second[0].batch_execution_key
    assert engine.reference_counts() == {"r1": 3, "r2": 1}
    assert engine.reference_calls() == {"r1": 2, "r2": 1}
    assert engine.state_counts() == {"Pending": 5}
    given = "0b9f2b9c-8f0e-4b43-9d59-5d2a6c7a1e01"
    (job,) = engine.start_jobs(T0, order(engine.world, batch_execution_key=given))
    assert job.batch_execution_key == given
    assert engine.job_by_key(job.key.upper()) is job


def test_outputs_by_kind() -> None:
    inputs = {"Invoices": [{"Amount": 10.5}, {"Amount": 4.25}], "Currency": "USD"}
    assert compute_outputs("echo", inputs, 1) == inputs
    assert compute_outputs("invoice", inputs, 1) == {
        "InvoicesProcessed": 2,
        "Total": 14.75,
        "Currency": "USD",
        "Status": "Completed",
    }
    counted = compute_outputs("invoice", {"InvoiceCount": 7}, 1)
    assert counted["InvoicesProcessed"] == 7 and counted["Currency"] == "EUR"
    assert compute_outputs("invoice", {}, 5) == compute_outputs("invoice", {}, 5)
    assert compute_outputs("summary", {"Items": [1, 2, 3]}, 1)["ItemsProcessed"] == 3
    assert compute_outputs("summary", {"ItemCount": "12"}, 1)["ItemsProcessed"] == 12
    assert compute_outputs("empty", inputs, 1) == {}
