"""Pure tests of push as an accelerator: the pace rules, the planner's push hooks,
and the receiver's verification (no event loop, no sockets)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from async_orch import WebhookReceiver
from async_orch._errors import ConfigurationError
from async_orch._planner import (
    EAGER_ROWS,
    FetchOne,
    FetchPurpose,
    ListBatch,
    PollPlanner,
    PollPolicy,
)
from async_orch._push_pace import PushPace
from async_orch._states import JobState
from async_orch._webhooks import JobEvent, parse_events, signature_of, verify_signature

SECRET = "s3cret-for-tests"
NOW = 1_750_000_000.0  # wall clock of the receiver tests


# -- the pace ------------------------------------------------------------------------


def test_a_folder_is_slowed_while_events_arrive_and_back_to_normal_once_they_stop() -> None:
    pace: PushPace[int] = PushPace(slow_factor=4, quiet_after=10)
    assert pace.factor(1, 0.0) == 1.0  # no event yet: poll as usual
    pace.event(1, 100.0)
    assert pace.factor(1, 100.0) == 4.0
    assert pace.factor(1, 109.9) == 4.0
    assert pace.factor(2, 105.0) == 1.0  # another folder is not slowed
    assert pace.next_change(105.0) == 110.0
    assert pace.factor(1, 110.0) == 1.0  # quiet: back at once
    assert pace.next_change(110.0) is None
    pace.event(1, 120.0)
    assert pace.factors(121.0) == {1: 4.0}


def test_an_old_event_reported_late_does_not_move_the_last_event_back() -> None:
    pace: PushPace[int] = PushPace(slow_factor=2, quiet_after=10)
    pace.event(1, 100.0)
    pace.event(1, 50.0)
    assert pace.next_change(100.0) == 110.0


def test_a_job_found_ended_without_its_event_restores_the_usual_pace_for_a_while() -> None:
    pace: PushPace[int] = PushPace(slow_factor=4, quiet_after=10)
    pace.missed(1, 99.0)  # before any event: nothing to restore
    pace.event(1, 100.0)
    pace.event(2, 100.0)
    assert pace.factors(100.0) == {1: 4.0, 2: 4.0}
    pace.missed(1, 101.0)  # events of folder 1 are being lost
    assert pace.factors(101.0) == {1: 1.0, 2: 4.0}
    pace.event(1, 105.0)  # events still arrive: the lost ones are not more likely found
    assert pace.factor(1, 110.9) == 1.0
    assert pace.next_change(105.0) == 110.0  # folder 2 falls back then
    assert pace.next_change(110.5) == 111.0  # folder 1's miss is over: slowed again
    assert pace.factor(1, 111.0) == 4.0


def test_ends_told_by_events_make_a_folders_calls_eager_as_list_answers_do() -> None:
    # Without this, a folder whose ends all came by push looked quiet: the jobs whose
    # events were lost waited for evenly paced calls (200 jobs over 4 folders at 20
    # calls a minute with 10 % lost: p99 lag 8.2 s against 2.2 s by polling alone).
    planner: PollPlanner[int] = PollPlanner(PollPolicy(list_budget_per_minute=20, min_interval=1.0))
    for job_id in range(1, 61):
        planner.add(job_id, 7, now=0.0)
    assert isinstance(planner.next_action(1.0), ListBatch)
    for job_id in range(1, 61):
        planner.observe(job_id, JobState.RUNNING, now=1.1)
    for job_id in range(1, 1 + EAGER_ROWS):
        assert planner.pushed(job_id, now=1.5)
    while (read := planner.next_action(1.5)) is not None:
        assert isinstance(read, FetchOne) and read.purpose is FetchPurpose.PUSHED
        planner.observe_fetched(read.job_id, now=1.6)
    # The other 10 are due again at 2.1 s: an eager call then (3 s / 4 after the
    # last call), not at the even 4.0 s.
    assert planner.next_wake(1.6) == 2.1


@pytest.mark.parametrize(("factor", "quiet"), [(0.5, 10), (11, 10), (4, 0), (4, float("inf"))])
def test_the_pace_is_bounded(factor: float, quiet: float) -> None:
    with pytest.raises(ConfigurationError):
        PushPace[int](slow_factor=factor, quiet_after=quiet)


# -- the planner -----------------------------------------------------------------------


def _planner() -> PollPlanner[int]:
    return PollPlanner(PollPolicy(min_interval=1, max_interval=30, interval_growth=0))


def test_a_pushed_end_is_read_by_id_at_once_without_a_list_call() -> None:
    planner = _planner()
    planner.add(7, 1, now=0.0)
    assert planner.next_action(0.0) is None  # first check after min_interval
    assert planner.pushed(7, now=0.2)
    assert planner.next_action(0.2) == FetchOne(7, 1, FetchPurpose.PUSHED)
    planner.observe_fetched(7, now=0.3)
    assert planner.done
    assert planner.stats.list_calls == 0 and planner.stats.pushed_reads == 1


def test_a_pushed_job_found_still_running_goes_back_to_polling() -> None:
    planner = _planner()
    planner.add(7, 1, now=0.0)
    planner.pushed(7, now=0.1)
    planner.next_action(0.1)
    planner.observe(7, JobState.RUNNING, now=0.2)  # the event was early or wrong
    assert planner.next_action(1.2) == ListBatch(1, (7,))


def test_a_push_for_a_job_not_watched_or_already_final_changes_nothing() -> None:
    planner = _planner()
    assert not planner.pushed(99, now=0.0)
    planner.add(7, 1, now=0.0, state=JobState.SUCCESSFUL)
    assert not planner.pushed(7, now=0.0)


def test_a_slowed_folder_is_checked_less_often_and_at_once_again_when_push_stops() -> None:
    planner = _planner()
    planner.set_pace(1, 4.0, now=0.0)  # events for folder 1 arrive
    planner.add(7, 1, now=0.0)
    planner.add(8, 2, now=0.0)
    assert planner.next_action(1.0) == ListBatch(2, (8,))  # folder 2 as usual
    planner.observe(8, JobState.RUNNING, now=1.0)
    assert planner.next_action(1.0) is None  # folder 1: first check at 4 s, not 1 s
    assert planner.next_wake(1.0) == 2.0
    planner.set_pace(1, 1.0, now=2.5)  # events stopped: the stretched check comes back
    assert planner.next_action(2.5) == ListBatch(1, (7,))


def test_a_slowed_job_waits_at_most_the_factor_times_its_interval() -> None:
    planner = _planner()
    planner.add(7, 1, now=0.0)
    planner.set_pace(1, 4.0, now=0.0)  # stretches from the job's next answer on
    assert planner.next_action(1.0) == ListBatch(1, (7,))
    planner.observe(7, JobState.RUNNING, now=1.0)
    assert planner.next_wake(1.0) == 5.0
    assert planner.next_action(4.9) is None
    assert planner.next_action(5.0) == ListBatch(1, (7,))


# -- the receiver ----------------------------------------------------------------------


def _body(
    kind: str = "job.completed",
    *,
    event_id: str = "e1",
    job_id: int = 42,
    state: str | None = "Successful",
    at: float = NOW,
    folder: int | None = 5,
) -> bytes:
    job: dict[str, object] = {"Id": job_id, "Key": "k", "OutputArguments": None}
    if state is not None:
        job["State"] = state
    payload: dict[str, object] = {
        "Type": kind,
        "EventId": event_id,
        "Timestamp": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
        "Job": job,
        "TenantId": 1,
    }
    if folder is not None:
        payload["OrganizationUnitId"] = folder
    return json.dumps(payload).encode()


def _receiver() -> tuple[WebhookReceiver, list[JobEvent]]:
    receiver = WebhookReceiver(SECRET, max_age=300, wall_clock=lambda: NOW)
    events: list[JobEvent] = []
    receiver.subscribe(events.append)
    return receiver, events


def test_the_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    # Vector from openssl: printf body | openssl dgst -sha256 -hmac key -binary | base64
    assert signature_of("key", b"body") == "UVquEztDXUAAlWcx9orlz164XU8NxqVG0r/NNZXsGuE="
    assert verify_signature("key", b"body", "UVquEztDXUAAlWcx9orlz164XU8NxqVG0r/NNZXsGuE=")
    assert not verify_signature("key", b"body ", "UVquEztDXUAAlWcx9orlz164XU8NxqVG0r/NNZXsGuE=")
    assert not verify_signature("key", b"body", "not base64!")
    assert not verify_signature("key", b"body", None)


def test_a_signed_fresh_event_reaches_the_subscribers() -> None:
    receiver, events = _receiver()
    body = _body()
    assert receiver.receive(body, signature_of(SECRET, body)) == (200, "accepted")
    assert events == [
        JobEvent(
            type="job.completed",
            event_id="e1",
            timestamp=datetime.fromtimestamp(NOW, UTC),
            job_id=42,
            state=JobState.SUCCESSFUL,
            folder_id=5,
            job_key="k",  # the Key, to tell this job from another under its id
        )
    ]


@pytest.mark.parametrize(
    ("signature", "status", "count"),
    [
        (None, 401, "unsigned"),
        ("", 401, "unsigned"),
        (signature_of("another secret", _body()), 401, "bad_signature"),
        ("bm90IHRoZSBzaWduYXR1cmU=", 401, "bad_signature"),
    ],
)
def test_unsigned_and_badly_signed_events_are_refused(
    signature: str | None, status: int, count: str
) -> None:
    receiver, events = _receiver()
    assert receiver.receive(_body(), signature)[0] == status
    assert events == [] and receiver.counts[count] == 1


@pytest.mark.parametrize("offset", [-301.0, 301.0])
def test_stale_events_are_refused(offset: float) -> None:
    receiver, events = _receiver()
    body = _body(at=NOW + offset)
    status, reason = receiver.receive(body, signature_of(SECRET, body))
    assert status == 400 and "300 s" in reason
    assert events == [] and receiver.counts["stale"] == 1


def test_a_replayed_event_is_taken_once() -> None:
    receiver, events = _receiver()
    body = _body()
    receiver.receive(body, signature_of(SECRET, body))
    assert receiver.receive(body, signature_of(SECRET, body)) == (200, "duplicate event ignored")
    assert len(events) == 1 and receiver.counts["duplicate"] == 1


def test_a_signed_body_that_is_not_an_event_is_refused_and_other_types_ignored() -> None:
    receiver, events = _receiver()
    for raw in (b"[1]", b"{not json", json.dumps({"Type": "job.completed"}).encode()):
        assert receiver.receive(raw, signature_of(SECRET, raw))[0] == 400
    queue = _body("queueItem.added")
    assert receiver.receive(queue, signature_of(SECRET, queue))[0] == 200
    assert events == [] and receiver.counts["malformed"] == 3 and receiver.counts["ignored"] == 1


def test_payload_shapes_jobs_list_folder_id_and_missing_state() -> None:
    payload = {
        "Type": "job.faulted",
        "EventId": 123,
        "Timestamp": "2025-05-07T09:13:45.7401303Z",
        "Jobs": [{"Id": 1, "State": None}, {"Id": "not an id"}],
        "FolderId": 26,
    }
    _, event_id, stamp, events = parse_events(json.dumps(payload).encode())
    assert event_id == "123" and stamp.tzinfo is not None
    assert [(e.job_id, e.state, e.folder_id, e.ended) for e in events] == [
        (1, JobState.FAULTED, 26, True)
    ]


def test_the_secret_is_required_and_never_shown() -> None:
    with pytest.raises(ConfigurationError):
        WebhookReceiver("")
    receiver = WebhookReceiver(SECRET)
    assert SECRET not in repr(receiver)


def test_a_deeply_nested_body_is_malformed_not_a_crash() -> None:
    body = b'{"Type":"job.completed","EventId":"e","Job":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ValueError, match="not UTF-8 JSON"):
        parse_events(body)
