"""Backoff waits, Retry-After parsing and the retry rules (pure, sync)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from async_orch._config import RetryPolicy
from async_orch._errors import (
    BadRequestError,
    ConfigurationError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TransportError,
)
from async_orch._retries import compute_delay, is_retryable, is_retryable_status, parse_retry_after

POLICY = RetryPolicy()
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("attempt", range(1, 9))
def test_delay_stays_within_its_bounds(attempt: int) -> None:
    rng = random.Random(attempt)
    low = min(POLICY.wait_max, POLICY.wait_initial * 2 ** (attempt - 1))
    high = min(POLICY.wait_max, low + POLICY.wait_jitter)
    delays = [compute_delay(attempt, policy=POLICY, rng=rng) for _ in range(500)]
    assert all(low <= d <= high for d in delays)
    if high > low:
        # The jitter really spreads clients out (not a constant).
        assert max(delays) - min(delays) > 0.5 * (high - low)


def test_delay_doubles_without_jitter_and_is_capped() -> None:
    policy = RetryPolicy(wait_initial=0.5, wait_max=10.0, wait_jitter=0.0)
    delays = [compute_delay(n, policy=policy) for n in range(1, 8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_delay_for_huge_attempts_does_not_overflow() -> None:
    assert compute_delay(10_000, policy=POLICY, rng=random.Random(1)) == POLICY.wait_max


def test_delay_is_reproducible_with_a_seeded_rng() -> None:
    first = [compute_delay(n, policy=POLICY, rng=random.Random(42)) for n in range(1, 6)]
    second = [compute_delay(n, policy=POLICY, rng=random.Random(42)) for n in range(1, 6)]
    assert first == second


def test_attempt_counts_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        compute_delay(0, policy=POLICY)


def test_policy_validation_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(wait_jitter=-0.1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("Sat, 01 Mar 2025 12:01:00 GMT", 60.0),
        # RFC 850 and asctime forms are still valid HTTP-dates.
        ("Saturday, 01-Mar-25 12:00:10 GMT", 10.0),
        ("Sat Mar  1 12:00:20 2025", 20.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_http_date_needs_a_reference_time() -> None:
    assert parse_retry_after("Sat, 01 Mar 2025 12:01:00 GMT", now=None) is None
    assert parse_retry_after("3", now=None) == 3.0


def test_naive_now_is_taken_as_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Sat, 01 Mar 2025 12:01:00 GMT", now=naive) == 60.0


RULES = [
    # (status, idempotent, has Retry-After, retry?)
    (429, False, False, True),  # refused by the rate limiter: safe even for StartJobs
    (429, True, False, True),
    (408, False, False, True),  # the server never got the whole request
    (503, False, True, True),  # a deliberate "come back later"
    (503, False, False, False),  # may come from a proxy that already forwarded it
    (503, True, False, True),
    (502, False, False, False),  # forwarded, answer lost: may have created jobs
    (502, False, True, False),
    (502, True, False, True),
    (504, False, False, False),
    (504, True, False, True),
    (500, False, False, False),
    (500, True, False, True),
    (524, True, False, True),
    (501, True, False, False),  # will not change on retry
    (505, True, False, False),
    (400, True, False, False),
    (401, True, False, False),  # handled by the token refresh, not by backoff
    (403, True, False, False),
    (404, True, False, False),
    (409, True, False, False),
    (422, True, True, False),
]


@pytest.mark.parametrize(("status", "idempotent", "has_retry_after", "expected"), RULES)
def test_retry_rules(status: int, idempotent: bool, has_retry_after: bool, expected: bool) -> None:
    assert (
        is_retryable_status(status, idempotent=idempotent, has_retry_after=has_retry_after)
        is expected
    )


def _api(cls: type, status: int) -> object:
    return cls(status=status, method="POST", url="u", message="m")


def test_is_retryable_for_errors() -> None:
    never_left = TransportError("refused", method="POST", url="u", may_have_reached_server=False)
    maybe_left = RequestTimeoutError("read timeout", method="POST", url="u")
    assert is_retryable(never_left, idempotent=False)
    assert not is_retryable(maybe_left, idempotent=False)
    assert is_retryable(maybe_left, idempotent=True)
    assert is_retryable(_api(RateLimitedError, 429), idempotent=False)  # type: ignore[arg-type]
    assert not is_retryable(_api(ServerError, 502), idempotent=False)  # type: ignore[arg-type]
    assert is_retryable(_api(ServerError, 502), idempotent=True)  # type: ignore[arg-type]
    assert not is_retryable(_api(BadRequestError, 400), idempotent=True)  # type: ignore[arg-type]
    assert not is_retryable(ConfigurationError("x"), idempotent=True)
