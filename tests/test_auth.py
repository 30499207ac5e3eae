"""Token requests, token responses, and the single-flight TokenManager."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import anyio
import pytest
import structlog
from aiohttp import web
from conftest import aioresponses_mock, serve_on_loopback
from fakes import FakeSender, Handler, Outcome, SentRequest, reply
from multidict import CIMultiDict

from async_orch._auth import (
    DEFAULT_LIFETIME,
    PASSWORD_TOKEN_LIFETIME,
    TokenManager,
    TokenRequest,
    TokenState,
    build_token_request,
    parse_token_response,
    refresh_skew,
)
from async_orch._config import (
    ClientCredentials,
    Credentials,
    PasswordCredentials,
    RefreshTokenCredentials,
    StaticToken,
)
from async_orch._errors import (
    AuthenticationError,
    ConfigurationError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from async_orch._http import AiohttpSender
from async_orch._redaction import fingerprint, redact

TOKEN_URL = "https://cloud.uipath.com/acme/identity_/connect/token"
AUTH_URL = "https://orch.example.com/api/Account/Authenticate"
LEGACY_URL = "https://account.uipath.com/oauth/token"
SECRET = "app-secret-6d1f0e"
TOKEN = "eyJhbGciOi.token-value.abc"
CC = ClientCredentials(client_id="app-id", client_secret=SECRET)
REFRESH = RefreshTokenCredentials(client_id="legacy-cid", refresh_token=SECRET, tenant_name="T1")
PASSWORD = PasswordCredentials(tenancy_name="Default", username="admin", password=SECRET)

# -- pure: skew and state ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "skew"),
    [(3600, 300), (86400, 300), (1800, 180), (60, 6), (0, 0), (-5, 0)],
)
def test_refresh_skew(lifetime: float, skew: float) -> None:
    assert refresh_skew(lifetime) == pytest.approx(skew)


def test_token_state_needs_refresh_at_expiry_minus_skew() -> None:
    state = TokenState(TOKEN, 1000.0)
    assert not state.needs_refresh(699.9, skew=300)
    assert state.needs_refresh(700.0, skew=300)
    assert state.needs_refresh(1000.0, skew=0)
    assert TOKEN not in repr(state)


# -- pure: the request, byte for byte ----------------------------------------------------


def test_client_credentials_request_is_form_encoded() -> None:
    request = build_token_request(
        ClientCredentials(client_id="app-id", client_secret="s&c=t+/", scopes="OR.Jobs OR.X"),
        token_url=TOKEN_URL,
    )
    assert request.flow == "client_credentials"
    assert request.url == TOKEN_URL
    assert dict(request.headers) == {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert request.body == (
        b"grant_type=client_credentials&client_id=app-id&client_secret=s%26c%3Dt%2B%2F"
        b"&scope=OR.Jobs+OR.X"
    )
    assert parse_qs(request.body.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["app-id"],
        "client_secret": ["s&c=t+/"],
        "scope": ["OR.Jobs OR.X"],
    }


def test_refresh_token_request_is_json_with_the_tenant_header() -> None:
    request = build_token_request(REFRESH, token_url=LEGACY_URL)
    assert dict(request.headers) == {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "X-UIPATH-TenantName": "T1",
    }
    assert json.loads(request.body) == {
        "grant_type": "refresh_token",
        "client_id": "legacy-cid",
        "refresh_token": SECRET,
    }


def test_password_request_is_json_login_model() -> None:
    request = build_token_request(PASSWORD, token_url=AUTH_URL)
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "tenancyName": "Default",
        "usernameOrEmailAddress": "admin",
        "password": SECRET,
    }


def test_token_request_repr_hides_the_body() -> None:
    assert SECRET not in repr(build_token_request(CC, token_url=TOKEN_URL))


def test_static_token_has_no_request() -> None:
    with pytest.raises(ConfigurationError):
        build_token_request(StaticToken(token=TOKEN), token_url=TOKEN_URL)


# -- pure: the response ------------------------------------------------------------------


def parse(
    status: int,
    body: Any,
    *,
    credentials: Credentials = CC,
    url: str = TOKEN_URL,
    headers: dict[str, str] | None = None,
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = build_token_request(credentials, token_url=url)
    return parse_token_response(
        request, status, CIMultiDict(headers or {}), raw, credentials=credentials
    )


def test_oauth_success() -> None:
    issued = parse(200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
    assert (issued.access_token, issued.expires_in) == (TOKEN, 3600)
    assert TOKEN not in repr(issued)


@pytest.mark.parametrize("expires_in", [None, "soon", 0, -1])
def test_missing_or_odd_expiry_assumes_an_hour(expires_in: object) -> None:
    assert parse(200, {"access_token": TOKEN, "expires_in": expires_in}).expires_in == 3600
    assert DEFAULT_LIFETIME == 3600


def test_expiry_as_a_string_is_read() -> None:
    assert parse(200, {"access_token": TOKEN, "expires_in": "86400"}).expires_in == 86400


def test_password_success_reads_the_ajax_response() -> None:
    body = {"result": TOKEN, "targetUrl": None, "success": True, "error": None, "__abp": True}
    issued = parse(200, body, credentials=PASSWORD, url=AUTH_URL)
    assert issued.access_token == TOKEN
    assert issued.expires_in == PASSWORD_TOKEN_LIFETIME == 1800


def test_password_refusal_quotes_the_abp_error() -> None:
    body = {
        "result": None,
        "success": False,
        "error": {
            "code": 0,
            "message": "Login failed!",
            "details": "Invalid user name or password",
        },
        "__abp": True,
    }
    with pytest.raises(AuthenticationError) as caught:
        parse(400, body, credentials=PASSWORD, url=AUTH_URL)
    error = caught.value
    assert error.status == 400
    assert error.server_message == "Login failed!; Invalid user name or password"
    assert error.hint is not None and "ASYNC_ORCH_USERNAME" in error.hint


@pytest.mark.parametrize(
    ("status", "body", "in_hint"),
    [
        (400, {"error": "invalid_client"}, "UIPATH_CLIENT_SECRET"),
        (401, {"error": "invalid_client"}, "App Secret"),
        (400, {"error": "invalid_scope"}, "OR.Folders.Read OR.Execution.Read OR.Jobs"),
        (400, {"error": "unsupported_grant_type"}, "form-encoded body"),
        (
            400,
            {"error": "invalid_request", "error_description": "Bad content type"},
            "form-encoded",
        ),
        (415, b"", "form-encoded"),
        (400, {"error": "unauthorized_client"}, "confidential application"),
        (404, b"", "Wrong URL"),
        (404, b"Not Found", "Wrong URL"),
        (403, {"message": "Forbidden"}, "UIPATH_CLIENT_ID"),
    ],
)
def test_refusals_carry_the_likely_fix(status: int, body: Any, in_hint: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse(status, body)
    assert caught.value.status == status
    assert caught.value.hint is not None and in_hint in caught.value.hint
    assert in_hint in str(caught.value)


def test_server_message_quotes_error_and_description() -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse(400, {"error": "invalid_scope", "error_description": "OR.Nope is not allowed"})
    assert caught.value.server_message == "invalid_scope; OR.Nope is not allowed"


def test_legacy_invalid_grant_suggests_an_external_application() -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse(403, {"error": "invalid_grant"}, credentials=REFRESH, url=LEGACY_URL)
    assert caught.value.hint is not None
    assert "create an external application" in caught.value.hint


def test_html_page_with_200_means_wrong_host_or_path() -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse(200, b"<!DOCTYPE html><html>Sign in</html>", headers={"Content-Type": "text/html"})
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("Wrong host or path")
    assert "https://cloud.uipath.com/{organization}/identity_/connect/token" in caught.value.hint


def test_200_json_without_a_token_is_refused() -> None:
    with pytest.raises(AuthenticationError, match="returned no token"):
        parse(200, {"token_type": "Bearer"})


@pytest.mark.parametrize(("status", "cls"), [(429, RateLimitedError), (503, ServerError)])
def test_throttling_and_outages_are_retryable_errors(status: int, cls: type) -> None:
    with pytest.raises(cls) as caught:
        parse(status, {"message": "busy"}, headers={"Retry-After": "4"})
    if isinstance(caught.value, RateLimitedError):
        assert caught.value.retry_after == 4.0


def test_a_server_echoing_the_secret_is_redacted() -> None:
    body = {"error": "invalid_client", "error_description": f"secret {SECRET} is wrong"}
    with pytest.raises(AuthenticationError) as caught:
        parse(401, body)
    assert SECRET not in str(caught.value)
    assert "[redacted]" in str(caught.value)
    with pytest.raises(ServerError) as outage:
        parse(500, {"message": f"echo {SECRET}"})
    assert SECRET not in str(outage.value)
    assert SECRET not in outage.value.body


def test_a_short_secret_is_redacted_only_where_it_stands_as_a_value() -> None:
    # Replacing a word of the server's own garbles the message and, by marking the
    # word, gives the secret away.
    message = "use the App Secret of an external application (Admin > External Applications)"
    for word in ("x", "App", "an"):
        assert redact(message, [word]) == message
    prose = "Unknown client_id or wrong client_secret"
    assert redact(prose, ["wrong"]) == prose
    # Where the server echoes what it was sent, it is redacted.
    assert redact("client_secret=abc&scope=abcd", ["abc"]) == "client_secret=[redacted]&scope=abcd"
    assert redact('{"client_secret": "wrong"}', ["wrong"]) == '{"client_secret": "[redacted]"}'
    assert redact("password: wrong is not valid", ["wrong"]) == "password: [redacted] is not valid"
    assert redact("got 'a+b', 'c+b'", ["+b"]) == "got 'a+b', 'c+b'"
    assert redact("got '+b'", ["+b"]) == "got '[redacted]'"
    assert redact(" wrong ", ["wrong"]) == "[redacted]"
    # A long secret is replaced wherever it appears, even glued to other text.
    assert redact(f"x{SECRET}y", [SECRET]) == "x[redacted]y"


# -- the manager, against a fake sender --------------------------------------------------


def token_reply(token: str = TOKEN, expires_in: int = 3600) -> dict[str, Any]:
    return {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}


@pytest.mark.parametrize(
    ("credentials", "url", "payload"),
    [
        (CC, TOKEN_URL, token_reply()),
        (REFRESH, LEGACY_URL, token_reply()),
        (PASSWORD, AUTH_URL, {"result": TOKEN, "success": True, "__abp": True}),
    ],
    ids=["client_credentials", "refresh_token", "password"],
)
async def test_each_flow_sends_exactly_its_request(
    credentials: Credentials, url: str, payload: dict[str, Any]
) -> None:
    expected: TokenRequest = build_token_request(credentials, token_url=url)
    sender = FakeSender(reply(200, payload))
    manager = TokenManager(credentials, sender=sender, token_url=url)
    assert await manager.get_token() == TOKEN
    [call] = sender.requests
    assert (call.method, call.url) == ("POST", url)
    assert call.body == expected.body
    assert call.headers == dict(expected.headers)
    assert manager.token_requests == 1


def held_until(release: anyio.Event, outcome: Outcome) -> Handler:
    """A sender's handler: every request waits for ``release``, then gets ``outcome``."""

    async def handle(request: SentRequest) -> Outcome:
        await release.wait()
        return outcome

    return handle


async def test_200_concurrent_callers_cause_one_token_request() -> None:
    release = anyio.Event()
    results: list[str] = []

    async def caller(manager: TokenManager) -> None:
        results.append(await manager.get_token())

    sender = FakeSender(handler=held_until(release, reply(200, token_reply())))
    manager = TokenManager(CC, sender=sender, token_url=TOKEN_URL)
    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(caller, manager)
        await anyio.wait_all_tasks_blocked()  # all 200 wait on the one request
        release.set()
    assert results == [TOKEN] * 200
    assert len(sender.requests) == 1
    assert manager.token_requests == 1


async def test_waiters_share_the_leaders_error() -> None:
    release = anyio.Event()
    errors: list[BaseException] = []

    async def caller(manager: TokenManager) -> None:
        try:
            await manager.get_token()
        except AuthenticationError as exc:
            errors.append(exc)

    refused = reply(400, {"error": "invalid_client"})
    sender = FakeSender(handler=held_until(release, refused))
    manager = TokenManager(CC, sender=sender, token_url=TOKEN_URL)
    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(caller, manager)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert len(errors) == 50
    assert all(e is errors[0] for e in errors)
    assert len(sender.requests) == 1


async def test_refreshes_ahead_of_expiry_on_the_injected_clock() -> None:
    now = [1000.0]
    sender = FakeSender(reply(200, token_reply("first", 3600)), reply(200, token_reply("second")))
    manager = TokenManager(CC, sender=sender, token_url=TOKEN_URL, clock=lambda: now[0])
    assert manager.fresh_token() is None  # none yet: get_token asks for one
    assert await manager.get_token() == "first"
    now[0] = 1000.0 + 3600 - 300 - 0.001  # just before expiry minus the 300 s skew
    assert manager.fresh_token() == "first"  # what requests take without an await
    assert await manager.get_token() == "first"
    assert manager.token_requests == 1
    now[0] = 1000.0 + 3600 - 300
    assert manager.fresh_token() is None
    assert await manager.get_token() == "second"
    assert manager.token_requests == 2
    await manager.invalidate("second")
    assert manager.fresh_token() is None


async def test_invalidate_drops_only_the_current_token() -> None:
    sender = FakeSender(reply(200, token_reply("first")), reply(200, token_reply("second")))
    manager = TokenManager(CC, sender=sender, token_url=TOKEN_URL)
    first = await manager.get_token()
    await manager.invalidate("some-other-token")
    assert await manager.get_token() == first
    await manager.invalidate(first)
    assert await manager.get_token() == "second"
    await manager.invalidate(first)  # late 401 for the old token: no effect
    assert await manager.get_token() == "second"
    assert manager.token_requests == 2


async def test_a_cancelled_leader_hands_over_to_a_waiter() -> None:
    async def first_hangs(request: SentRequest) -> Outcome:
        if len(sender.requests) == 1:
            await anyio.sleep_forever()
        return reply(200, token_reply())

    sender = FakeSender(handler=first_hangs)
    got: list[str] = []

    async def waiter(manager: TokenManager) -> None:
        got.append(await manager.get_token())

    manager = TokenManager(CC, sender=sender, token_url=TOKEN_URL)
    async with anyio.create_task_group() as tg:
        leader_scope = anyio.CancelScope()

        async def leader() -> None:
            with leader_scope:
                await manager.get_token()

        tg.start_soon(leader)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(waiter, manager)
        await anyio.wait_all_tasks_blocked()
        leader_scope.cancel()
    assert got == [TOKEN]
    assert len(sender.requests) == 2


async def test_static_token_is_never_exchanged() -> None:
    sender = FakeSender()  # any request would fail: it has no answer
    manager = TokenManager(StaticToken(token=TOKEN), sender=sender, token_url=None)
    assert manager.is_static
    assert await manager.get_token() == TOKEN
    await manager.invalidate("not-it")
    assert await manager.get_token() == TOKEN
    await manager.invalidate(TOKEN)
    with pytest.raises(AuthenticationError) as caught:
        await manager.get_token()
    assert "create a new personal access token" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert manager.token_requests == 0
    assert sender.requests == []


def test_a_token_url_is_required_unless_static() -> None:
    with pytest.raises(ConfigurationError):
        TokenManager(CC, sender=FakeSender(), token_url=None)


async def test_unreachable_token_endpoint_is_a_transport_error(
    session: aiohttp.ClientSession,
) -> None:
    # Through the aiohttp sender: the refusal is mapped, not leaked.
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("cloud.uipath.com", 443, True, True, None, None, None),
        ConnectionRefusedError(111, "Connection refused"),
    )
    with aioresponses_mock() as mock:
        mock.post(TOKEN_URL, exception=refused)
        manager = TokenManager(CC, sender=AiohttpSender(session), token_url=TOKEN_URL)
        with pytest.raises(TransportError) as caught:
            await manager.get_token()
    assert caught.value.may_have_reached_server is False
    assert caught.value.__cause__ is refused
    assert not isinstance(caught.value, aiohttp.ClientError)


async def test_no_secret_or_token_in_logs_reprs_or_errors() -> None:
    sender = FakeSender(reply(200, token_reply()), reply(401, {"error": "invalid_client"}))
    with structlog.testing.capture_logs() as logs:
        manager = TokenManager(CC, sender=sender, token_url=TOKEN_URL)
        token = await manager.get_token()
        await manager.invalidate(token)
        with pytest.raises(AuthenticationError) as caught:
            await manager.get_token()
    events = [entry["event"] for entry in logs]
    assert events == [
        "async_orch.token_refreshed",
        "async_orch.token_invalidated",
        "async_orch.token_request_failed",
    ]
    assert logs[0]["token_id"] == fingerprint(TOKEN)
    everything = repr(logs) + repr(manager) + str(caught.value) + repr(caught.value)
    assert SECRET not in everything
    assert TOKEN not in everything


# -- the real wire ------------------------------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def token_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on 127.0.0.1 recording what reaches it."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "content_type": request.headers.get("Content-Type"),
                "accept": request.headers.get("Accept"),
                "tenant": request.headers.get("X-UIPATH-TenantName"),
                "raw": raw,
            }
        )
        if request.path == "/api/Account/Authenticate":
            return web.json_response({"result": "wire-token", "success": True, "__abp": True})
        return web.json_response({"access_token": "wire-token", "expires_in": 3600})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    async with serve_on_loopback(app) as url:
        yield url, seen


@pytest.mark.parametrize(
    ("credentials", "path", "content_type", "decode"),
    [
        (
            CC,
            "/acme/identity_/connect/token",
            "application/x-www-form-urlencoded",
            lambda raw: {k: v[0] for k, v in parse_qs(raw.decode()).items()},
        ),
        (REFRESH, "/oauth/token", "application/json", json.loads),
        (PASSWORD, "/api/Account/Authenticate", "application/json", json.loads),
    ],
    ids=["client_credentials", "refresh_token", "password"],
)
async def test_token_requests_on_the_wire(
    token_server: tuple[str, list[dict[str, Any]]],
    session: aiohttp.ClientSession,
    credentials: Credentials,
    path: str,
    content_type: str,
    decode: Callable[[bytes], dict[str, str]],
) -> None:
    base, seen = token_server
    manager = TokenManager(credentials, sender=AiohttpSender(session), token_url=base + path)
    assert await manager.get_token() == "wire-token"
    [request] = seen
    assert (request["method"], request["path"]) == ("POST", path)
    assert request["content_type"] == content_type
    assert request["accept"] == "application/json"
    body = decode(request["raw"])
    if isinstance(credentials, ClientCredentials):
        assert body == {
            "grant_type": "client_credentials",
            "client_id": "app-id",
            "client_secret": SECRET,
            "scope": "OR.Folders.Read OR.Execution.Read OR.Jobs",
        }
    elif isinstance(credentials, RefreshTokenCredentials):
        assert body == {
            "grant_type": "refresh_token",
            "client_id": "legacy-cid",
            "refresh_token": SECRET,
        }
        assert request["tenant"] == "T1"
    else:
        assert body == {
            "tenancyName": "Default",
            "usernameOrEmailAddress": "admin",
            "password": SECRET,
        }


def test_a_proxy_asking_for_credentials_is_not_blamed_on_the_app_credentials() -> None:
    # A plain-http proxy answers the token POST itself with 407 (an HTML page, often).
    with pytest.raises(AuthenticationError) as caught:
        parse(
            407,
            b"<html>Proxy Authentication Required</html>",
            headers={"Content-Type": "text/html"},
        )
    message = str(caught.value)
    assert "proxy" in message and "USER:PASSWORD@" in message
    assert "UIPATH_CLIENT" not in message and "Wrong host" not in message
