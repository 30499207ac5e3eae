"""The resilient transport: authenticated requests with retries, and counters.

Theory of operation
-------------------

``Transport.request`` sends one API call and returns the response, or raises
one of async-orch's errors (never an aiohttp one). Per try:

1. Get a token from the :class:`~async_orch._auth.TokenManager`. A token
   endpoint that is down or rate limited is retried like any transient
   failure, whatever the method: the API request has not been sent yet.
2. Send the request (``Authorization: Bearer``, ``Accept: application/json``).
3. On 401: drop that token, get a new one and send again, once. A second 401
   is an :class:`AuthenticationError` explaining the usual causes.
4. On a transient failure: do what :func:`async_orch._retries.transport_step`
   decides (the one place retry decisions are made): retry if it is safe for
   this request (a POST that may have reached the server never is: the error
   says ``may_have_reached_server`` and the caller reconciles), waiting the
   server's ``Retry-After`` when given, else exponential backoff with jitter.
5. Give up after ``attempts`` tries (``RetryPolicy.attempts`` unless the caller
   says otherwise: StartJobs and Reference lookups are tried once, their
   retries belong to :class:`~async_orch._retries.StartProtocol`), with the last
   error; for 429 a :class:`RateLimitedError` saying the limit stayed exhausted.
   Getting a token is a request of its own: it is retried up to
   ``RetryPolicy.attempts`` times whatever ``attempts`` is, since the API
   request has not been sent yet.

Counters (:attr:`Transport.stats`) count responses per endpoint and status,
retries, 429s and token requests.
"""

from __future__ import annotations

import json as jsonlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
import anyio

from async_orch._auth import TokenManager, unanswered_first_token
from async_orch._blobs import BlobAccess
from async_orch._config import RefreshTokenCredentials, Settings
from async_orch._errors import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    InvalidRequestError,
    OrchestratorError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TransportError,
)
from async_orch._http import AiohttpSender, Response
from async_orch._logs import get_logger
from async_orch._protocol import (
    endpoint_label,
    error_from_response,
    retry_after_from,
    said_revoked,
)
from async_orch._retries import GiveUp, transport_step
from async_orch._seams import HTTPSender
from async_orch._server_clock import ServerClock
from async_orch._sessions import request_timeout, session_for
from async_orch._transport_hooks import (
    HealthTracker,
    RequestSent,
    RetryScheduled,
    TransportHealth,
    TransportHooks,
    announce_request,
    call_hooks,
    report_answer,
    report_cancelled,
)
from async_orch._version import __version__

__all__ = ["IDEMPOTENT_METHODS", "Response", "Transport", "TransportStats"]

log = get_logger("async_orch.transport")

#: Methods that are safe to repeat unless the caller says otherwise.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

_USER_AGENT = f"async-orch/{__version__}"
# One encoder for every body: json.dumps builds one a call when given options.
_JSON_BODY = jsonlib.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class TransportStats:
    """A snapshot of a transport's counters.

    Attributes:
        responses: (endpoint label, HTTP status or ``"error"``) -> count; a
            retried request counts once per try.
        retries: tries repeated after a transient failure.
        rate_limited: 429 answers received (from Orchestrator or the token endpoint).
        token_requests: requests sent to the token endpoint.
    """

    responses: Mapping[tuple[str, int | str], int]
    retries: int
    rate_limited: int
    token_requests: int

    def count(self, endpoint: str, outcome: int | str) -> int:
        """Responses with this outcome for this endpoint (0 if none)."""
        return self.responses.get((endpoint, outcome), 0)


class Transport:
    """Authenticated, retried requests to one Orchestrator tenant.

    Usage::

        async with Transport(settings) as transport:
            response = await transport.request(
                "GET", "odata/Jobs(42)", headers=folder_headers("Finance")
            )
            job = response.json()

    Args:
        settings: URL, credentials, timeouts, retry policy, pool limits.
        session: an aiohttp session to use; it is then never closed here. By
            default the transport creates one on ``__aenter__`` and closes it on exit.
        sender: what sends each request, instead of an aiohttp session (a test's
            fake :class:`~async_orch._seams.HTTPSender`); never closed here.
        sleep: awaited between retries (tests pass a recorder).
        clock: monotonic seconds, for token expiry.
        rng: randomness for backoff jitter (seed it for reproducible tests).
        hooks: called on every try, answer and retry (:mod:`async_orch._transport_hooks`),
            token requests included.
        wall_clock: now, as an aware UTC datetime: when each answer came, for
            :attr:`server_clock` (tests put this machine's clock off).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        sender: HTTPSender | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        hooks: Sequence[TransportHooks] = (),
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        where = settings.orchestrator
        self._settings = settings
        self._base = where.base
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._health = HealthTracker(clock)
        self.wall_clock = wall_clock
        #: The server's clock against ``wall_clock``, from Orchestrator's answers'
        #: ``Date`` headers (not the token endpoint's, nor blob storage's: other servers).
        self.server_clock = ServerClock()
        self._hooks: tuple[TransportHooks, ...] = (self._health, *hooks)
        self._listened = bool(hooks)  # False: only the health tracker, told directly
        self._timeout = request_timeout(settings)
        if session is not None and sender is not None:
            raise ValueError("give Transport a session or a sender, not both")
        if session is not None:
            sender = AiohttpSender(session, timeout=self._timeout)
        self._sender = sender
        self._owned_session: aiohttp.ClientSession | None = None
        self._tokens: TokenManager | None = None
        if sender is not None:
            self._tokens = self._token_manager(sender)
        self._responses: Counter[tuple[str, int | str]] = Counter()
        self._retries = 0
        self._rate_limited = 0
        # Token requests of token managers already closed, so stats outlive aclose().
        self._closed_token_requests = 0
        self._extra_headers: dict[str, str] = {}
        credentials = settings.credentials
        if where.kind == "legacy":
            # The legacy platform routes by this header (orchestrator-api.md §1b).
            tenant = (
                credentials.tenant_name
                if isinstance(credentials, RefreshTokenCredentials)
                else where.tenant
            )
            if tenant:
                self._extra_headers["X-UIPATH-TenantName"] = tenant

    def __repr__(self) -> str:
        return f"Transport(base={self._base!r})"

    # -- lifecycle --------------------------------------------------------------------------

    def _token_manager(self, sender: HTTPSender) -> TokenManager:
        return TokenManager(
            self._settings.credentials,
            sender=sender,
            token_url=self._settings.token_url,
            clock=self._clock,
            hooks=self._hooks,
        )

    async def __aenter__(self) -> Self:
        if self._sender is None:
            self._owned_session = session_for(self._settings, timeout=self._timeout)
            self._sender = AiohttpSender(self._owned_session, timeout=self._timeout)
            self._tokens = self._token_manager(self._sender)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session if this transport created it."""
        if self._owned_session is not None:
            if self._tokens is not None:
                self._closed_token_requests += self._tokens.token_requests
            session, self._owned_session = self._owned_session, None
            self._sender, self._tokens = None, None
            await session.close()

    # -- counters ---------------------------------------------------------------------------

    @property
    def stats(self) -> TransportStats:
        """A snapshot of the counters."""
        return TransportStats(
            responses=dict(self._responses),
            retries=self._retries,
            rate_limited=self._rate_limited,
            token_requests=self._closed_token_requests
            + (0 if self._tokens is None else self._tokens.token_requests),
        )

    def server_now(self) -> datetime:
        """The earliest the server's clock may read now (:attr:`server_clock`,
        ``ServerClock.earliest_server_time``): from its ``Date`` headers once one
        came, else this machine's clock less a margin."""
        return self.server_clock.earliest_server_time(self.wall_clock())

    @property
    def health(self) -> TransportHealth:
        """When the server last answered, and the current failure streak (if any)."""
        return self._health.health

    def _sending(
        self, method: str, url: str, label: str, json: Any, attempt: int
    ) -> tuple[RequestSent, dict[str, str] | None]:
        """The event of a try, told to the hooks; with the headers they add."""
        event = RequestSent(method, url, label, json, self._clock(), attempt)
        return event, announce_request(self._hooks, event)

    def _answered(
        self, sent: RequestSent | None, status: int | None, error: str | None, label: str
    ) -> None:
        """Tell the hooks how a try ended; without events when only the health
        tracker listens (``sent`` is None then: requests are the hot path)."""
        if sent is None:
            self._health.answered(status, error, label)
        else:
            report_answer(self._hooks, sent, status, error, self._clock())

    # -- requests ---------------------------------------------------------------------------

    def ensure_open(self) -> None:
        """Raise :class:`ClientClosedError` unless requests can be sent now."""
        if self._sender is None or self._tokens is None:
            raise ClientClosedError()
        if self._sender.closed:
            raise ClientClosedError(session_closed=True)

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            # A server-given link (say @odata.nextLink): only ever send the token home.
            if not path.startswith(self._base + "/"):
                raise InvalidRequestError(
                    f"refusing to send the access token to {path.split('?')[0]}: "
                    f"it is outside the Orchestrator base {self._base}"
                )
            return path
        return f"{self._base}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        endpoint: str | None = None,
        attempts: int | None = None,
    ) -> Response:
        """Send an API request; return a response with status < 400, or raise.

        Args:
            method: HTTP method.
            path: relative to the Orchestrator base, e.g. ``"odata/Jobs"``; an
                absolute URL is accepted only under that base.
            params: query parameters (OData options such as ``$filter``).
            json: a JSON body (None: no body).
            headers: extra headers, typically ``protocol.folder_headers(...)``.
            idempotent: whether repeating the request is harmless; by default
                True for GET, HEAD, OPTIONS, PUT and DELETE. Pass True for a
                POST that is safe to repeat (StopJobs), never for StartJobs.
            endpoint: the label for :attr:`stats` (default: the path with ids
                replaced by ``{id}``).
            attempts: tries of this request, the first included (default
                ``RetryPolicy.attempts``); 1 when the caller owns its retries.

        Raises:
            AuthenticationError: credentials refused, or a fresh token refused.
            RateLimitedError: still rate limited when the tries ran out, or asked
                to wait longer than ``RetryPolicy.retry_after_max``.
            APIError: any other error status (its subclass tells which).
            TransportError: no usable response; ``may_have_reached_server``
                says whether the request may have been acted on.
            InvalidRequestError: an absolute URL outside the Orchestrator base.
            ClientClosedError: not inside ``async with``, or the session given
                was closed; nothing was sent.
        """
        self.ensure_open()
        sender, tokens = self._sender, self._tokens
        assert sender is not None and tokens is not None  # ensure_open checked
        method = method.upper()
        idem = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        url = self._url(path)
        label = endpoint or endpoint_label(path)
        body = None
        send_headers = {
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
            **self._extra_headers,
            **(headers or {}),
        }
        if json is not None:
            body = _JSON_BODY.encode(json).encode("utf-8")
            send_headers["Content-Type"] = "application/json"
        query = None if params is None else {k: str(v) for k, v in params.items()}

        tries = self._settings.retry.attempts if attempts is None else attempts
        failures = 0  # transient failures of the request so far
        token_failures = 0  # failures to get a token (nothing was sent)
        renewed = False  # the one token renewal a 401 earns
        sent_tries = 0  # tries put on the wire, whatever the reason for each
        while True:
            try:
                token = tokens.fresh_token() or await tokens.get_token()
            except (TransportError, RateLimitedError, ServerError) as exc:
                if isinstance(exc, RequestTimeoutError) and not tokens.ever_issued:
                    # Silence from a token endpoint never reached: unreachable, fatal.
                    raise unanswered_first_token(exc, self._settings.timeout) from exc
                if isinstance(exc, RateLimitedError):
                    self._rate_limited += 1
                token_failures += 1
                # The API request was not sent: repeating is harmless whatever it is.
                await self._pause_or_raise(
                    exc, token_failures, self._settings.retry.attempts, True, method, label
                )
                continue

            send_headers["Authorization"] = f"Bearer {token}"
            sent_tries += 1
            sent, added = (
                self._sending(method, url, label, json, sent_tries)
                if self._listened
                else (None, None)
            )
            try:
                ticket = self._health.sending()
                try:
                    response = await sender.send(
                        method,
                        url,
                        # A hook's header never replaces ours (Authorization above all).
                        headers=send_headers if added is None else {**added, **send_headers},
                        params=query,
                        body=body,
                    )
                finally:
                    self._health.done(ticket)
            except TransportError as exc:
                self._answered(sent, None, str(exc), label)
                self._responses[(label, "error")] += 1
                failures += 1
                await self._pause_or_raise(exc, failures, tries, idem, method, label)
                continue
            except BaseException:  # cancelled (or interrupted) while on the wire
                if sent is not None:  # (the health tracker ignores a cancelled try)
                    report_cancelled(self._hooks, sent, self._clock())
                raise

            status = response.status
            self.server_clock.observe(response.headers.get("Date"), self.wall_clock)
            self._answered(sent, status, None, label)
            self._responses[(label, status)] += 1
            if status < 400:
                return response
            now = datetime.now(UTC)
            error = error_from_response(
                status, response.headers, response.body, method=method, url=url, now=now
            )
            if status == 401:
                await tokens.invalidate(token)
                if tokens.is_static or renewed:
                    revoked = said_revoked(response.headers)
                    raise self._refused(error, static=tokens.is_static, revoked=revoked) from error
                renewed = True
                log.debug("async_orch.token_rejected", method=method, endpoint=label)
                continue
            if status == 429:
                self._rate_limited += 1
            if error.retry_after is None:
                # A 503's Retry-After may sit in the body; it makes the 503 a refusal.
                error.retry_after = retry_after_from(response.headers, response.body, now=now)
            failures += 1
            await self._pause_or_raise(error, failures, tries, idem, method, label)

    async def blob(
        self,
        method: str,
        access: BlobAccess,
        *,
        body: bytes | None = None,
        max_bytes: int,
        endpoint: str,
    ) -> bytes:
        """Transfer an attachment's content (:mod:`async_orch._blobs`): PUT ``body``
        or GET the content (at most ``max_bytes``), with the access's headers and,
        when it RequiresAuth, the bearer token, which only ever goes to the
        Orchestrator base. Both verbs are idempotent: retried like a GET.

        Raises:
            BlobTooLargeError: the content is longer than ``max_bytes``.
            InvalidRequestError: RequiresAuth for a URL outside the base.
            APIError, TransportError, ClientClosedError: as :meth:`request`.
        """
        self.ensure_open()
        tokens = self._tokens
        assert tokens is not None  # ensure_open checked
        sender = self._sender
        assert sender is not None  # ensure_open checked
        url = self._url(access.uri) if access.requires_auth else access.uri
        headers = {"User-Agent": _USER_AGENT, **access.headers}
        failures = 0
        renewed = False
        while True:
            token = await tokens.get_token() if access.requires_auth else None
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            sent, added = self._sending(method, url, endpoint, None, failures + 1)
            try:
                ticket = self._health.sending()
                try:
                    answer = await sender.send(
                        method,
                        url,
                        headers=headers if added is None else {**added, **headers},
                        body=body,
                        max_body=max_bytes,
                    )
                finally:
                    self._health.done(ticket)
            except TransportError as exc:
                report_answer(self._hooks, sent, None, str(exc), self._clock())
                self._responses[(endpoint, "error")] += 1
                failures += 1
                await self._pause_or_raise(
                    exc, failures, self._settings.retry.attempts, True, method, endpoint
                )
                continue
            except BaseException:
                report_cancelled(self._hooks, sent, self._clock())
                raise
            status = answer.status
            if status < 400:
                report_answer(self._hooks, sent, status, None, self._clock())
                self._responses[(endpoint, status)] += 1
                return answer.body
            report_answer(self._hooks, sent, status, None, self._clock())
            self._responses[(endpoint, status)] += 1
            now = datetime.now(UTC)
            api_error = error_from_response(
                status, answer.headers, answer.body, method=method, url=url, now=now
            )
            if status == 401 and token is not None and not renewed:
                await tokens.invalidate(token)
                renewed = True
                continue
            failures += 1
            await self._pause_or_raise(
                api_error, failures, self._settings.retry.attempts, True, method, endpoint
            )

    async def _pause_or_raise(
        self,
        error: OrchestratorError,
        failures: int,
        attempts: int,
        idempotent: bool,
        method: str,
        label: str,
    ) -> None:
        """Sleep before the next try, or raise if there is none worth making."""
        step = transport_step(
            error,
            failures=failures,
            attempts=attempts,
            idempotent=idempotent,
            policy=self._settings.retry,
            rng=self._rng,
        )
        if isinstance(step, GiveUp):
            if step.error is error:
                raise error
            raise step.error from error
        self._retries += 1
        reason = str(error.status) if isinstance(error, APIError) else type(error).__name__
        call_hooks(
            self._hooks, "on_retry", RetryScheduled(method, label, failures + 1, step.delay, reason)
        )
        log.debug(
            "async_orch.http_retry",
            method=method,
            endpoint=label,
            attempt=failures + 1,
            delay=round(step.delay, 3),
            reason=reason,
            retry_after=error.retry_after if isinstance(error, APIError) else None,
        )
        await self._sleep(step.delay)

    def _refused(self, error: APIError, *, static: bool, revoked: bool) -> AuthenticationError:
        # Tokens that worked earlier in this run rule out a wrong URL or tenant: the
        # likely cause is a revocation (orchestrator-api.md §1e lists the 401 causes).
        # So does a server that says the token was revoked (WWW-Authenticate), even
        # when the token was issued a moment ago and nothing was accepted yet.
        accepted_before = any(
            isinstance(outcome, int) and outcome < 400 for _, outcome in self._responses
        )
        if static and (accepted_before or revoked):
            what = (
                "Orchestrator refused the access token it accepted earlier in this run"
                if accepted_before
                else "Orchestrator says the access token was revoked"
            )
            hint = "The token was revoked (or has expired): create a new personal access token"
        elif revoked:
            what = "Orchestrator says the token was revoked, although it was just issued"
            hint = (
                "The tokens are being revoked as they are issued: an administrator revoked "
                "this application's (or user's) access, or disabled it or the tenant; the URL "
                "and credentials are right (the token endpoint accepted them). Ask the "
                "tenant's administrator"
            )
        elif static:
            hint = (
                "The token was refused; create a new personal access token (it may have "
                "been revoked or expired, lack a scope, or belong to another tenant)"
            )
            what = "Orchestrator refused the access token"
        elif accepted_before:
            what = (
                "Orchestrator refused a freshly issued token, after accepting this run's "
                "earlier requests"
            )
            hint = (
                "The tokens are being revoked: an administrator revoked this application's "
                "(or user's) access, or disabled it or the tenant; the URL and credentials "
                "are right (they worked until now). Ask the tenant's administrator"
            )
        else:
            hint = (
                f"Check the Orchestrator URL ({self._base}): it must name the organization "
                "and tenant the credentials belong to (…/{organization}/{tenant}/orchestrator_), "
                "with no folder in the path (folders go in the folder setting)"
            )
            what = "Orchestrator refused a freshly issued token"
        return AuthenticationError(what, status=401, server_message=error.message, hint=hint)
