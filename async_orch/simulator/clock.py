"""Simulated time: real time from an injectable clock, sped up by ``time_scale``.

Jobs live on simulated time (epoch seconds, so timestamps look real);
rate limits, token lifetimes and time-based faults stay on the real clock, so a
client meets the real limits whatever the time scale.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SimClock"]


class SimClock:
    """``now() = epoch + (real() - real_at_start) * time_scale``."""

    def __init__(self, real: Callable[[], float], *, time_scale: float, epoch: float) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self.real = real
        self.time_scale = time_scale
        self.epoch = epoch
        self._start = real()

    def now(self) -> float:
        """Current simulated time, in seconds since the Unix epoch."""
        return self.epoch + (self.real() - self._start) * self.time_scale
