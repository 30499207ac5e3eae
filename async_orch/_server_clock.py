"""The server's clock, as its ``Date`` headers tell it (pure).

A job found by its Reference is adopted only if it was created no earlier than
the batch began (:func:`~async_orch._retries.sort_found_jobs`). ``CreationTime``
is the server's clock, the batch's start this machine's; comparing the two
refuses the batch's own job when this machine's clock is ahead. So the
transport keeps the offset between the clocks and the batch's start is
converted into the server's clock before it is compared.

The source is the ``Date`` header: RFC 9110 §6.6.1 says an origin server with a
clock must send it, to one second. That Orchestrator does is an assumption
(orchestrator-api.md does not say); aiohttp's servers (our simulator) do. Each
sample is ``Date - local time at receipt``: the answer took some time to come
and ``Date`` is cut to the second, so a sample is at most a second or so (plus
the answer's transfer) smaller than the true offset. Both errors make the
converted start earlier, which errs towards adopting, the safe side.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = ["UNKNOWN_OFFSET_MARGIN", "ServerClock"]

#: Before any ``Date`` was seen the offset is unknown: a clock that is not kept in
#: sync is often off by a minute or two, so the server's clock is taken to be up
#: to this much behind this machine's (:meth:`ServerClock.earliest_server_time`).
UNKNOWN_OFFSET_MARGIN = timedelta(minutes=5)

#: Samples the offset is the median of: one wrong ``Date`` (a proxy's own, say)
#: does not move it, and a step of this machine's clock is followed within a few
#: answers (at most one sample a second is kept, see :meth:`ServerClock.observe`).
_SAMPLES = 5


class ServerClock:
    """How far the server's clock is ahead of this machine's (``Date`` headers).

    Usage::

        clock = ServerClock()
        clock.observe(response.headers.get("Date"), lambda: datetime.now(UTC))
        not_before = clock.to_server(batch_began)  # unchanged until a Date came
    """

    def __init__(self, samples: int = _SAMPLES) -> None:
        self._offsets: deque[float] = deque(maxlen=max(1, samples))
        self._last_header: str | None = None
        # The median of _offsets, worked out when a sample comes (once a second at
        # most) rather than on each read (every StartJobs reads it).
        self._offset: timedelta | None = None

    def __repr__(self) -> str:
        return f"ServerClock(offset={self.offset!r})"

    def observe(self, date_header: str | None, local_now: Callable[[], datetime]) -> None:
        """Take one answer's ``Date`` header, received now by this machine's clock
        ``local_now`` (aware); a missing or unparsable one is ignored.

        A header equal to the last one is skipped, the clock not even read: ``Date``
        changes once a second, and its first sighting is the best sample of that
        second (every answer brings one; reading each would add nothing but work)."""
        if not date_header or date_header == self._last_header:
            return
        try:
            server_now = parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError):
            return
        if server_now.tzinfo is None:  # "-0000": UTC, source unknown (RFC 5322 §3.3)
            server_now = server_now.replace(tzinfo=UTC)
        self._last_header = date_header
        self._offsets.append((server_now - local_now()).total_seconds())
        self._offset = timedelta(seconds=statistics.median(self._offsets))

    @property
    def offset(self) -> timedelta | None:
        """The server's clock minus this machine's (median of the recent samples),
        or None before any ``Date`` was seen."""
        return self._offset

    def to_server(self, local: datetime) -> datetime:
        """``local`` (this machine's clock) on the server's clock; unchanged while
        no ``Date`` was seen (the comparison falls back to this machine's clock)."""
        offset = self._offset
        return local if offset is None else local + offset

    def earliest_server_time(self, local: datetime) -> datetime:
        """The earliest the server's clock may read while this machine's reads
        ``local``: :meth:`to_server` once a ``Date`` was seen (to a second or so,
        erring early), else ``local`` less :data:`UNKNOWN_OFFSET_MARGIN`. What the
        adoption check compares a job's CreationTime with, so that the batch's own
        job is never taken for an older one."""
        if self._offset is None:
            return local - UNKNOWN_OFFSET_MARGIN
        return self.to_server(local)
