"""Exactly-once starts at the wire: which StartJobs answers lead to a lookup by
Reference, which to another post, and which to a NOT_STARTED or UNCERTAIN report.

aioresponses plays Orchestrator, so each case is exact: a response lost after
the job was created, a 429, a 503 with and without Retry-After, a refused
connection, and a lookup that fails. Nothing sleeps (a reconcile window of 0:
one lookup, already after the window).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from conftest import aioresponses_mock
from yarl import URL

from async_orch._config import RetryPolicy, Settings, StaticToken
from async_orch._dispatcher import Dispatcher, DispatchLimits, Started, StartFailure
from async_orch._errors import RateLimitedError, ServerError, UncertainStartError
from async_orch._jobs import JobRequest
from async_orch._resources import OrchestratorAPI
from async_orch._transport import Transport

BASE = "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_"
START = BASE + "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
JOBS = re.compile(re.escape(BASE + "/odata/Jobs") + r"\?.*$")
FOLDER = {"Id": 7, "Key": "0f5c9a4e-1d7b-4c1e-9a55-0a1b2c3d4e5f", "DisplayName": "Shared",
          "FullyQualifiedName": "Shared"}  # fmt: skip
RELEASE = {"Id": 3, "Key": "9d1c2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d", "Name": "Echo",
           "ProcessKey": "Echo"}  # fmt: skip
REFERENCE = "order-42"


@pytest.fixture
def mock() -> Any:
    with aioresponses_mock() as m:
        m.get(re.compile(re.escape(BASE + "/odata/Folders") + r"\?.*$"),
              payload={"value": [FOLDER]}, repeat=True)  # fmt: skip
        m.get(re.compile(re.escape(BASE + "/odata/Releases") + r"\?.*$"),
              payload={"value": [RELEASE]}, repeat=True)  # fmt: skip
        yield m


@pytest.fixture
async def dispatcher() -> AsyncIterator[Dispatcher]:
    async def no_sleep(seconds: float) -> None:
        return None

    settings = Settings(
        url=BASE,
        credentials=StaticToken(token="t0k3n"),
        retry=RetryPolicy(attempts=3, wait_initial=0.0, wait_jitter=0.0, reconcile_window=0.0),
    )
    async with aiohttp.ClientSession() as session:
        transport = Transport(settings, session=session, sleep=no_sleep)
        yield Dispatcher(
            OrchestratorAPI(transport),
            limits=DispatchLimits(start_attempts=4),
            retry=settings.retry,
            sleep=no_sleep,
        )


def job(job_id: int = 501, state: str = "Pending") -> dict[str, Any]:
    return {"Id": job_id, "Key": f"5b0c{job_id:04d}-0000-4000-8000-000000000000",
            "State": state, "Reference": REFERENCE}  # fmt: skip


def posts(mock: Any) -> int:
    return len(mock.requests.get(("POST", URL(START)), []))


LOOKUP = f"Reference in ('{REFERENCE}')"


def lookups(mock: Any) -> list[str]:
    """The $filter of every GET /odata/Jobs sent."""
    found = []
    for (method, url), calls in mock.requests.items():
        if method == "GET" and str(url).split("?")[0] == BASE + "/odata/Jobs":
            query = parse_qs(urlsplit(str(url)).query)
            found += [query["$filter"][0]] * len(calls)
    return found


async def start_one(dispatcher: Dispatcher) -> Started | StartFailure:
    (outcome,) = await dispatcher.start(
        [JobRequest(process="Echo", folder="Shared", inputs={"x": 1}, reference=REFERENCE)]
    )
    return outcome


async def test_a_lost_answer_is_reconciled_by_reference_and_not_posted_again(
    mock: Any, dispatcher: Dispatcher
) -> None:
    mock.post(START, exception=aiohttp.ServerDisconnectedError())  # the job exists, though
    mock.get(JOBS, payload={"value": [job(501)]})

    outcome = await start_one(dispatcher)

    assert isinstance(outcome, Started)
    assert [h.job_id for h in outcome.handles] == [501]
    assert outcome.attempts == 1
    assert posts(mock) == 1
    assert lookups(mock) == [LOOKUP]


@pytest.mark.parametrize(
    "status", [500, 502, 504, 503], ids=["500", "502", "504", "503-without-retry-after"]
)
async def test_a_5xx_that_may_have_run_is_looked_up_first(
    mock: Any, dispatcher: Dispatcher, status: int
) -> None:
    # A 503 without Retry-After may come from a proxy after forwarding: unknown too.
    mock.post(START, status=status, body="gateway trouble")
    mock.get(JOBS, payload={"value": []})  # not created after all
    mock.post(START, status=201, payload={"value": [job(502)]})

    outcome = await start_one(dispatcher)

    assert isinstance(outcome, Started) and outcome.handles[0].job_id == 502
    assert posts(mock) == 2
    assert lookups(mock) == [LOOKUP]


@pytest.mark.parametrize(
    ("refusal", "kwargs"),
    [
        ("429", {"status": 429, "headers": {"Retry-After": "1"}, "payload": {"message": "slow"}}),
        ("503+Retry-After", {"status": 503, "headers": {"Retry-After": "2"}, "body": "busy"}),
        ("refused", {"exception": "refused"}),
    ],
)
async def test_a_refused_start_is_posted_again_without_a_lookup(
    mock: Any, dispatcher: Dispatcher, refusal: str, kwargs: dict[str, Any]
) -> None:
    if kwargs.get("exception") == "refused":
        kwargs = {
            "exception": aiohttp.ClientConnectorError(
                aiohttp.client_reqrep.ConnectionKey(
                    "cloud.uipath.com", 443, True, True, None, None, None
                ),
                ConnectionRefusedError(111, "Connection refused"),
            )
        }
    mock.post(START, **kwargs)
    mock.post(START, status=201, payload={"value": [job(503)]})

    outcome = await start_one(dispatcher)

    assert isinstance(outcome, Started) and outcome.handles[0].job_id == 503
    assert posts(mock) == 2
    assert lookups(mock) == []  # nothing can have been created: no lookup needed


async def test_a_start_refused_too_often_is_not_started(mock: Any, dispatcher: Dispatcher) -> None:
    for _ in range(12):
        mock.post(START, status=503, headers={"Retry-After": "1"}, body="busy")

    outcome = await start_one(dispatcher)

    assert isinstance(outcome, StartFailure)
    assert isinstance(outcome.error, ServerError) and outcome.error.status == 503
    assert outcome.attempts == 4
    assert posts(mock) == 4  # start_attempts POSTs in all: the transport adds none
    assert lookups(mock) == []


async def test_a_persistent_429_costs_at_most_start_attempts_posts(
    mock: Any, dispatcher: Dispatcher
) -> None:
    # Was 20 POSTs for one request: 4 start attempts x 5 transport tries.
    mock.post(START, status=429, headers={"Retry-After": "0"}, payload={"message": "slow"},
              repeat=True)  # fmt: skip

    outcome = await start_one(dispatcher)

    assert isinstance(outcome, StartFailure)
    assert isinstance(outcome.error, RateLimitedError)
    assert posts(mock) == 4
    assert lookups(mock) == []


async def test_a_batch_stops_re_posting_once_its_allowance_is_spent(mock: Any) -> None:
    async def no_sleep(seconds: float) -> None:
        return None

    settings = Settings(
        url=BASE,
        credentials=StaticToken(token="t0k3n"),
        retry=RetryPolicy(wait_initial=0.0, wait_jitter=0.0, batch_retries=2),
    )
    mock.post(START, status=429, headers={"Retry-After": "0"}, payload={"message": "slow"},
              repeat=True)  # fmt: skip
    async with aiohttp.ClientSession() as session:
        transport = Transport(settings, session=session, sleep=no_sleep)
        dispatcher = Dispatcher(
            OrchestratorAPI(transport),
            limits=DispatchLimits(start_attempts=4, max_in_flight=1),
            retry=settings.retry,
            sleep=no_sleep,
        )
        outcomes = await dispatcher.start(
            [JobRequest(process="Echo", folder="Shared", reference=f"r-{i}") for i in range(5)]
        )

    assert all(isinstance(o, StartFailure) for o in outcomes)
    assert posts(mock) == 5 + 2  # one each, plus the batch's two re-posts


async def test_when_the_lookup_fails_it_is_uncertain_and_never_posted_again(
    mock: Any, dispatcher: Dispatcher
) -> None:
    mock.post(START, exception=aiohttp.ServerDisconnectedError())
    mock.get(JOBS, status=500, payload={"message": "down"}, repeat=True)
    mock.post(START, status=201, payload={"value": [job(504)]})  # must never be used

    outcome = await start_one(dispatcher)

    assert isinstance(outcome, StartFailure)
    assert isinstance(outcome.error, UncertainStartError)
    assert outcome.error.reference == REFERENCE
    message = str(outcome.error)
    assert REFERENCE in message and "not posted again" in message
    assert "look for that Reference" in message
    assert posts(mock) == 1
    # RetryPolicy.attempts lookups (3), each tried once: no transport retries on top.
    assert lookups(mock) == [LOOKUP] * 3


async def test_run_reports_an_unreconciled_start_as_uncertain(
    mock: Any, dispatcher: Dispatcher
) -> None:
    mock.post(START, exception=aiohttp.ServerDisconnectedError())
    mock.get(JOBS, status=500, payload={"message": "down"}, repeat=True)

    (result,) = await dispatcher.run(
        [JobRequest(process="Echo", folder="Shared", reference=REFERENCE)]
    )

    assert result.outcome.value == "uncertain"
    assert isinstance(result.error, UncertainStartError)
    assert posts(mock) == 1


async def test_jobs_count_found_by_reference_are_all_adopted(
    mock: Any, dispatcher: Dispatcher
) -> None:
    mock.post(START, exception=aiohttp.ServerDisconnectedError())
    mock.get(JOBS, payload={"value": [job(601), job(602), job(603)]})

    (outcome,) = await dispatcher.start(
        [JobRequest(process="Echo", folder="Shared", reference=REFERENCE, jobs_count=3)]
    )

    assert isinstance(outcome, Started)
    assert [h.job_id for h in outcome.handles] == [601, 602, 603]
    assert posts(mock) == 1


@pytest.mark.parametrize(
    "answer",
    [
        {"body": "<html>gateway</html>"},
        {"payload": {"value": [dict(job(501), Id="501")]}},
        {"payload": {"value": [dict(job(501), CreationTime="yesterday")]}},
        {"payload": {"value": [dict(job(501), CreationTime="0001-01-01T00:00:00+05:00")]}},
        # ModernJobsCount creates a job or refuses: a success listing none left it out.
        {"payload": {"value": []}},
        # Nested past the recursion limit: was a bare RecursionError out of the batch.
        {"body": "[" * 5_000},
    ],
    ids=[
        "not-json",
        "id-as-text",
        "odd-creation-time",
        "creation-time-out-of-range",
        "no-rows",
        "nested-too-deep",
    ],
)
async def test_a_2xx_start_that_cannot_be_read_is_looked_up_not_reported_not_started(
    mock: Any, dispatcher: Dispatcher, answer: dict[str, Any]
) -> None:
    # A 2xx: the job exists, whatever its answer says; only its Reference can name it.
    mock.post(START, status=201, **answer)
    mock.get(JOBS, payload={"value": [job(501)]})

    outcome = await start_one(dispatcher)

    assert isinstance(outcome, Started), outcome
    assert [h.job_id for h in outcome.handles] == [501]
    assert posts(mock) == 1
    assert lookups(mock) == [LOOKUP]
