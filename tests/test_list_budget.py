"""The adaptive list budget (pure, no event loop): AIMD on 429s and on a low
X-RateLimit-Remaining, and several clients on one tenant sharing it fairly."""

from __future__ import annotations

import heapq
import itertools
import random

import pytest

from async_orch._list_budget import LOW_REMAINING, SMOOTH_GAPS, ListBudget
from async_orch.simulator.ratelimit import RollingWindowLimiter


def test_it_starts_at_its_ceiling_paced_evenly() -> None:
    budget = ListBudget(60)
    assert budget.rate == 60 and budget.spacing == pytest.approx(1.0)
    budget.spend(0.0)
    assert budget.ready_at() == pytest.approx(1.0)


def test_a_low_remaining_count_slows_it_once_per_cooldown() -> None:
    budget = ListBudget(60)
    budget.observe(LOW_REMAINING - 1, now=0.0)
    assert budget.rate == pytest.approx(45.0)  # x 0.75
    budget.observe(
        LOW_REMAINING - 1, now=5.0
    )  # within the cooldown (10 s): the window is still draining
    assert budget.rate == pytest.approx(45.0)
    budget.observe(LOW_REMAINING - 1, now=10.0)
    assert budget.rate == pytest.approx(33.75) and budget.cuts == 2


def test_a_429_halves_the_rate_and_pauses_for_retry_after() -> None:
    budget = ListBudget(60)
    budget.throttled(retry_after=7, now=100.0)
    assert budget.rate == pytest.approx(30.0)
    assert budget.ready_at() == pytest.approx(107.0)
    budget.throttled(retry_after=1, now=108.0)  # every 429 counts, cooldown or not
    assert budget.rate == pytest.approx(15.0)


def test_fewer_than_10_left_halves_the_rate() -> None:
    budget = ListBudget(60)
    budget.observe(0, now=0.0)  # the header reads 0 below 10 (orchestrator-api.md §4)
    assert budget.rate == pytest.approx(30.0)


def test_it_recovers_additively_up_to_its_ceiling() -> None:
    budget = ListBudget(60)
    budget.throttled(retry_after=1, now=0.0)  # 30 a minute
    budget.observe(50, now=60.0)  # a minute of good answers: + 6 (a tenth of 60)
    assert budget.rate == pytest.approx(36.0)
    budget.observe(None, now=1000.0)  # no header (on-premises): as good as plenty left
    assert budget.rate == 60.0


def test_the_rate_never_falls_below_one_call_a_window() -> None:
    budget = ListBudget(60)
    for minute in range(100):
        budget.throttled(retry_after=0, now=minute * 60.0)
    assert budget.rate == 1.0


def _share_a_tenant(
    clients: int, *, ceiling: int, others: float, minutes: int
) -> dict[str, list[int]]:
    """Clients that always have jobs to list, against the simulator's limiter (100 a
    minute) with ``others`` calls a minute of other load; answers arrive 50 ms later."""
    limiter = RollingWindowLimiter(100, 60, other_per_minute=others)
    budgets = [ListBudget(ceiling) for _ in range(clients)]
    calls, refused, late = [0] * clients, [0] * clients, [0] * clients
    events = [(0.0, i) for i in range(clients)]
    end = minutes * 60.0
    while events:
        now, i = heapq.heappop(events)
        if now > end:
            break
        budget = budgets[i]
        if budget.ready_at() > now:
            heapq.heappush(events, (budget.ready_at(), i))
            continue
        budget.spend(now)
        decision = limiter.acquire(now + 0.05)
        if decision.allowed:
            calls[i] += 1
            late[i] += now >= end - 300
            budget.observe(decision.remaining, now=now + 0.05)
        else:
            refused[i] += 1
            assert decision.retry_after is not None
            budget.throttled(retry_after=decision.retry_after, now=now + 0.05)
        heapq.heappush(events, (max(now + 0.05, budget.ready_at()), i))
    return {"calls": calls, "refused": refused, "last_5_min": late}


def test_three_clients_on_one_tenant_share_it_fairly_without_a_429_storm() -> None:
    # Each may take 60 a minute; with 30 a minute of other load, 3 x 60 would be
    # refused ~100 times a minute without adapting.
    seen = _share_a_tenant(3, ceiling=60, others=30, minutes=10)
    # A handful each, all in the first minute: the others' load fills the window
    # while three clients start at 60 a minute each.
    assert max(seen["refused"]) <= 5
    shares = [n / 5 for n in seen["last_5_min"]]  # calls a minute, once settled
    assert sum(shares) + 30 <= 100
    assert sum(shares) >= 35  # not starved: most of what the others leave is used
    assert max(shares) <= 1.4 * min(shares)  # fair


def test_a_lone_client_keeps_most_of_what_others_leave() -> None:
    seen = _share_a_tenant(1, ceiling=60, others=30, minutes=10)
    assert seen["refused"] == [0]
    assert seen["last_5_min"][0] / 5 >= 40


def test_an_eager_call_may_come_four_times_sooner_than_the_even_spacing() -> None:
    budget = ListBudget(20)  # one call every 3 s when paced evenly
    budget.spend(0.0)
    assert budget.ready_at() == pytest.approx(3.0)
    assert budget.ready_at(eager=True) == pytest.approx(0.75)


def test_an_eager_burst_spends_half_the_window_and_leaves_no_long_silence() -> None:
    budget = ListBudget(20)  # the window holds 20 calls; 2 spacings are 6 s
    made: list[float] = []
    now = 0.0
    while now < 120.0:
        made.append(now)
        budget.spend(now)
        now = budget.ready_at(eager=True)
    # 10 calls in the first 7 s (half the window), then even pacing (3 s) until
    # the other 10 must be spread 6 s apart (not one each 3 s until the window
    # is full, then 30 s of silence); then even pacing: no burst again while
    # demand lasts, as the window stays full.
    burst = [0.75 * k for k in range(10)]
    even = [9.75, 12.75, 15.75, 18.75]
    spread = [24.0 + 6 * k for k in range(7)]
    assert made[:21] == pytest.approx(burst + even + spread)
    gaps = [b - a for a, b in itertools.pairwise(made[20:])]
    assert gaps == pytest.approx([3.0] * len(gaps))


def test_an_even_call_after_a_burst_waits_so_the_window_can_spread_the_rest() -> None:
    budget = ListBudget(20)
    for k in range(12):  # a burst
        budget.spend(0.75 * k)
    # Even pacing would come 3 s after the last call; the window can still
    # spread its other 8 calls 6 s apart only if the next waits until 12 s.
    assert budget.ready_at() == pytest.approx(12.0)
    assert budget.ready_at(eager=True) == pytest.approx(12.0)


def test_no_eager_call_until_the_rate_recovers_after_a_429() -> None:
    budget = ListBudget(20)
    budget.spend(0.0)
    budget.throttled(retry_after=1, now=0.5)  # 10 a minute: 6 s apart
    budget.spend(1.0)
    assert not budget.eager_allowed
    assert budget.ready_at(eager=True) == budget.ready_at() == pytest.approx(7.0)
    # Additive growth: +2 a minute per minute of good answers, back at 20 after 5.
    for minute in range(1, 5):
        budget.observe(80, now=0.5 + 60 * minute)
        assert budget.eager_allowed is False
    budget.observe(80, now=0.5 + 300)
    assert (budget.eager_allowed, budget.rate) == (True, 20)


def test_eager_spending_keeps_the_window_and_leaves_no_long_silence() -> None:
    """Property test (seeded random loop; hypothesis is not a dependency): under any
    mix of eager and even demand, idle spells, low remaining counts and 429s,
    no window holds more than the ceiling, no eager call beats the even spacing
    while the rate is below its ceiling, and while demand lasts (no pause) the
    gap after a call is at most SMOOTH_GAPS spacings."""
    rng = random.Random(16)
    for trial in range(200):
        ceiling = rng.choice([1, 2, 3, 6, 20, 60, 100])
        window = rng.choice([60.0, 6.0])
        budget = ListBudget(ceiling, window=window)
        made: list[float] = []
        now = 0.0
        for _ in range(rng.randint(10, 300)):
            eager = rng.random() < 0.7
            ready = budget.ready_at(eager=eager)
            if eager and not budget.eager_allowed:
                assert ready == budget.ready_at(), (trial, now)
            if rng.random() < 0.1:  # demand pauses: the next call comes later
                now = max(now, ready) + rng.uniform(0, 2 * window)
            else:
                now = max(now, ready)
            if made and rng.random() < 0.9:
                # Demand lasted since the last call: no gap beyond SMOOTH_GAPS spacings.
                previous = made[-1]
                if budget.ready_at() > budget._paused_until:
                    limit = previous + SMOOTH_GAPS * budget.spacing + 1e-9
                    assert budget.ready_at(eager=eager) <= limit, (trial, made[-5:])
            budget.spend(now)
            made.append(now)
            inside = [t for t in made if t > now - window + 1e-9]  # float rounding at the edge
            assert len(inside) <= ceiling, (trial, now, inside, budget.rate)
            roll = rng.random()
            if roll < 0.02:
                budget.throttled(retry_after=rng.uniform(0, window), now=now)
            elif roll < 0.06:
                budget.observe(rng.randint(0, LOW_REMAINING - 1), now=now)
            else:
                budget.observe(80, now=now)
