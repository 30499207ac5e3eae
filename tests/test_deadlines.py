"""The deadline escalation as a pure state machine: no event loop, time passed in."""

from __future__ import annotations

import math

from async_orch import JobState, StopPolicy
from async_orch._deadlines import Deadlines, Escalation


def _machine(policy: StopPolicy) -> Deadlines[int]:
    return Deadlines(policy, recheck=1.0)


def _is_empty(step: Escalation[int]) -> bool:
    return not (step.finish or step.soft_stop or step.kill)


def test_a_job_without_a_limit_is_never_due() -> None:
    machine = _machine(StopPolicy(on_timeout=True))
    machine.add(1, now=0.0, deadline=None, state=JobState.PENDING)
    assert machine.next_due == math.inf
    assert _is_empty(machine.step(1e9))


def test_softstop_then_kill_after_the_grace_then_given_up() -> None:
    machine = _machine(StopPolicy(on_timeout=True, grace=30.0))
    machine.add(1, now=0.0, deadline=100.0, state=JobState.PENDING)
    machine.seen(1, JobState.RUNNING, now=50.0)
    assert machine.next_due == 100.0
    assert _is_empty(machine.step(99.9))
    assert machine.step(100.0).soft_stop == [1]
    assert machine.stop_sent(1) == "SoftStop"
    # The workflow ignores the SoftStop: it is still Running when the grace ends.
    machine.seen(1, JobState.RUNNING, now=120.0)
    assert machine.next_due == 130.0
    assert _is_empty(machine.step(129.9))
    assert machine.step(130.0).kill == [1]
    assert machine.stop_sent(1) == "Kill"
    # Still not ended a grace after the Kill: reported timed out, not stopped again.
    assert machine.step(160.0).finish == [1]


def test_a_softstop_not_yet_acted_on_is_followed_by_kill() -> None:
    machine = _machine(StopPolicy(on_timeout=True, grace=5.0))
    machine.add(1, now=0.0, deadline=10.0, state=JobState.RUNNING)
    assert machine.step(10.0).soft_stop == [1]
    machine.seen(1, JobState.STOPPING, now=12.0)
    assert machine.step(15.0).kill == [1]


def test_a_job_that_ends_after_the_softstop_is_finished_at_the_grace_not_killed() -> None:
    machine = _machine(StopPolicy(on_timeout=True, grace=5.0))
    machine.add(1, now=0.0, deadline=10.0, state=JobState.RUNNING)
    machine.step(10.0)
    machine.seen(1, JobState.STOPPED, now=11.0)
    step = machine.step(15.0)
    assert step.finish == [1] and not step.kill
    assert machine.stop_sent(1) == "SoftStop"


def test_without_on_timeout_a_late_job_is_reported_and_never_stopped() -> None:
    machine = _machine(StopPolicy(on_timeout=False, grace=5.0))
    machine.add(1, now=0.0, deadline=10.0, state=JobState.RUNNING)
    step = machine.step(10.0)
    assert step.finish == [1] and not step.soft_stop
    assert machine.stop_sent(1) is None


def test_a_job_ended_in_time_gets_the_grace_for_its_outputs() -> None:
    machine = _machine(StopPolicy(on_timeout=True, grace=5.0))
    machine.add(1, now=0.0, deadline=10.0, state=JobState.RUNNING)
    machine.seen(1, JobState.SUCCESSFUL, now=9.0)
    assert _is_empty(machine.step(10.0))
    assert machine.next_due == 15.0
    step = machine.step(15.0)
    assert step.finish == [1] and not step.soft_stop


def test_stops_of_one_moment_come_out_together_in_the_order_added() -> None:
    machine = _machine(StopPolicy(on_timeout=True, grace=5.0))
    for job in (3, 1, 2):
        machine.add(job, now=0.0, deadline=0.0, state=None)
    assert machine.step(0.0).soft_stop == [3, 1, 2]  # the cancel case: deadline "now"
    assert machine.step(5.0).kill == [3, 1, 2]


def test_a_pending_limit_applies_only_to_a_job_not_known_to_be_picked_up() -> None:
    machine = _machine(StopPolicy(on_timeout=True, pending_timeout=60.0))
    machine.add(1, now=0.0, deadline=None, state=JobState.RUNNING)  # no limit: not kept
    assert machine.next_due == math.inf
    machine.add(2, now=0.0, deadline=None, state=None)  # unknown: may be Pending
    machine.add(3, now=0.0, deadline=None, state=JobState.PENDING)
    assert machine.next_due == 60.0
    machine.seen_many([(2, JobState.PENDING), (3, JobState.PENDING)], now=60.0)
    assert machine.step(60.0).soft_stop == [2, 3]


def test_stuck_pending_needs_an_answer_from_after_the_limit() -> None:
    machine = _machine(StopPolicy(on_timeout=True, grace=5.0, pending_timeout=60.0))
    machine.add(1, now=0.0, deadline=None, state=JobState.PENDING)
    machine.seen(1, JobState.PENDING, now=59.0)
    # Pending as last seen, but the last answer is older than the limit: look again.
    assert _is_empty(machine.step(60.0))
    assert machine.next_due == 61.0
    machine.seen(1, JobState.PENDING, now=60.5)
    assert machine.step(61.0).soft_stop == [1]
    assert machine.stuck_pending_for(1) == 61.0
    assert machine.step(66.0).kill == [1]


def test_waiting_to_recheck_a_pending_job_does_not_put_its_deadline_off() -> None:
    machine: Deadlines[int] = Deadlines(
        StopPolicy(on_timeout=True, pending_timeout=2.0), recheck=5.0
    )
    machine.add(1, now=0.0, deadline=4.0, state=JobState.PENDING)
    assert machine.step(2.0).recheck == [1]  # no answer from after the pending limit yet
    assert machine.next_due == 4.0  # its deadline, not the recheck at 7.0
    assert machine.step(4.0).soft_stop == [1]


def test_a_job_picked_up_in_time_loses_its_pending_limit() -> None:
    machine = _machine(StopPolicy(on_timeout=True, pending_timeout=60.0))
    machine.add(1, now=0.0, deadline=None, state=JobState.PENDING)
    machine.seen(1, JobState.RUNNING, now=30.0)
    assert _is_empty(machine.step(60.0))
    assert machine.next_due == math.inf
    assert machine.stuck_pending_for(1) is None


def test_a_list_answer_seen_at_once_is_as_each_row_seen_alone() -> None:
    """seen_many (a whole list answer) leaves the same limits as seen per row:
    picked-up jobs lose their pending limit, a job still Pending keeps it, and
    rows about jobs without limits are ignored."""
    policy = StopPolicy(on_timeout=True, grace=5.0, pending_timeout=60.0)
    one_by_one, at_once = _machine(policy), _machine(policy)
    rows = [(1, JobState.RUNNING), (2, JobState.PENDING), (9, JobState.RUNNING)]
    for machine in (one_by_one, at_once):
        machine.add(1, now=0.0, deadline=None, state=JobState.PENDING)
        machine.add(2, now=0.0, deadline=None, state=JobState.PENDING)
    for job_id, state in rows:
        one_by_one.seen(job_id, state, now=60.5)
    at_once.seen_many(rows, now=60.5)
    for machine in (one_by_one, at_once):
        assert machine.step(61.0).soft_stop == [2]  # job 1 was seen picked up
        assert machine.stuck_pending_for(2) == 61.0
        assert machine.stuck_pending_for(1) is None


def test_a_removed_job_is_never_due() -> None:
    machine = _machine(StopPolicy(on_timeout=True))
    machine.add(1, now=0.0, deadline=10.0, state=JobState.RUNNING)
    machine.remove(1)
    assert _is_empty(machine.step(10.0))
    assert machine.stop_sent(1) is None


def test_a_decision_waiting_on_a_fresher_state_asks_for_a_recheck() -> None:
    machine: Deadlines[int] = Deadlines(
        StopPolicy(pending_timeout=10.0, on_suspended="report"), recheck=1.0, fresh_within=5.0
    )
    machine.add(1, now=0.0, deadline=None, state=JobState.PENDING)  # Pending past its limit?
    machine.add(2, now=0.0, deadline=20.0, state=JobState.RUNNING)
    machine.seen(2, JobState.RUNNING, now=15.0)  # running before its deadline
    assert machine.step(10.0).recheck == [1]  # last seen Pending before the limit
    machine.seen(1, JobState.PENDING, now=10.5)
    step = machine.step(20.0)
    assert step.recheck == [2]  # may be Suspended by now
    assert step.finish == [1] and not step.report_suspended  # reported stuck
    assert machine.stuck_pending_for(1) == 20.0  # a fresh answer still said Pending
    machine.remove(1)
    machine.seen(2, JobState.SUSPENDED, now=20.5)
    assert machine.step(21.0).report_suspended == [2]


def test_the_deadline_still_holds_while_a_pending_limit_waits_for_a_fresh_answer() -> None:
    machine = _machine(StopPolicy(pending_timeout=5.0))
    machine.add(1, now=0.0, deadline=8.0, state=JobState.PENDING)
    assert machine.step(5.0).recheck == [1]  # no answer from after the limit yet
    step = machine.step(8.0)  # none by the deadline either
    assert step.finish == [1] and not step.recheck
    assert machine.stuck_pending_for(1) is None  # timed out, not known stuck
