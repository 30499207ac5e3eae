"""A token bucket for request rates (pure: the caller passes the time in)."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allow ``rate`` events per second on average, bursts of up to ``burst``.

    ``rate`` may be changed at any time (the dispatcher's limits are resizable);
    ``rate=None`` means unlimited.
    """

    def __init__(self, rate: float | None, *, burst: float = 1.0, now: float = 0.0) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None (unlimited)")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._updated = now

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None, *, now: float) -> None:
        """Change the rate; tokens earned so far are kept."""
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None (unlimited)")
        self._refill(now)
        self._rate = rate

    def try_take(self, now: float) -> float:
        """Take a token if one is there and return 0.0, else the seconds to wait.

        When a wait is returned nothing is taken: call again after waiting.
        """
        if self._rate is None:
            return 0.0
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate

    def _refill(self, now: float) -> None:
        if self._rate is not None and now > self._updated:
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = max(self._updated, now)
