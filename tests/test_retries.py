"""The retry decisions, pure: no event loop, no clock, no I/O (retries.py)."""

from __future__ import annotations

import random

import pytest

from async_orch._config import RetryPolicy
from async_orch._errors import (
    BadRequestError,
    OrchestratorError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    UncertainStartError,
)
from async_orch._models import Job
from async_orch._retries import (
    Adopted,
    BatchRetries,
    Created,
    Failed,
    GiveUp,
    LookUp,
    Post,
    Retry,
    StartProtocol,
    Uncertain,
    Wait,
    transport_step,
)

POLICY = RetryPolicy(attempts=3, wait_initial=1.0, wait_max=10.0, wait_jitter=0.0)
URL = "https://x/odata/Jobs"


def timeout() -> RequestTimeoutError:
    return RequestTimeoutError("no answer", method="POST", url=URL)


def refused_connection() -> TransportError:
    return TransportError("refused", method="POST", url=URL, may_have_reached_server=False)


def api_error(cls: type, status: int, retry_after: float | None = None) -> ServerError:
    return cls(status=status, method="POST", url=URL, message="m", retry_after=retry_after)  # type: ignore[no-any-return]


def job(job_id: int = 7) -> Job:
    return Job.from_api({"Id": job_id, "Key": f"00000000-0000-4000-8000-{job_id:012d}",
                         "State": "Pending", "Reference": "r"})  # fmt: skip


def protocol(*, max_posts: int = 4, window: float = 10.0, batch: int = 100) -> StartProtocol:
    return StartProtocol(
        "r", folder="Shared", max_posts=max_posts, window=window, policy=POLICY,
        batch=BatchRetries(batch), rng=random.Random(1),
    )  # fmt: skip


def run_out(
    p: StartProtocol,
    *,
    post_error: OrchestratorError | None = None,
    lookup_error: OrchestratorError | None = None,
) -> tuple[object, int, int]:
    """Drive ``p`` to its end on a clock that jumps to every wait, every post failing
    with ``post_error`` and every lookup with ``lookup_error``: the last step, and how
    many posts and lookups it asked for."""
    now, posts, lookups = 0.0, 0, 0
    while True:
        step = p.next_step(now)
        if isinstance(step, Wait):
            now = step.until
        elif isinstance(step, Post) and post_error is not None:
            posts += 1
            p.post_failed(post_error, now)
        elif isinstance(step, LookUp) and lookup_error is not None:
            lookups += 1
            p.lookup_failed(lookup_error, sent_at=now)
        else:
            return step, posts, lookups


# -- the transport -----------------------------------------------------------------------


def test_an_idempotent_request_is_retried_with_backoff_until_attempts_run_out() -> None:
    error = api_error(ServerError, 502)
    assert transport_step(error, failures=1, attempts=3, idempotent=True, policy=POLICY) == Retry(
        1.0
    )
    assert transport_step(error, failures=2, attempts=3, idempotent=True, policy=POLICY) == Retry(
        2.0
    )
    assert transport_step(error, failures=3, attempts=3, idempotent=True, policy=POLICY) == GiveUp(
        error
    )


def test_retry_after_is_the_wait_and_too_long_a_wait_gives_up_with_advice() -> None:
    step = transport_step(
        api_error(RateLimitedError, 429, 4.0), failures=1, attempts=3, idempotent=True,
        policy=POLICY,
    )  # fmt: skip
    assert step == Retry(4.0)
    too_long = api_error(RateLimitedError, 429, 600.0)
    step = transport_step(too_long, failures=1, attempts=3, idempotent=True, policy=POLICY)
    assert isinstance(step, GiveUp) and "retry_after_max" in str(step.error)


def test_one_attempt_means_the_caller_owns_retries() -> None:
    error = api_error(RateLimitedError, 429, 1.0)
    assert transport_step(error, failures=1, attempts=1, idempotent=False, policy=POLICY) == GiveUp(
        error
    )


def test_a_post_that_may_have_arrived_is_never_retried_by_the_transport() -> None:
    error = timeout()
    step = transport_step(error, failures=1, attempts=5, idempotent=False, policy=POLICY)
    assert step == GiveUp(error)


# -- the start protocol ------------------------------------------------------------------


def test_a_created_start_is_done_after_one_post() -> None:
    p = protocol()
    assert p.next_step(0.0) == Post(1)
    p.posted([job()])
    assert p.next_step(0.0) == Created([job()])


@pytest.mark.parametrize(
    "refusal",
    [api_error(RateLimitedError, 429, 3.0), api_error(ServerError, 503, 3.0)],
    ids=["429", "503+Retry-After"],
)
def test_a_refused_start_waits_the_retry_after_then_posts_again(refusal: ServerError) -> None:
    p = protocol()
    p.next_step(0.0)
    p.post_failed(refusal, 0.0)
    assert p.next_step(1.0) == Wait(3.0)
    assert p.next_step(3.0) == Post(2)


def test_a_persistent_refusal_costs_at_most_max_posts() -> None:
    step, posts, _ = run_out(
        protocol(max_posts=3), post_error=api_error(RateLimitedError, 429, 1.0)
    )
    assert posts == 3 and isinstance(step, Failed)


def test_the_batch_allowance_bounds_re_posts_across_requests() -> None:
    batch = BatchRetries(1)
    first, second = (
        StartProtocol("a", folder="F", max_posts=4, window=0, policy=POLICY, batch=batch),
        StartProtocol("b", folder="F", max_posts=4, window=0, policy=POLICY, batch=batch),
    )
    for p in (first, second):
        p.next_step(0.0)
        p.post_failed(refused_connection(), 0.0)
    assert isinstance(first.next_step(100.0), Post)
    assert isinstance(second.next_step(100.0), Failed)


def test_a_rejected_start_fails_at_once() -> None:
    p = protocol()
    p.next_step(0.0)
    error = api_error(BadRequestError, 400)
    p.post_failed(error, 0.0)
    assert p.next_step(0.0) == Failed(error)


def test_an_ambiguous_start_found_by_the_first_lookup_is_adopted() -> None:
    p = protocol()
    p.next_step(0.0)
    p.post_failed(timeout(), 5.0)
    assert p.next_step(5.0) == LookUp()
    p.looked_up([job()], sent_at=5.0)
    assert p.next_step(5.0) == Adopted([job()])
    assert p.posts == 1


def test_an_ambiguous_start_is_re_posted_only_after_a_lookup_past_the_window() -> None:
    p = protocol(window=10.0)
    p.next_step(0.0)
    p.post_failed(timeout(), 5.0)
    assert p.next_step(5.0) == LookUp()
    p.looked_up([], sent_at=5.0)  # the server may still be at work
    assert p.next_step(6.0) == Wait(15.0)
    assert p.next_step(15.0) == LookUp()
    p.looked_up([], sent_at=15.0)
    assert p.next_step(15.0) == Post(2)


def test_a_late_job_is_adopted_by_the_final_lookup() -> None:
    p = protocol(window=10.0)
    p.next_step(0.0)
    p.post_failed(api_error(ServerError, 502), 0.0)
    p.next_step(0.0)
    p.looked_up([], sent_at=0.0)
    p.next_step(10.0)
    p.looked_up([job()], sent_at=10.0)
    assert p.next_step(10.0) == Adopted([job()])


def test_a_failed_early_lookup_proves_nothing_a_final_lookup_that_finds_none_reposts() -> None:
    p = protocol(window=10.0)
    p.next_step(0.0)
    p.post_failed(timeout(), 0.0)
    p.next_step(0.0)
    p.lookup_failed(api_error(ServerError, 500), sent_at=0.0)
    assert p.next_step(1.0) == Wait(10.0)  # no post before the window has passed
    p.next_step(10.0)
    p.looked_up([], sent_at=10.0)  # sent after the window, answered, found nothing
    assert p.next_step(10.0) == Post(2)


def test_a_lookup_answered_before_the_window_never_allows_a_post() -> None:
    p = protocol(window=10.0)
    p.next_step(0.0)
    p.post_failed(timeout(), 0.0)
    p.next_step(0.0)
    p.looked_up([], sent_at=9.9)  # found nothing, but the server may still be at work
    assert p.next_step(9.95) == Wait(10.0)
    p.next_step(10.0)
    lookup_error = api_error(ServerError, 502)
    p.lookup_failed(lookup_error, sent_at=10.0)
    step, posts, _ = run_out(p, lookup_error=lookup_error)
    assert isinstance(step, Uncertain) and posts == 0
    assert isinstance(step.error, UncertainStartError) and step.error.reference == "r"
    assert step.error.lookup_error is lookup_error
    assert p.posts == 1


def test_a_final_lookup_that_keeps_failing_is_tried_policy_attempts_times() -> None:
    p = protocol(window=0.0)
    p.next_step(0.0)
    p.post_failed(timeout(), 0.0)
    step, _, lookups = run_out(p, lookup_error=api_error(ServerError, 502))
    assert lookups == POLICY.attempts and isinstance(step, Uncertain)


def test_an_ambiguous_start_out_of_posts_fails_once_proven_absent() -> None:
    p = protocol(max_posts=1, window=0.0)
    p.next_step(0.0)
    error = timeout()
    p.post_failed(error, 0.0)
    p.next_step(0.0)
    p.looked_up([], sent_at=0.0)
    assert p.next_step(0.0) == Failed(error)


def test_steps_must_be_reported_before_the_next() -> None:
    p = protocol()
    p.next_step(0.0)
    with pytest.raises(RuntimeError):
        p.next_step(0.0)
    with pytest.raises(RuntimeError):
        protocol().posted([])


def test_the_default_batch_allowance_grows_with_the_batch() -> None:
    assert BatchRetries.for_batch(100, RetryPolicy()).limit == 110
    assert BatchRetries.for_batch(100, RetryPolicy(batch_retries=3)).limit == 3


def test_the_default_window_follows_the_request_timeout() -> None:
    assert RetryPolicy().window_after(60.0) == 90.0
    assert RetryPolicy(reconcile_window=5.0).window_after(60.0) == 5.0
