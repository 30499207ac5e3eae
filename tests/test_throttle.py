"""The token bucket behind ``starts_per_second`` (pure: time is passed in)."""

from __future__ import annotations

import pytest

from async_orch._limits import TokenBucket


def test_unlimited_never_waits() -> None:
    bucket = TokenBucket(None)
    assert [bucket.try_take(0.0) for _ in range(1000)] == [0.0] * 1000


def test_one_token_at_once_then_one_per_interval() -> None:
    bucket = TokenBucket(4.0, now=0.0)
    assert bucket.try_take(0.0) == 0.0
    assert bucket.try_take(0.0) == pytest.approx(0.25)
    assert bucket.try_take(0.1) == pytest.approx(0.15)  # nothing was taken meanwhile
    assert bucket.try_take(0.25) == 0.0
    assert bucket.try_take(0.25) == pytest.approx(0.25)


def test_burst_allows_that_many_at_once_and_no_more_after_idling() -> None:
    bucket = TokenBucket(1.0, burst=3, now=0.0)
    assert [bucket.try_take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take(0.0) == pytest.approx(1.0)
    # A long idle period refills to the burst, not beyond.
    assert [bucket.try_take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take(100.0) > 0


def test_rate_changes_keep_what_was_earned() -> None:
    bucket = TokenBucket(1.0, now=0.0)
    assert bucket.try_take(0.0) == 0.0
    bucket.set_rate(10.0, now=0.5)  # half a token earned at the old rate
    assert bucket.rate == 10.0
    assert bucket.try_take(0.5) == pytest.approx(0.05)
    bucket.set_rate(None, now=0.5)
    assert bucket.try_take(0.5) == 0.0


def test_a_clock_going_back_does_not_mint_tokens() -> None:
    bucket = TokenBucket(1.0, now=10.0)
    assert bucket.try_take(10.0) == 0.0
    assert bucket.try_take(5.0) > 0
    assert bucket.try_take(10.5) == pytest.approx(0.5)


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_a_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(rate)
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(1.0).set_rate(rate, now=0.0)


def test_burst_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="burst must be at least 1"):
        TokenBucket(1.0, burst=0.5)
