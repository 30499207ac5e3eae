"""The tenant's list budget as one client sees it: an adaptive pacer (pure logic).

``GET /odata/Jobs`` is limited per tenant (100 calls a minute for every
non-automation caller together, a rolling window; orchestrator-api.md §4 and §8).
A client does not know how much of that the others use, so it adapts, the way
TCP shares a link (additive increase, multiplicative decrease, AIMD):

- It starts at its ceiling (``per_minute``) and paces calls evenly at its
  current ``rate`` (calls per window), never more than the ceiling in any window.
- Every list answer carries ``X-RateLimit-Remaining`` (§4: calls left in the
  window; it reads 0 once fewer than 10 are left). Below ``low_remaining`` the
  rate is cut by ``LOW_CUT``, at 0 by ``THROTTLE_CUT``. These cuts are made at
  most once per ``cooldown`` (a sixth of the window): the count stays low while
  old calls age out of the rolling window, and reacting to each answer would
  cut the rate to nothing.
- A 429 always cuts it by ``THROTTLE_CUT`` and pauses list calls for its
  ``Retry-After``: retries into a full window only fill it more.
- Otherwise the rate grows by ``ceiling / 10`` per window, linearly.

Even pacing is the floor. A caller that knows more answers are waiting (a
folder's last answer had ended jobs, a page was full) may ask for an *eager*
call: up to ``EAGER_SPEEDUP`` times sooner than the even spacing, so that a
short batch can use in its few seconds the calls the 60 s window allows. Two
rules keep a burst harmless (see :meth:`ListBudget.ready_at`):

- never more than ``per_minute`` calls in any window (as for every call), and
- no long silence after it: a call is made only if the calls that follow it
  could still go at most ``SMOOTH_GAPS`` even spacings apart while the
  window's calls age out. Every call, eager or not, keeps this rule (evenly
  paced calls always do); so while there is demand, no two calls are more
  than ``SMOOTH_GAPS`` spacings apart, a 429's pause aside.

Eager calls are allowed only while the rate is at its ceiling: after a cut (a
429, or a low remaining count: someone else needs the tenant's calls) the
client paces evenly until additive growth has brought the rate back, five
windows after a 429 halved it.

Since every client of the tenant sees the same remaining count, they cut
together and grow alike; AIMD then converges on equal shares of what the
others leave, with the remaining count, not 429s, as the usual signal.

Time is passed in (monotonic seconds), so tests need no event loop.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["LIST_WINDOW", "ListBudget", "ListPace"]

LIST_WINDOW = 60.0  # the list limit's window, seconds (orchestrator-api.md §4)
LOW_CUT = 0.75  # the rate after a low remaining count, as a fraction of before
THROTTLE_CUT = 0.5  # the rate after a 429
START_FRACTION = 1.0  # the first rate, as a fraction of the ceiling
GROWTH_FRACTION = 0.1  # growth per window, as a fraction of the ceiling
# Below this many calls left in the tenant's window, slow down. The real service
# reports 0 below 10 (§4); 20 gives several clients room to slow down before 429s.
LOW_REMAINING = 20
# An eager call may come this many times sooner than the even spacing...
EAGER_SPEEDUP = 4.0
# ...as long as the calls after it can still go at most this many spacings apart,
SMOOTH_GAPS = 2.0
# and fewer than this share of the ceiling was spent in the last window.
EAGER_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class ListPace:
    """What a list budget allows right now (for a progress display).

    Attributes:
        per_minute: the ceiling, list calls per window.
        rate: the current rate (below the ceiling after a cut).
        last_call: when the last list call was made (None: none yet).
        next_call: the earliest time the next one is allowed.
    """

    per_minute: int
    rate: float
    last_call: float | None
    next_call: float


class ListBudget:
    """The list-call budget of one client: calls paced evenly at an adaptive rate,
    at most ``per_minute`` in any window, none while paused after a 429.

    One budget serves every planner and Reference lookup of a client, so that
    together they stay within the tenant's limit.

    Args:
        per_minute: the ceiling, list calls per window (0: list calls off).
        window: the limit's window in seconds (60 for Orchestrator; a test or a
            benchmark on a sped-up simulator uses less).
        low_remaining: slow down when the server says fewer calls are left.
    """

    def __init__(
        self, per_minute: float, *, window: float = LIST_WINDOW, low_remaining: int = LOW_REMAINING
    ) -> None:
        if not window > 0:
            raise ValueError(f"window must be > 0, got {window}")
        self.capacity = int(per_minute)
        self.window = window
        self.low_remaining = low_remaining
        self.floor = min(1.0, float(self.capacity))
        self.rate = max(self.floor, self.capacity * START_FRACTION)
        self.cooldown = window / 6
        self.cuts = 0  # how often the rate was cut (for stats and tests)
        self._times: deque[float] = deque(maxlen=max(1, self.capacity))
        self._paused_until = -math.inf
        self._last_cut = -math.inf
        self._grown_at: float | None = None  # when the rate last grew
        self._smooth: float | None = None  # _smooth_ready's answer, until the next spend
        # ready_at's answers (not eager, eager) until the budget changes: planning
        # asks several times a turn, and a thousand times a batch, between changes.
        self._ready: list[float | None] = [None, None]

    @property
    def spacing(self) -> float:
        """Seconds between two list calls at the current rate."""
        return self.window / self.rate if self.capacity else math.inf

    @property
    def eager_allowed(self) -> bool:
        """Whether an eager call may beat the even spacing: only at the ceiling
        (never while the rate is recovering from a cut)."""
        return bool(self.capacity) and self.rate >= self.capacity

    def ready_at(self, *, eager: bool = False) -> float:
        """The earliest time a list call is allowed (inf when list calls are off).

        ``eager``: the caller knows answers are waiting; the call may come up to
        ``EAGER_SPEEDUP`` times sooner than the even spacing (while the rate is at
        its ceiling), within the window and the smoothness rule of :meth:`_smooth_ready`.
        """
        cached = self._ready[eager]
        if cached is not None:
            return cached
        self._ready[eager] = ready = self._ready_at(eager)
        return ready

    def _ready_at(self, eager: bool) -> float:
        if not self.capacity:
            return math.inf
        ready = self._paused_until
        if self._times:
            times = self._times
            ready = max(ready, self._smooth_ready())
            even = max(ready, times[-1] + self.spacing)
            if not (eager and self.eager_allowed):
                return even
            # A burst spends at most half the window (the slack of a quiet window):
            # under lasting demand the window stays full, and pacing stays even.
            half = math.ceil(self.capacity * EAGER_SHARE)
            eager_ready = max(ready, times[-1] + self.spacing / EAGER_SPEEDUP)
            if len(times) >= half:
                eager_ready = max(eager_ready, times[-half] + self.window)
            return min(even, eager_ready)
        return ready

    def pace(self) -> ListPace:
        """The ceiling, the rate, the last list call and the earliest next one."""
        last = self._times[-1] if self._times else None
        return ListPace(self.capacity, self.rate, last, self.ready_at())

    def _smooth_ready(self) -> float:
        """The earliest time a call keeps the window rule and leaves no long silence.

        Invariant: with ``n = capacity``, ``W = window`` and ``G = SMOOTH_GAPS *
        W / n``, a call at ``t`` is made only if calls at ``t + G, t + 2G, ...``
        could follow without more than ``n`` calls in any window. The call at
        ``t + jG`` (j >= 0; j = 0 is the call at ``t`` itself) fits the window
        when at most ``n - 1 - j`` of the earlier calls are younger than ``W``
        at that time. With the last ``m <= n`` calls ``c[0] <= ... <= c[m-1]``,
        that is ``t + jG >= c[m - n + j] + W``: so ``t >= c[k] + W - (k - m + n) G``
        for every k (j = 0: the window rule itself). Once it holds at ``t`` it
        holds at ``t + G`` for the next call, and evenly spaced calls (spacing
        >= W / n) always meet it; so, while there is demand, no gap exceeds G.
        """
        if self._smooth is None:
            times, n = self._times, self.capacity
            big_gap = SMOOTH_GAPS * self.window / n
            shift = n - len(times)
            self._smooth = max(c + self.window - (k + shift) * big_gap for k, c in enumerate(times))
        return self._smooth

    def spend(self, now: float) -> None:
        """A list call is made at ``now``."""
        self._times.append(now)
        self._smooth = None
        self._ready = [None, None]

    def pause_until(self, until: float) -> None:
        """No list call before ``until``."""
        self._paused_until = max(self._paused_until, until)
        self._ready = [None, None]

    def observe(self, remaining: int | None, *, now: float) -> None:
        """A list call was answered; ``remaining`` is its X-RateLimit-Remaining
        (None when the answer had none: on-premises Orchestrator has no limit)."""
        if remaining == 0:  # fewer than 10 left (§4): a 429 is next
            self._cut(THROTTLE_CUT, now)
        elif remaining is not None and remaining < self.low_remaining:
            self._cut(LOW_CUT, now)
        else:
            self._grow(now)

    def throttled(self, *, retry_after: float, now: float) -> None:
        """A list call got 429: pause ``retry_after`` seconds and slow down."""
        self.pause_until(now + max(0.0, retry_after))
        self._cut(THROTTLE_CUT, now, always=True)

    def _cut(self, factor: float, now: float, *, always: bool = False) -> None:
        self._grown_at = now  # growth restarts from the cut
        if not always and now - self._last_cut < self.cooldown:
            return
        self._last_cut = now
        self.rate = max(self.floor, self.rate * factor)
        self._ready = [None, None]
        self.cuts += 1

    def _grow(self, now: float) -> None:
        if self._grown_at is not None:
            step = self.capacity * GROWTH_FRACTION * (now - self._grown_at) / self.window
            self.rate = min(float(self.capacity), self.rate + max(0.0, step))
            self._ready = [None, None]
        self._grown_at = now
