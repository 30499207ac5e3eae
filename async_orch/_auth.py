"""Access tokens: how to ask for one, how to read the answer, when to renew it.

Pure part: :class:`TokenState`, :func:`refresh_skew`, :func:`build_token_request`
and :func:`parse_token_response`. I/O part: :class:`TokenManager`, which keeps
one token per client and renews it ahead of expiry, with at most one request
to the token endpoint in flight however many coroutines are waiting.

The flows (orchestrator-api.md §1):

==================  =========================================  =====================
credentials         request                                    lifetime
==================  =========================================  =====================
ClientCredentials   POST form-encoded ``grant_type=            ``expires_in``
                    client_credentials, client_id,
                    client_secret, scope`` to identity_
RefreshToken...     POST JSON ``{grant_type: refresh_token,    ``expires_in``
                    client_id, refresh_token}`` +
                    ``X-UIPATH-TenantName`` to account.uipath.com
PasswordCredentials POST JSON ``{tenancyName,                  30 min (docs; the
                    usernameOrEmailAddress, password}`` to     answer has no expiry)
                    ``{base}/api/Account/Authenticate``
StaticToken         none: used as is, never renewed            unknown
==================  =========================================  =====================

Secrets and tokens never appear in messages, reprs or logs; a server message
is redacted of the secrets that were sent before it is quoted.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import anyio

from async_orch._config import (
    LEGACY_TOKEN_URL,
    ClientCredentials,
    Credentials,
    PasswordCredentials,
    RefreshTokenCredentials,
    RequestTimeouts,
    StaticToken,
)
from async_orch._errors import (
    AuthenticationError,
    ConfigurationError,
    RequestTimeoutError,
    TransportError,
)
from async_orch._http import PROXY_CREDENTIALS_HINT
from async_orch._logs import get_logger
from async_orch._protocol import error_from_response, header, looks_like_html
from async_orch._redaction import fingerprint, redact, secret_values
from async_orch._seams import HTTPSender
from async_orch._transport_hooks import (
    RequestSent,
    TransportHooks,
    call_hooks,
    report_answer,
    report_cancelled,
)

__all__ = [
    "DEFAULT_LIFETIME",
    "MAX_REFRESH_SKEW",
    "PASSWORD_TOKEN_LIFETIME",
    "IssuedToken",
    "TokenManager",
    "TokenRequest",
    "TokenState",
    "build_token_request",
    "parse_token_response",
    "refresh_skew",
    "unanswered_first_token",
]

log = get_logger("async_orch.auth")

#: Renew at most this long before expiry ...
MAX_REFRESH_SKEW = 300.0
#: ... and at most this share of the lifetime (a 60 s token is renewed 6 s early).
REFRESH_SKEW_FRACTION = 0.1
#: Assumed when an OAuth answer lacks ``expires_in``: the usual 1 h, erring short.
DEFAULT_LIFETIME = 3600.0
#: /api/Account/Authenticate returns no expiry; the docs give 30 minutes
#: (orchestrator-api.md §1c).
PASSWORD_TOKEN_LIFETIME = 1800.0

Flow = Literal["client_credentials", "refresh_token", "password"]


# -- pure: when to renew -----------------------------------------------------------------


def refresh_skew(lifetime: float) -> float:
    """How long before expiry to renew a token of this lifetime.

    min(300 s, 10 % of the lifetime): early enough that a request started just
    before renewal does not reach the server with an expired token (clock
    differences, slow networks), late enough to use most of a short token.
    """
    return min(MAX_REFRESH_SKEW, REFRESH_SKEW_FRACTION * max(0.0, lifetime))


@dataclass(frozen=True, slots=True)
class TokenState:
    """A token and when it expires, on the monotonic clock (``math.inf``: never)."""

    access_token: str = field(repr=False)
    expires_at_monotonic: float

    def needs_refresh(self, now: float, *, skew: float) -> bool:
        """True once ``now`` is within ``skew`` seconds of expiry."""
        return now >= self.expires_at_monotonic - skew


# -- pure: the token request ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRequest:
    """A token request, encoded exactly as it goes on the wire."""

    flow: Flow
    url: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What the token endpoint granted."""

    access_token: str = field(repr=False)
    expires_in: float


def build_token_request(credentials: Credentials, *, token_url: str) -> TokenRequest:
    """Encode the token request for these credentials (see the module docstring).

    Raises:
        ConfigurationError: for a StaticToken, which is never exchanged.
    """
    accept = {"Accept": "application/json"}
    if isinstance(credentials, ClientCredentials):
        # Identity Server wants a form body; a JSON body is answered with an HTML
        # page or a 400 (orchestrator-api.md §1a, F5).
        form = {
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "scope": credentials.scopes,
        }
        return TokenRequest(
            flow="client_credentials",
            url=token_url,
            headers={**accept, "Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(form).encode("ascii"),
        )
    if isinstance(credentials, RefreshTokenCredentials):
        # The legacy endpoint is the opposite: JSON only (orchestrator-api.md §1b).
        payload: dict[str, str] = {
            "grant_type": "refresh_token",
            "client_id": credentials.client_id,
            "refresh_token": credentials.refresh_token,
        }
        return TokenRequest(
            flow="refresh_token",
            url=token_url,
            headers={
                **accept,
                "Content-Type": "application/json",
                "X-UIPATH-TenantName": credentials.tenant_name,
            },
            body=json.dumps(payload).encode("utf-8"),
        )
    if isinstance(credentials, PasswordCredentials):
        payload = {
            "tenancyName": credentials.tenancy_name,
            "usernameOrEmailAddress": credentials.username,
            "password": credentials.password,
        }
        return TokenRequest(
            flow="password",
            url=token_url,
            headers={**accept, "Content-Type": "application/json"},
            body=json.dumps(payload).encode("utf-8"),
        )
    raise ConfigurationError("a static token is used as is; there is nothing to request")


# -- pure: the token response --------------------------------------------------------------

_FLOW_NAMES: dict[Flow, str] = {
    "client_credentials": "client-credentials",
    "refresh_token": "refresh-token",
    "password": "username/password",
}
_IDENTITY_URLS = (
    "use https://cloud.uipath.com/{organization}/identity_/connect/token (Automation Cloud) "
    "or https://{server}/identity/connect/token (on-premises), or set ASYNC_ORCH_IDENTITY_URL"
)


# Which flow a token URL serves, by the end of its path (routes are case-insensitive).
_ENDPOINT_FLOWS: tuple[tuple[str, Flow], ...] = (
    ("/connect/token", "client_credentials"),
    ("/oauth/token", "refresh_token"),
    ("/api/account/authenticate", "password"),
)
_ENDPOINT_NAMES: dict[Flow, str] = {
    "client_credentials": "an Identity Server token endpoint (client credentials, form body)",
    "refresh_token": "the legacy refresh-token endpoint (JSON body)",
    "password": "the on-premises /api/Account/Authenticate (username/password)",
}
_FLOW_HOMES: dict[Flow, str] = {
    "client_credentials": (
        "client credentials go to the Identity Server, "
        "https://cloud.uipath.com/{organization}/identity_/connect/token (Automation Cloud) or "
        "https://{server}/identity/connect/token (on-premises), derived from UIPATH_URL when "
        "ASYNC_ORCH_IDENTITY_URL is unset"
    ),
    "refresh_token": (
        f"the refresh-token (User Key) flow posts to {LEGACY_TOKEN_URL}, the default when "
        "ASYNC_ORCH_IDENTITY_URL is unset"
    ),
    "password": (
        "the username/password flow posts to {Orchestrator URL}/api/Account/Authenticate, the "
        "default when ASYNC_ORCH_IDENTITY_URL is unset"
    ),
}


def _endpoint_flow(url: str) -> Flow | None:
    path = urlsplit(url).path.rstrip("/").lower()
    return next((flow for suffix, flow in _ENDPOINT_FLOWS if path.endswith(suffix)), None)


def _wrong_url_hint(request: TokenRequest) -> str:
    """The fix when nothing answers at the token URL (404/405)."""
    if request.flow == "password":
        return (
            f"Wrong URL: no /api/Account/Authenticate at {request.url}; set UIPATH_URL to the "
            "Orchestrator's own root (https://{server} on-premises). Automation Cloud has no "
            "username/password flow: use an external application "
            "(UIPATH_CLIENT_ID/UIPATH_CLIENT_SECRET)"
        )
    if request.flow == "refresh_token":
        return f"Wrong URL: no token endpoint at {request.url}; {_FLOW_HOMES['refresh_token']}"
    return f"Wrong URL: no token endpoint at {request.url}; {_IDENTITY_URLS}"


def _hint(request: TokenRequest, status: int, error: str | None, text: str, scopes: str) -> str:
    """The likely fix for a refused token request."""
    lowered = text.lower()
    if error == "invalid_scope":
        return (
            f"Grant the external application the scopes it asks for ({scopes}) under "
            "Admin > External Applications > Application scopes, or ask for fewer with "
            "ASYNC_ORCH_SCOPES"
        )
    if error == "unauthorized_client":
        return (
            "The external application may not use this grant: it must be a confidential "
            "application with application scopes"
        )
    if error == "invalid_grant" and request.flow == "refresh_token":
        return (
            "The User Key (refresh token) is wrong or revoked; UiPath retired this flow, "
            "so create an external application and use UIPATH_CLIENT_ID/UIPATH_CLIENT_SECRET"
        )
    served = _endpoint_flow(request.url)
    if served is not None and served != request.flow and error != "invalid_client":
        # The token URL belongs to another flow (ASYNC_ORCH_IDENTITY_URL mixed up): each
        # wants its own body format, so the refusal says nothing about the credentials.
        return (
            f"{request.url} is {_ENDPOINT_NAMES[served]}, which does not take "
            f"{_FLOW_NAMES[request.flow]} requests; {_FLOW_HOMES[request.flow]}"
        )
    content_type_complaint = status == 415 or any(
        w in lowered
        for w in ("content type", "content-type", "media type", "form-encoded", "urlencoded")
    )
    if error == "unsupported_grant_type" or content_type_complaint:
        if request.flow == "client_credentials":
            return (
                "The endpoint did not read the form-encoded body: send a form-encoded body "
                f"to the Identity Server's token URL; {_IDENTITY_URLS}"
            )
        return f"{request.url} does not take this kind of request; check ASYNC_ORCH_IDENTITY_URL"
    if status in (404, 405):
        return _wrong_url_hint(request)
    if request.flow == "password":
        return (
            "Check ASYNC_ORCH_USERNAME, ASYNC_ORCH_PASSWORD and the tenancy name "
            "(UIPATH_TENANT_NAME, 'Default' unless your Orchestrator has several tenants)"
        )
    if request.flow == "refresh_token":
        return (
            "Check UIPATH_CLIENT_ID, ASYNC_ORCH_REFRESH_TOKEN and UIPATH_TENANT_NAME "
            "(the tenant's logical name)"
        )
    return (
        "Check the client id and secret (UIPATH_CLIENT_ID and UIPATH_CLIENT_SECRET, or the "
        "profile's client_id and client_secret): they must be the App ID and App Secret of "
        "a confidential external application of this organization"
    )


def _expires_in(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_LIFETIME
    return seconds if math.isfinite(seconds) and seconds > 0 else DEFAULT_LIFETIME


def parse_token_response(
    request: TokenRequest,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: Credentials,
) -> IssuedToken:
    """Read the token endpoint's answer, or raise the error that explains it.

    Raises:
        AuthenticationError: the credentials or the URL were refused (400, 401,
            403, 404, an HTML page, an answer without a token). Not worth retrying.
        RateLimitedError, ServerError: 429 and 5xx, worth retrying.
    """
    secrets = secret_values(credentials)
    scopes = credentials.scopes if isinstance(credentials, ClientCredentials) else ""
    text = redact(body.decode("utf-8", errors="replace"), secrets)
    what = f"the {_FLOW_NAMES[request.flow]} token request to {request.url}"

    if status == 429 or status >= 500:
        raise error_from_response(
            status, headers, text.encode("utf-8"), method="POST", url=request.url
        )
    if status == 407:  # said by a proxy on the way, not by the identity server
        raise AuthenticationError(
            f"{what} was refused by a proxy (HTTP 407 Proxy Authentication Required)",
            status=status,
            hint=PROXY_CREDENTIALS_HINT,
        )
    try:
        data = json.loads(body.decode("utf-8-sig")) if body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        if looks_like_html(body, header(headers, "Content-Type")):
            raise AuthenticationError(
                f"{what} got an HTML page (HTTP {status}) instead of a token",
                status=status,
                hint=f"Wrong host or path: {_IDENTITY_URLS}",
            )
        hint = _hint(request, status, None, text, scopes)
        shown = " ".join(text.split())[:200] or "an empty body"
        raise AuthenticationError(
            f"{what} failed (HTTP {status})" if status >= 400 else f"{what} got no JSON",
            status=status,
            server_message=shown,
            hint=hint,
        )

    if 200 <= status < 300:
        token = _token_from(request.flow, data)
        if token is not None:
            lifetime = (
                PASSWORD_TOKEN_LIFETIME
                if request.flow == "password"
                else _expires_in(data.get("expires_in"))
            )
            return IssuedToken(token, lifetime)

    # A refusal: quote the server (OAuth, ABP or ErrorResult shape), redacted.
    raw_error = data.get("error")
    oauth_error = raw_error if isinstance(raw_error, str) else None
    description = data.get("error_description")
    abp: Mapping[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    parts = [
        oauth_error,
        description,
        data.get("message"),
        abp.get("message"),
        abp.get("details"),
    ]
    quoted = "; ".join(dict.fromkeys(str(p) for p in parts if p)) or " ".join(text.split())[:200]
    raise AuthenticationError(
        f"{what} was refused (HTTP {status})" if status >= 400 else f"{what} returned no token",
        status=status,
        server_message=redact(quoted, secrets),
        hint=_hint(request, status, oauth_error, text, scopes),
    )


def _token_from(flow: Flow, data: Mapping[str, Any]) -> str | None:
    if flow == "password":
        # AjaxResponse: {"result": "<token>", "success": true, ...}
        token = data.get("result")
        if data.get("success") is False:
            return None
    else:
        token = data.get("access_token")
    return token if isinstance(token, str) and token else None


def unanswered_first_token(error: RequestTimeoutError, timeouts: RequestTimeouts) -> TransportError:
    """The fatal error for a first token request that got no answer in time.

    Before any token was granted, a token endpoint that accepts the connection
    and never answers is an unreachable host, like a refused port: each retry
    would cost the whole timeout again (minutes, with the defaults) while the
    user watches "retrying". Once a token was granted, a stall is transient and
    is retried as usual (the caller decides which case it is).
    """
    if error.may_have_reached_server:
        what = (
            f"the token endpoint accepted the connection but did not answer within "
            f"{timeouts.total:g} s (ASYNC_ORCH_TIMEOUT)"
        )
    else:
        what = (
            f"could not connect to the token endpoint within {timeouts.connect:g} s "
            "(ASYNC_ORCH_CONNECT_TIMEOUT)"
        )
    return TransportError(
        what,
        method=error.method,
        url=error.url,
        may_have_reached_server=False,  # no token: no API request was sent
        hint=(
            "Check the URL (--url, UIPATH_URL or the profile's url, and "
            "ASYNC_ORCH_IDENTITY_URL if set), your network and any proxy (HTTPS_PROXY); "
            "if the server is only slow, raise ASYNC_ORCH_TIMEOUT (Settings.timeout)"
        ),
    )


# -- I/O: the manager ----------------------------------------------------------------------


class _Refresh:
    """One token request in flight; waiters read its outcome when ``done`` is set."""

    __slots__ = ("done", "error", "token")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.token: str | None = None
        self.error: Exception | None = None


class TokenManager:
    """Hands out a valid access token, renewing it ahead of expiry.

    However many coroutines ask at once, one request goes to the token endpoint;
    all of them get its token, or its error. After a 401, call
    :meth:`invalidate` with the token that was refused: it is dropped only if it
    is still the current one, so 50 coroutines refused together cause one renewal.

    Args:
        credentials: what to authenticate with.
        sender: what sends token requests (``AiohttpSender`` over a session).
        token_url: where to send them (``Settings.token_url``); None only for a
            StaticToken.
        clock: a monotonic clock in seconds.
        hooks: told of every token request and its answer (never its body).

    Attributes:
        token_requests: how many token requests have been sent.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        sender: HTTPSender,
        token_url: str | None,
        clock: Callable[[], float] = time.monotonic,
        hooks: Sequence[TransportHooks] = (),
    ) -> None:
        if token_url is None and not isinstance(credentials, StaticToken):
            raise ConfigurationError("TokenManager needs token_url for these credentials")
        self._credentials = credentials
        self._sender = sender
        self._token_url = token_url
        self._clock = clock
        self._hooks = tuple(hooks)
        self._state: TokenState | None = None
        self._skew = 0.0
        self._refresh: _Refresh | None = None
        self._static_refused = False
        self.token_requests = 0
        self._ever_issued = isinstance(credentials, StaticToken)
        if isinstance(credentials, StaticToken):
            self._state = TokenState(credentials.token, math.inf)

    def __repr__(self) -> str:
        return f"TokenManager({type(self._credentials).__name__}, token_url={self._token_url!r})"

    @property
    def ever_issued(self) -> bool:
        """True once a token was granted in this manager's life (always, for a
        static token): the token endpoint was reached at least once."""
        return self._ever_issued

    @property
    def is_static(self) -> bool:
        """True when the token cannot be renewed (a personal access token)."""
        return isinstance(self._credentials, StaticToken)

    def fresh_token(self) -> str | None:
        """The current token if it is valid for at least the refresh skew, else None
        (then :meth:`get_token` gets one): every request asks, and almost always the
        token is fresh, which needs no await."""
        state = self._state
        if self._static_refused or state is None:
            return None
        if state.needs_refresh(self._clock(), skew=self._skew):
            return None
        return state.access_token

    async def get_token(self) -> str:
        """A token valid for at least the refresh skew, requesting one if needed.

        Raises:
            AuthenticationError: the credentials were refused (or a static token
                was refused earlier).
            TransportError, RateLimitedError, ServerError: the token endpoint
                could not answer; worth retrying.
        """
        while True:
            if self._static_refused:
                raise AuthenticationError(
                    "Orchestrator refused the access token",
                    status=401,
                    hint=(
                        "The token was refused earlier in this run; create a new personal "
                        "access token (it may have been revoked or expired, lack a scope, or "
                        "belong to another tenant)"
                    ),
                )
            token = self.fresh_token()
            if token is not None:
                return token
            refresh = self._refresh
            if refresh is None:
                return await self._lead_refresh()
            await refresh.done.wait()
            if refresh.error is not None:
                raise refresh.error
            if refresh.token is not None:
                return refresh.token
            # The leader was cancelled before an answer: loop, and maybe lead.

    async def invalidate(self, token: str) -> None:
        """Forget ``token`` if it is still current, so the next get_token renews it."""
        state = self._state
        if state is None or state.access_token != token:
            return  # already replaced (or being replaced) by a newer token
        if self.is_static:
            self._static_refused = True
            return
        self._state = None
        log.debug("async_orch.token_invalidated", token_id=fingerprint(token))

    async def _lead_refresh(self) -> str:
        refresh = _Refresh()
        self._refresh = refresh
        try:
            issued = await self._request_token()
        except Exception as exc:
            refresh.error = exc
            raise
        else:
            now = self._clock()
            self._skew = refresh_skew(issued.expires_in)
            self._state = TokenState(issued.access_token, now + issued.expires_in)
            self._ever_issued = True
            refresh.token = issued.access_token
            return issued.access_token
        finally:
            self._refresh = None
            refresh.done.set()

    async def _request_token(self) -> IssuedToken:
        assert self._token_url is not None  # checked in __init__
        request = build_token_request(self._credentials, token_url=self._token_url)
        self.token_requests += 1
        sent = RequestSent("POST", request.url, "token", None, self._clock())
        call_hooks(self._hooks, "on_request", sent)
        try:
            response = await self._sender.send(
                "POST", request.url, headers=request.headers, body=request.body
            )
        except TransportError as exc:
            report_answer(self._hooks, sent, None, str(exc), self._clock())
            raise
        except BaseException:  # cancelled while on the wire: every try gets its answer event
            report_cancelled(self._hooks, sent, self._clock())
            raise
        report_answer(self._hooks, sent, response.status, None, self._clock())
        try:
            issued = parse_token_response(
                request,
                response.status,
                response.headers,
                response.body,
                credentials=self._credentials,
            )
        except Exception as exc:
            log.debug(
                "async_orch.token_request_failed",
                flow=request.flow,
                token_url=request.url,
                status=response.status,
                error=type(exc).__name__,
            )
            raise
        log.debug(
            "async_orch.token_refreshed",
            flow=request.flow,
            token_url=request.url,
            expires_in=issued.expires_in,
            token_id=fingerprint(issued.access_token),
        )
        return issued
