"""List calls sized by encoded URL length, not by a count (issue 14 point 2).

An ``in (...)`` list counts once toward OData's node limit, so a list call's
real bound is its URL: pure tests of the sizing (no event loop), then the
client against the simulator over real sockets with every list call recorded.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from conftest import add_simulator_middleware
from test_big_payloads import SCENARIO
from test_dispatcher_support import fast_poll, fast_settings
from yarl import URL

from async_orch._client import OrchestratorClient
from async_orch._jobs import JobRequest, Outcome
from async_orch._planner import ListBatch, PollPlanner, PollPolicy
from async_orch._resources import odata_quote
from async_orch._url_lists import (
    MAX_QUERY_CHARS,
    PAGE_SIZE,
    ListRoom,
    encoded_length,
    job_states_query,
    query_length,
    references_query,
    split_ids_to_fit,
    split_to_fit,
)
from async_orch.simulator import parse_scenario

PAGING = {"$top": str(PAGE_SIZE), "$skip": str(2**31 - 1)}


def sent_length(params: dict[str, str]) -> int:
    """The query string's length as aiohttp puts it on the wire."""
    return len(URL("http://h/odata/Jobs").with_query({**params, **PAGING}).raw_query_string)


def test_encoded_length_is_what_aiohttp_sends() -> None:
    assert encoded_length("123") == 3
    assert encoded_length("a b") == 3  # '+'
    assert encoded_length("é") == 6  # two UTF-8 bytes, %XX each
    assert encoded_length("🙂") == 12
    # Letters and digits outside ASCII are encoded too (the short cut for ids is ASCII only).
    assert encoded_length("Ab09") == 4
    assert encoded_length("²") == 6  # a digit to str.isdigit, two UTF-8 bytes on the wire
    assert encoded_length("é1") == 7  # alphanumeric to str.isalnum
    text = "Reference in ('é 🙂','x&y')"
    assert query_length({"$filter": text}) == len("$filter=") + encoded_length(text)


@pytest.mark.parametrize("digits", [3, 9, 15])
def test_id_lists_are_cut_by_length_and_each_call_fits(digits: int) -> None:
    ids = [str(10 ** (digits - 1) + n) for n in range(3000)]
    runs = split_to_fit(ids, str, lambda: ListRoom.of(job_states_query))
    assert [i for run in runs for i in run] == ids  # all kept, in order
    assert all(sent_length(job_states_query(run)) <= MAX_QUERY_CHARS for run in runs)
    # Full calls: adding the next id would have gone over.
    for run, following in itertools.pairwise(runs):
        assert sent_length(job_states_query([*run, following[0]])) > MAX_QUERY_CHARS - 1


def test_short_ids_fit_more_per_call_than_long_ones() -> None:
    def per_call(digits: int) -> int:
        ids = [str(10 ** (digits - 1) + n) for n in range(900)]
        return len(split_to_fit(ids, str, lambda: ListRoom.of(job_states_query))[0])

    assert per_call(3) > per_call(9) > per_call(15) > 90  # a fixed count would not adapt


def test_references_are_cut_by_their_encoded_length() -> None:
    plain = [odata_quote(f"ref-{n:04d}") for n in range(500)]
    accented = [odata_quote(f"réf-é-{n:04d}") for n in range(500)]  # é costs 6
    room = lambda: ListRoom.of(references_query)  # noqa: E731
    plain_runs, accented_runs = split_to_fit(plain, str, room), split_to_fit(accented, str, room)
    assert len(plain_runs[0]) > len(accented_runs[0])
    for run in plain_runs + accented_runs:
        assert sent_length(references_query(run)) <= MAX_QUERY_CHARS


def test_an_item_too_long_for_any_call_gets_a_call_of_its_own() -> None:
    huge = "'" + "x" * MAX_QUERY_CHARS + "'"
    runs = split_to_fit(["'a'", huge, "'b'"], str, lambda: ListRoom.of(references_query))
    assert runs == [["'a'"], [huge], ["'b'"]]


def test_a_room_refuses_past_its_value_count_too() -> None:
    room = ListRoom.of(job_states_query, max_values=2)
    assert room.take("1") and room.take("2")
    assert not room.take("3")
    assert room.values == 0


@pytest.mark.parametrize("max_values", [3, 1000])
def test_taking_ids_at_once_takes_what_one_by_one_takes(max_values: int) -> None:
    ids = [7, 12345, 9_007_199_254_740_993, -4, *range(10**9, 10**9 + 400)]
    one_by_one = ListRoom.of(job_states_query, max_values=max_values)
    taken = sum(1 for _ in itertools.takewhile(one_by_one.take, map(str, ids)))
    at_once = ListRoom.of(job_states_query, max_values=max_values)
    assert at_once.take_ids(ids) == taken < len(ids)
    assert (at_once.values, at_once.chars) == (one_by_one.values, one_by_one.chars)


@pytest.mark.parametrize("max_values", [1, 7, 1000])
@pytest.mark.parametrize("seed", range(6))
def test_splitting_ids_at_once_splits_as_one_by_one(seed: int, max_values: int) -> None:
    rng = random.Random(seed)
    ids = [rng.choice([rng.randrange(10**12), -rng.randrange(10**6), 10**600]) for _ in range(2500)]
    room = lambda: ListRoom.of(job_states_query, max_values=max_values)  # noqa: E731
    expected = split_to_fit(ids, str, room)
    assert [list(run) for run in split_ids_to_fit(ids, room)] == expected
    assert len(expected) > 1  # (several calls, and a 601-digit id too long for any alone)
    assert split_ids_to_fit([], room) == []


def test_a_room_for_a_known_query_is_the_same_on_every_call() -> None:
    fixed = query_length({**job_states_query([]), **PAGING})
    for _ in range(2):
        assert ListRoom.of(job_states_query).chars == MAX_QUERY_CHARS - fixed


def test_the_planner_fills_a_list_call_up_to_its_url_budget() -> None:
    planner: PollPlanner[str] = PollPlanner(
        PollPolicy(list_budget_per_minute=60, range_threshold=None)  # id lists only
    )
    ids = [900_000_000_000 + n for n in range(400)]  # 12 digits, like the simulator's
    for job_id in ids:
        planner.add(job_id, "A", now=0.0)
    action = planner.next_action(now=5.0)
    assert isinstance(action, ListBatch)
    chosen = [str(i) for i in action.job_ids]
    assert len(chosen) > 90  # more than the old fixed batch
    assert sent_length(job_states_query(chosen)) <= MAX_QUERY_CHARS
    more = str(ids[len(chosen)])
    assert sent_length(job_states_query([*chosen, more])) > MAX_QUERY_CHARS - 1


# -- over real sockets -----------------------------------------------------------------


@pytest.fixture
def job_lists(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(encoded query length, values in its 'in' list) of every GET /odata/Jobs."""
    seen: list[tuple[int, int]] = []

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "GET" and request.path.lower().endswith("/odata/jobs"):
            in_list = re.search(r" in \(([^)]*)\)", request.query.get("$filter", ""))
            values = len(in_list.group(1).split(",")) if in_list else 0
            seen.append((len(request.raw_path.partition("?")[2]), values))
        return await handler(request)

    add_simulator_middleware(monkeypatch, record)
    return seen


async def test_every_job_is_seen_with_list_calls_sized_by_url(
    start_simulator: Callable[..., Any], job_lists: list[tuple[int, int]]
) -> None:
    sim = await start_simulator(parse_scenario(SCENARIO, name="lists"), time_scale=100.0)
    requests = [JobRequest(process="Echo", folder="Shared") for _ in range(400)]
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll()) as orch:
        results = await orch.run_jobs(requests)
        ids = [r.handle.job_id for r in results if r.handle is not None]
        assert len(ids) == 400
        job_lists.clear()
        # A caller's long list: split over calls, every job returned once.
        listed = await orch.api.list_jobs("Shared", ids=ids)
        states = await orch.api.job_states("Shared", ids)
    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL] * 400
    assert sorted(j.id for j in listed) == sorted(ids)
    assert sorted(states) == sorted(ids)
    assert len(job_lists) >= 4  # two lists of 400 twelve-digit ids: two calls or more each
    assert all(length <= MAX_QUERY_CHARS for length, _ in job_lists)
    assert max(values for _, values in job_lists) > 90  # not the old fixed batch
    assert "(uri too long)" not in sim.simulator.stats()["requests"]
