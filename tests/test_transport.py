"""The Transport at the wire: headers, 401 renewal, retries, error mapping, counters.

aioresponses stands in for Orchestrator and the token endpoint; sleeping is
recorded, never done.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Any

import aiohttp
import aiohttp.web
import anyio
import pytest
import structlog
from aioresponses import CallbackResult
from conftest import aioresponses_mock, serve_on_loopback
from fakes import FakeSender, reply
from yarl import URL

from async_orch._blobs import BlobAccess, BlobTooLargeError
from async_orch._config import (
    ClientCredentials,
    RefreshTokenCredentials,
    RetryPolicy,
    Settings,
    StaticToken,
)
from async_orch._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTimeoutError,
    ResponseDecodeError,
    ServerError,
    TransportError,
    UnauthorizedError,
)
from async_orch._http import AiohttpSender, Response
from async_orch._protocol import folder_headers
from async_orch._retries import compute_delay
from async_orch._transport import Transport

BASE = "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_"
TOKEN_URL = "https://cloud.uipath.com/acme/identity_/connect/token"
JOBS = BASE + "/odata/Jobs"
JOBS_ANY_QUERY = re.compile(re.escape(JOBS) + r"(\?.*)?$")
JOB_42 = BASE + "/odata/Jobs(42)"
START = BASE + "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
SECRET = "app-secret-6d1f0e"
CC = ClientCredentials(client_id="app-id", client_secret=SECRET)
ERROR_BODY = {"message": "Something is wrong.", "errorCode": 1000, "traceId": "00-abc-01"}
ABP_401 = {
    "message": "You are not authenticated!",
    "errorCode": 0,
    "result": None,
    "success": False,
    "error": {"code": 0, "message": "You are not authenticated!", "details": "Sign in."},
    "unAuthorizedRequest": True,
    "__abp": True,
}
START_BODY = {"startInfo": {"ReleaseKey": "k", "Strategy": "ModernJobsCount", "JobsCount": 1}}


class Sleeps(list[float]):
    """An injected ``sleep`` that records the delays instead of waiting."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def mock() -> Any:
    with aioresponses_mock() as m:
        yield m


def transport(
    session: aiohttp.ClientSession,
    sleeps: Sleeps,
    *,
    seed: int = 0,
    **settings: Any,
) -> Transport:
    settings.setdefault("url", BASE)
    settings.setdefault("credentials", CC)
    return Transport(Settings(**settings), session=session, sleep=sleeps, rng=random.Random(seed))


def token(mock: Any, *values: str) -> None:
    for value in values:
        mock.post(TOKEN_URL, payload={"access_token": value, "expires_in": 3600})


def calls(mock: Any, method: str, url: str) -> list[dict[str, Any]]:
    """kwargs of every request sent to ``url`` (any query string)."""
    return [
        call.kwargs
        for (m, u), items in mock.requests.items()
        if m == method and str(u).split("?")[0] == url
        for call in items
    ]


def refused() -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("cloud.uipath.com", 443, True, True, None, None, None),
        ConnectionRefusedError(111, "Connection refused"),
    )


# -- what goes on the wire ---------------------------------------------------------------


async def test_get_sends_token_accept_folder_and_query(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(JOBS_ANY_QUERY, payload={"value": [{"Id": 1}]})
    response = await transport(session, sleeps).request(
        "get",
        "odata/Jobs",
        params={"$filter": "Id in (1,2)", "$top": 50},
        headers=folder_headers("Finance/Invoices"),
    )
    assert response.status == 200
    assert response.json() == {"value": [{"Id": 1}]}
    [call] = calls(mock, "GET", JOBS)
    assert call["headers"] == {
        "Accept": "application/json",
        "User-Agent": f"async-orch/{version('async-orch')}",  # from the metadata
        "X-UIPATH-FolderPath": "Finance/Invoices",
        "Authorization": "Bearer tok-1",
    }
    assert call["params"] == {"$filter": "Id in (1,2)", "$top": "50"}
    assert call["data"] is None
    assert sleeps == []


async def test_post_sends_compact_json(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.post(START, status=201, payload={"value": []})
    response = await transport(session, sleeps).request(
        "POST", "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs", json=START_BODY
    )
    assert response.status == 201
    [call] = calls(mock, "POST", START)
    assert call["data"] == json.dumps(START_BODY, separators=(",", ":")).encode()
    assert call["headers"]["Content-Type"] == "application/json"
    assert call["headers"]["Authorization"] == "Bearer tok-1"


async def test_legacy_urls_carry_the_tenant_header(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    mock.post("https://account.uipath.com/oauth/token", payload={"access_token": "t"})
    legacy = "https://platform.uipath.com/acct/tnt"
    mock.get(legacy + "/odata/Folders", payload={"value": []})
    credentials = RefreshTokenCredentials(client_id="c", refresh_token=SECRET, tenant_name="tnt")
    await transport(session, sleeps, url=legacy, credentials=credentials).request(
        "GET", "odata/Folders"
    )
    [call] = calls(mock, "GET", legacy + "/odata/Folders")
    assert call["headers"]["X-UIPATH-TenantName"] == "tnt"


async def test_response_json_explains_non_json_bodies(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(JOB_42, body="")
    mock.get(JOB_42, body="<html>Sign in</html>", content_type="text/html")
    t = transport(session, sleeps)
    empty = await t.request("GET", "odata/Jobs(42)")
    with pytest.raises(ResponseDecodeError, match="empty body"):
        empty.json()
    html = await t.request("GET", "odata/Jobs(42)")
    with pytest.raises(ResponseDecodeError, match="HTML page"):
        html.json()


def test_response_json_reads_a_body_with_a_utf8_byte_order_mark() -> None:
    body = '\ufeff{"Info": "café"}'.encode()
    assert Response(200, {}, body).json() == {"Info": "café"}
    with pytest.raises(ResponseDecodeError, match="empty body"):
        Response(200, {}, b" \r\n").json()
    with pytest.raises(ResponseDecodeError, match="is not JSON"):
        Response(200, {}, b"\xff{oops").json()


@pytest.mark.parametrize(
    "body",
    [
        '{"Info": "café", "Id": [1, 2.5, null]}'.encode(),
        '{"Info": "café"}'.encode("utf-16-le"),  # starts "{", then a NUL byte
        '{"Info": "café"}'.encode("utf-16"),
        '[{"Id": 1}]'.encode("utf-32"),
        b' {"Id": 1}',
        b'{"Info": "\xed\xa0\x80"}',  # a surrogate in UTF-8 bytes, as json.loads reads it
    ],
)
def test_response_json_reads_what_json_loads_reads_from_bytes(body: bytes) -> None:
    # Bodies starting "{" or "[" are decoded as UTF-8 directly (no encoding detection).
    assert Response(200, {}, body).json() == json.loads(body)


# -- 401: renew once -----------------------------------------------------------------------


async def test_401_renews_the_token_and_retries_once(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1", "tok-2")
    mock.post(START, status=401, payload=ABP_401)
    mock.post(START, status=201, payload={"value": []})
    t = transport(session, sleeps)
    response = await t.request("POST", "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs")
    assert response.status == 201
    sent = calls(mock, "POST", START)
    assert [c["headers"]["Authorization"] for c in sent] == ["Bearer tok-1", "Bearer tok-2"]
    assert sleeps == []  # a renewal is not a backoff
    label = "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
    assert t.stats.count(label, 401) == 1
    assert t.stats.count(label, 201) == 1
    assert t.stats.token_requests == 2


async def test_a_second_401_explains_the_usual_causes(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1", "tok-2")
    mock.get(JOB_42, status=401, payload=ABP_401, repeat=True)
    with pytest.raises(AuthenticationError) as caught:
        await transport(session, sleeps).request("GET", "odata/Jobs(42)")
    error = caught.value
    assert error.status == 401
    assert error.server_message == "You are not authenticated!"
    assert error.hint is not None
    assert BASE in error.hint
    assert "no folder in the path" in error.hint
    assert isinstance(error.__cause__, UnauthorizedError)
    assert len(calls(mock, "GET", JOB_42)) == 2
    assert len(calls(mock, "POST", TOKEN_URL)) == 2


async def test_a_refused_static_token_asks_for_a_new_one(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    mock.get(JOB_42, status=401, payload=ABP_401, repeat=True)
    t = transport(session, sleeps, credentials=StaticToken(token="pat-value-123"))
    with pytest.raises(AuthenticationError) as caught:
        await t.request("GET", "odata/Jobs(42)")
    assert "create a new personal access token" in str(caught.value)
    assert "pat-value-123" not in str(caught.value)
    assert len(calls(mock, "GET", JOB_42)) == 1
    assert calls(mock, "POST", TOKEN_URL) == []


async def test_50_requests_refused_together_cause_one_renewal(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1", "tok-2")

    def by_token(url: URL, **kwargs: Any) -> CallbackResult:
        if kwargs["headers"]["Authorization"] == "Bearer tok-1":
            return CallbackResult(status=401, payload=ABP_401)
        return CallbackResult(payload={"Id": 42})

    mock.get(JOB_42, callback=by_token, repeat=True)
    t = transport(session, sleeps)
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await t.request("GET", "odata/Jobs(42)")).status)

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(one)
    assert statuses == [200] * 50
    assert len(calls(mock, "POST", TOKEN_URL)) == 2
    assert t.stats.token_requests == 2


# -- Retry-After and backoff ------------------------------------------------------------------


async def test_retry_after_seconds_is_the_whole_wait(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(JOB_42, status=429, payload=ERROR_BODY, headers={"Retry-After": "2"})
    mock.get(JOB_42, payload={"Id": 42})
    t = transport(session, sleeps)
    assert (await t.request("GET", "odata/Jobs(42)")).json() == {"Id": 42}
    assert sleeps == [2.0]
    assert (t.stats.rate_limited, t.stats.retries) == (1, 1)


async def test_retry_after_http_date_is_measured_on_the_servers_clock(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(
        JOB_42,
        status=429,
        headers={
            "Retry-After": "Wed, 01 Jan 2025 00:00:30 GMT",
            "Date": "Wed, 01 Jan 2025 00:00:00 GMT",
        },
    )
    mock.get(JOB_42, payload={"Id": 42})
    await transport(session, sleeps).request("GET", "odata/Jobs(42)")
    assert sleeps == [30.0]


async def test_rate_limit_exhausted_says_so(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(
        JOBS_ANY_QUERY, status=429, payload=ERROR_BODY, headers={"Retry-After": "1"}, repeat=True
    )
    t = transport(session, sleeps, retry=RetryPolicy(attempts=3))
    with pytest.raises(RateLimitedError) as caught:
        await t.request("GET", "odata/Jobs", params={"$top": 10})
    error = caught.value
    assert "rate limit stayed exhausted after 3 tries" in str(error)
    assert "Something is wrong." in str(error)
    assert error.retry_after == 1.0
    assert error.error_code == 1000
    assert isinstance(error.__cause__, RateLimitedError)
    assert sleeps == [1.0, 1.0]
    assert len(calls(mock, "GET", JOBS)) == 3
    assert (t.stats.rate_limited, t.stats.retries) == (3, 2)
    assert t.stats.count("odata/Jobs", 429) == 3


async def test_a_wait_beyond_retry_after_max_gives_up_at_once(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(JOB_42, status=429, headers={"Retry-After": "600"}, repeat=True)
    with pytest.raises(RateLimitedError) as caught:
        await transport(session, sleeps).request("GET", "odata/Jobs(42)")
    assert "asked to wait 600 s" in str(caught.value)
    assert caught.value.retry_after == 600.0
    assert sleeps == []


async def test_429_without_retry_after_backs_off(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(JOB_42, status=429)
    mock.get(JOB_42, payload={})
    await transport(session, sleeps, seed=7).request("GET", "odata/Jobs(42)")
    assert sleeps == [compute_delay(1, policy=RetryPolicy(), rng=random.Random(7))]


async def test_backoff_grows_within_bounds_then_gives_up(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(JOB_42, status=503, body="", repeat=True)
    policy = RetryPolicy(attempts=5)
    with pytest.raises(ServerError) as caught:
        await transport(session, sleeps, seed=3, retry=policy).request("GET", "odata/Jobs(42)")
    assert "503 Service Unavailable with an empty body" in str(caught.value)
    rng = random.Random(3)
    assert sleeps == [compute_delay(n, policy=policy, rng=rng) for n in range(1, 5)]
    for n, delay in enumerate(sleeps, start=1):
        low = policy.wait_initial * 2 ** (n - 1)
        assert low <= delay <= min(policy.wait_max, low + policy.wait_jitter)
    assert len(calls(mock, "GET", JOB_42)) == 5


# -- no blind retry for StartJobs ---------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_start_jobs_is_not_retried_when_it_may_have_acted(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any, status: int
) -> None:
    token(mock, "tok-1")
    mock.post(START, status=status, payload=ERROR_BODY, repeat=True)
    with pytest.raises(ServerError) as caught:
        await transport(session, sleeps).request(
            "POST", "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs", json=START_BODY
        )
    assert caught.value.status == status
    assert len(calls(mock, "POST", START)) == 1
    assert sleeps == []


@pytest.mark.parametrize("headers", [{"Retry-After": "1"}, {}], ids=["503+Retry-After", "429"])
async def test_start_jobs_is_retried_when_it_was_refused(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any, headers: dict[str, str]
) -> None:
    token(mock, "tok-1")
    mock.post(START, status=503 if headers else 429, headers=headers)
    mock.post(START, status=201, payload={"value": []})
    response = await transport(session, sleeps).request(
        "POST", "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs", json=START_BODY
    )
    assert response.status == 201
    assert len(calls(mock, "POST", START)) == 2
    assert len(sleeps) == 1


async def test_a_post_marked_idempotent_is_retried(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    stop = BASE + "/odata/Jobs/UiPath.Server.Configuration.OData.StopJobs"
    token(mock, "tok-1")
    mock.post(stop, status=502)
    mock.post(stop, status=200, body="")
    response = await transport(session, sleeps).request(
        "POST",
        "odata/Jobs/UiPath.Server.Configuration.OData.StopJobs",
        json={"jobIds": [1], "strategy": "SoftStop"},
        idempotent=True,
    )
    assert response.status == 200
    assert len(sleeps) == 1


@pytest.mark.parametrize(("method", "retried"), [("PUT", True), ("DELETE", True), ("POST", False)])
async def test_idempotency_follows_the_method_by_default(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any, method: str, retried: bool
) -> None:
    token(mock, "tok-1")
    mock.add(JOB_42, method=method, status=502)
    mock.add(JOB_42, method=method, status=200, payload={})
    t = transport(session, sleeps)
    if retried:
        assert (await t.request(method, "odata/Jobs(42)")).status == 200
    else:
        with pytest.raises(ServerError):
            await t.request(method, "odata/Jobs(42)")
    assert len(sleeps) == (1 if retried else 0)


# -- connection failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "error_class"),
    [
        (aiohttp.ServerDisconnectedError(), TransportError),
        (aiohttp.ClientPayloadError("Response payload is not completed"), TransportError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), TransportError),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), RequestTimeoutError),
        (TimeoutError(), RequestTimeoutError),
    ],
    ids=["disconnected", "payload", "reset", "read-timeout", "total-timeout"],
)
async def test_post_that_may_have_arrived_is_not_retried(
    session: aiohttp.ClientSession,
    sleeps: Sleeps,
    mock: Any,
    failure: Exception,
    error_class: type[TransportError],
) -> None:
    token(mock, "tok-1")
    mock.post(START, exception=failure)
    mock.post(START, status=201, payload={"value": []})
    t = transport(session, sleeps)
    with pytest.raises(error_class) as caught:
        await t.request("POST", "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs")
    error = caught.value
    assert error.may_have_reached_server is True
    assert error.__cause__ is failure
    assert not isinstance(error, aiohttp.ClientError)
    assert (error.method, error.url) == ("POST", START)
    assert len(calls(mock, "POST", START)) == 1
    assert sleeps == []
    assert t.stats.count("odata/Jobs/UiPath.Server.Configuration.OData.StartJobs", "error") == 1


@pytest.mark.parametrize(
    ("failure", "error_class"),
    [
        (refused(), TransportError),
        (aiohttp.ConnectionTimeoutError("Connection timeout to host"), RequestTimeoutError),
    ],
    ids=["refused", "connect-timeout"],
)
async def test_post_that_never_left_is_retried(
    session: aiohttp.ClientSession,
    sleeps: Sleeps,
    mock: Any,
    failure: Exception,
    error_class: type[TransportError],
) -> None:
    token(mock, "tok-1")
    mock.post(START, exception=failure)
    mock.post(START, status=201, payload={"value": []})
    t = transport(session, sleeps)
    response = await t.request("POST", "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs")
    assert response.status == 201
    assert len(sleeps) == 1

    # And when it never gets through, the error says nothing was sent.
    token(mock, "tok-2")
    mock.post(START, exception=failure, repeat=True)
    with pytest.raises(error_class) as caught:
        await transport(session, sleeps, retry=RetryPolicy(attempts=2)).request(
            "POST", "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs"
        )
    assert caught.value.may_have_reached_server is False
    assert caught.value.__cause__ is failure


async def test_reads_are_retried_after_a_disconnect(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(JOB_42, exception=aiohttp.ServerDisconnectedError())
    mock.get(JOB_42, exception=TimeoutError())
    mock.get(JOB_42, payload={"Id": 42})
    t = transport(session, sleeps)
    assert (await t.request("GET", "odata/Jobs(42)")).json() == {"Id": 42}
    assert len(sleeps) == 2
    assert t.stats.count("odata/Jobs({id})", "error") == 2
    assert t.stats.count("odata/Jobs({id})", 200) == 1


# -- error statuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, BadRequestError),
        (418, APIError),
    ],
)
async def test_client_errors_raise_at_once(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any, status: int, cls: type[APIError]
) -> None:
    token(mock, "tok-1")
    mock.get(JOB_42, status=status, payload=ERROR_BODY, repeat=True)
    with pytest.raises(cls) as caught:
        await transport(session, sleeps).request("GET", "odata/Jobs(42)")
    error = caught.value
    assert type(error) is cls
    assert (error.status, error.message, error.error_code, error.trace_id) == (
        status,
        "Something is wrong.",
        1000,
        "00-abc-01",
    )
    assert error.url == JOB_42
    assert len(calls(mock, "GET", JOB_42)) == 1
    assert sleeps == []


async def test_an_html_error_page_is_described(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(JOB_42, status=404, body="<!DOCTYPE html><html></html>", content_type="text/html")
    with pytest.raises(NotFoundError, match="HTML page instead of JSON"):
        await transport(session, sleeps).request("GET", "odata/Jobs(42)")


# -- the token endpoint inside the retry loop ------------------------------------------------


async def test_a_throttled_token_endpoint_is_retried(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    # Identity Server has its own rate limits (orchestrator-api.md §1a).
    mock.post(TOKEN_URL, status=429, headers={"Retry-After": "3"})
    token(mock, "tok-1")
    mock.post(START, status=201, payload={"value": []})
    t = transport(session, sleeps)
    # Even a POST: the API request itself had not been sent.
    response = await t.request("POST", "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs")
    assert response.status == 201
    assert sleeps == [3.0]
    assert (t.stats.token_requests, t.stats.retries, t.stats.rate_limited) == (2, 1, 1)


async def test_an_unavailable_token_endpoint_is_retried_with_backoff(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    mock.post(TOKEN_URL, status=503, body="")
    mock.post(TOKEN_URL, exception=aiohttp.ServerDisconnectedError())
    token(mock, "tok-1")
    mock.post(START, status=201, payload={"value": []})
    t = transport(session, sleeps, seed=5)
    response = await t.request("POST", "odata/Jobs/UiPath.Server.Configuration.OData.StartJobs")
    assert response.status == 201
    rng = random.Random(5)
    assert sleeps == [compute_delay(n, policy=RetryPolicy(), rng=rng) for n in (1, 2)]
    assert len(calls(mock, "POST", START)) == 1


async def test_refused_credentials_stop_everything(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    mock.post(TOKEN_URL, status=400, payload={"error": "invalid_client"})
    with pytest.raises(AuthenticationError, match="UIPATH_CLIENT_SECRET"):
        await transport(session, sleeps).request("GET", "odata/Jobs(42)")
    assert calls(mock, "GET", JOB_42) == []
    assert sleeps == []


# -- counters, URLs, lifecycle --------------------------------------------------------------


async def test_stats_use_normalised_or_given_labels(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(JOB_42, payload={}, repeat=True)
    t = transport(session, sleeps)
    await t.request("GET", "odata/Jobs(42)")
    await t.request("GET", "odata/Jobs(42)", endpoint="GET Jobs({id})")
    stats = t.stats
    assert stats.responses == {("odata/Jobs({id})", 200): 1, ("GET Jobs({id})", 200): 1}
    assert stats.count("nothing", 500) == 0
    assert (stats.retries, stats.rate_limited, stats.token_requests) == (0, 0, 1)


async def test_absolute_urls_must_stay_under_the_base(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    token(mock, "tok-1")
    mock.get(JOB_42, payload={})
    t = transport(session, sleeps)
    assert (await t.request("GET", JOB_42)).status == 200
    with pytest.raises(InvalidRequestError, match="refusing to send the access token"):
        await t.request("GET", "https://evil.example.com/odata/Jobs")
    with pytest.raises(InvalidRequestError):
        await t.request("GET", "https://cloud.uipath.com/acme/Other/orchestrator_/odata/Jobs")


async def test_a_given_sender_carries_the_token_and_the_request() -> None:
    sender = FakeSender(
        reply(200, {"access_token": "tok-1", "expires_in": 3600}), reply(200, {"Id": 42})
    )
    t = Transport(Settings(url=BASE, credentials=CC), sender=sender)
    response = await t.request("GET", "odata/Jobs(42)", params={"$select": "Id"})
    assert response.json() == {"Id": 42}
    token_call, job_call = sender.requests
    assert (token_call.method, token_call.url) == ("POST", TOKEN_URL)
    assert (job_call.method, job_call.url, job_call.params) == ("GET", JOB_42, {"$select": "Id"})
    assert job_call.headers["Authorization"] == "Bearer tok-1"
    assert t.stats.token_requests == 1

    sender.closed = True  # closed by its owner: nothing more is sent
    with pytest.raises(ClientClosedError) as caught:
        await t.request("GET", "odata/Jobs(42)")
    assert caught.value.session_closed
    assert len(sender.requests) == 2


async def test_blob_transfers_go_through_the_sender_seam() -> None:
    sender = FakeSender(
        reply(200, {"access_token": "tok-1", "expires_in": 3600}),
        reply(201),  # the PUT of the content
        reply(200, body=b"0123456789"),
        reply(200, body=b"01234567890"),
    )
    t = Transport(Settings(url=BASE, credentials=CC), sender=sender)
    inside = BlobAccess(uri=f"{BASE}/blob/1", requires_auth=True, headers={"x-ms-blob-type": "B"})
    outside = BlobAccess(uri="https://blobs.example.com/2?sig=s")

    assert await t.blob("PUT", inside, body=b"data", max_bytes=10, endpoint="PUT blob") == b""
    assert await t.blob("GET", outside, max_bytes=10, endpoint="GET blob") == b"0123456789"
    with pytest.raises(BlobTooLargeError, match="larger than 10 bytes"):
        await t.blob("GET", outside, max_bytes=10, endpoint="GET blob")

    _, put, get, _ = sender.requests
    assert (put.method, put.url, put.body) == ("PUT", f"{BASE}/blob/1", b"data")
    assert put.headers["Authorization"] == "Bearer tok-1"
    assert put.headers["x-ms-blob-type"] == "B"
    assert "Authorization" not in get.headers  # the token only goes to Orchestrator


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_capped_read_stops_past_max_body(chunked: bool) -> None:
    async def big(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        if not chunked:
            return aiohttp.web.Response(body=b"x" * 5000)
        response = aiohttp.web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(5):
            await response.write(b"x" * 1000)
        await response.write_eof()
        return response

    app = aiohttp.web.Application()
    app.router.add_get("/blob", big)
    async with serve_on_loopback(app) as root, aiohttp.ClientSession() as session:
        sender = AiohttpSender(session)
        whole = await sender.send("GET", f"{root}/blob", headers={}, max_body=5000)
        assert whole.body == b"x" * 5000
        with pytest.raises(BlobTooLargeError):
            await sender.send("GET", f"{root}/blob", headers={}, max_body=4999)


def test_a_transport_takes_a_session_or_a_sender_not_both(
    session: aiohttp.ClientSession,
) -> None:
    with pytest.raises(ValueError, match="not both"):
        Transport(Settings(url=BASE, credentials=CC), session=session, sender=FakeSender())


async def test_an_injected_session_is_left_open(session: aiohttp.ClientSession) -> None:
    async with Transport(Settings(url=BASE, credentials=CC), session=session):
        pass
    assert not session.closed


async def test_an_owned_session_is_created_with_the_limits_and_closed() -> None:
    settings = Settings(url=BASE, credentials=CC)
    t = Transport(settings)
    with pytest.raises(ClientClosedError, match="async with OrchestratorClient"):
        await t.request("GET", "odata/Jobs")
    async with t:
        owned = t._owned_session
        assert owned is not None
        assert owned.connector is not None
        assert owned.connector.limit == settings.limits.max_connections
    assert owned.closed
    with pytest.raises(ClientClosedError) as caught:
        await t.request("GET", "odata/Jobs")
    assert not caught.value.session_closed


# -- secrets stay secret ---------------------------------------------------------------------


async def test_no_secret_or_token_in_logs_errors_or_reprs(
    session: aiohttp.ClientSession, sleeps: Sleeps, mock: Any
) -> None:
    first, second = "eyJ.first-token.sig", "eyJ.second-token.sig"
    token(mock, first, second)
    mock.get(JOB_42, status=401, payload=ABP_401)
    mock.get(JOB_42, status=429, headers={"Retry-After": "1"})
    mock.get(JOB_42, exception=aiohttp.ServerDisconnectedError())
    mock.get(JOB_42, status=401, payload=ABP_401)
    t = transport(session, sleeps)
    with structlog.testing.capture_logs() as logs, pytest.raises(AuthenticationError) as caught:
        await t.request("GET", "odata/Jobs(42)")
    events = [entry["event"] for entry in logs]
    assert "async_orch.token_refreshed" in events
    assert "async_orch.token_rejected" in events
    assert events.count("async_orch.http_retry") == 2
    everything = " ".join(
        [repr(logs), str(caught.value), repr(caught.value), repr(t), repr(t._settings)]
    )
    for secret in (SECRET, first, second, "Bearer"):
        assert secret not in everything
