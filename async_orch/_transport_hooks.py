"""Hooks on the transport: what was sent, what came back, what is retried.

Pass :class:`TransportHooks` subclasses to ``Transport(..., hooks=[...])`` (or
``OrchestratorClient(..., hooks=[...])``). Each hook is called synchronously in
the request's task, so it must be quick and must not raise (a hook that raises,
or whose ``on_request`` returns something that is not headers, is logged and
otherwise ignored). Token requests are reported too (their body
never is: it holds the credentials).

``on_request`` may return headers to add to that try (a W3C ``traceparent``,
say: :mod:`async_orch.tracing` does so); they never replace a header the
transport sets (``Authorization`` among them). Token requests are sent as they
are: the identity server is not Orchestrator.

The transport's own :class:`HealthTracker` is one such hook: it keeps the time
of the last answer and the current failure streak, which progress displays use
to say what a quiet batch is waiting for.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from async_orch._logs import get_logger

__all__ = [
    "HealthTracker",
    "RequestSent",
    "ResponseReceived",
    "RetryScheduled",
    "TransportHealth",
    "TransportHooks",
    "announce_request",
    "call_hooks",
    "report_answer",
    "report_cancelled",
]

log = get_logger("async_orch.transport")

#: A header name (RFC 9110 token).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

#: A failure streak this long (seconds) is logged as a warning, then again every as long.
OUTAGE_WARNING_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class RequestSent:
    """One try of a request, about to go on the wire.

    Attributes:
        method: the HTTP method.
        url: as sent, without its query string.
        endpoint: the transport's label (``"odata/Jobs"``, ``"token"``...).
        json: the JSON body as given to the transport (None for token requests).
        at: the transport's clock when it was sent.
        attempt: the try of this request, the first being 1 (a retry or a
            resend with a renewed token counts).
    """

    method: str
    url: str
    endpoint: str
    json: Any = field(default=None, repr=False)
    at: float = 0.0
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """How one try ended.

    Attributes:
        request: the try.
        status: the HTTP status, or None when no answer came.
        error: why no answer came (None when one did).
        seconds: from sending to the end of the answer (or of the failure).
        cancelled: the caller cancelled the try while it was on the wire: the
            server may or may not have received it, and may have answered it.
    """

    request: RequestSent
    status: int | None
    error: str | None
    seconds: float
    cancelled: bool = False

    @property
    def server_failing(self) -> bool:
        """No answer, a 5xx or a 429: the server is not serving us right now."""
        if self.cancelled:
            return False  # we stopped waiting: that says nothing about the server
        return _failing(self.status)


def _failing(status: int | None) -> bool:
    """No answer, a 5xx or a 429."""
    return status is None or status >= 500 or status == 429


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """A request will be sent again after ``delay`` seconds."""

    method: str
    endpoint: str
    attempt: int  # the try about to be made, the first being 1
    delay: float
    reason: str  # the status ("503") or the error's type


class TransportHooks:
    """Callbacks on the transport's events; override the ones you need."""

    def on_request(self, event: RequestSent) -> Mapping[str, str] | None:
        """A try is about to be sent; may return headers to add to it."""
        return None

    def on_response(self, event: ResponseReceived) -> None:
        """A try ended, with an answer or without."""

    def on_retry(self, event: RetryScheduled) -> None:
        """A request will be retried after a pause."""


def call_hooks(hooks: Sequence[TransportHooks], method: str, event: object) -> None:
    """Call ``hook.<method>(event)`` on each hook; one raising is logged, not raised."""
    for hook in hooks:
        try:
            getattr(hook, method)(event)
        except Exception as exc:
            log.warning("async_orch.hook_failed", hook=type(hook).__name__, error=repr(exc))


def announce_request(hooks: Sequence[TransportHooks], event: RequestSent) -> dict[str, str] | None:
    """Call each hook's ``on_request``; the headers they add (None: none)."""
    added: dict[str, str] | None = None
    for hook in hooks:
        try:
            headers = hook.on_request(event)
        except Exception as exc:
            log.warning("async_orch.hook_failed", hook=type(hook).__name__, error=repr(exc))
            continue
        if not headers:
            continue
        if (problem := _header_problem(headers)) is not None:
            log.warning("async_orch.hook_failed", hook=type(hook).__name__, error=problem)
            continue
        added = {**added, **headers} if added else dict(headers)
    return added


def _header_problem(headers: object) -> str | None:
    """Why ``on_request``'s answer cannot be sent as headers (None: it can)."""
    if not isinstance(headers, Mapping):
        return f"on_request returned {type(headers).__name__}, not a mapping of headers"
    for name, value in headers.items():
        if not (isinstance(name, str) and isinstance(value, str)):
            return f"on_request returned the header {name!r}: {value!r}; names and values are str"
        if not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n\0"):
            return f"on_request returned the header {name!r}, which is not a valid header"
    return None


def report_answer(
    hooks: Sequence[TransportHooks],
    sent: RequestSent,
    status: int | None,
    error: str | None,
    now: float,
) -> None:
    """Tell the hooks how the try ``sent`` ended (at ``now``)."""
    call_hooks(hooks, "on_response", ResponseReceived(sent, status, error, now - sent.at))


def report_cancelled(hooks: Sequence[TransportHooks], sent: RequestSent, now: float) -> None:
    """Tell the hooks the try ``sent`` was cancelled while on the wire."""
    event = ResponseReceived(sent, None, "cancelled", now - sent.at, cancelled=True)
    call_hooks(hooks, "on_response", event)


@dataclass(frozen=True, slots=True)
class TransportHealth:
    """Whether the server has been answering, on the transport's clock.

    Attributes:
        last_answer: when the last usable answer came (None: none yet).
        failing_since: when the current failure streak began (None: no streak).
        failures: tries in the current streak (no answer, 5xx or 429).
        last_failure: what the last failure was (``"HTTP 503"``, ``"cannot connect: ..."``).
        waiting_since: when the oldest request still waiting for its answer was
            sent (None: none waits).
        waiting: requests waiting for their answer.
    """

    last_answer: float | None = None
    failing_since: float | None = None
    failures: int = 0
    last_failure: str | None = None
    waiting_since: float | None = None
    waiting: int = 0

    def failing_for(self, now: float) -> float:
        """Seconds the current failure streak has lasted (0 when there is none)."""
        return 0.0 if self.failing_since is None else max(0.0, now - self.failing_since)

    def silent_for(self, now: float) -> float:
        """Seconds the server has left a request waiting without answering any
        (0 when none waits): a frozen server fails nothing until a timeout, so a
        failure streak alone does not show it. Since the oldest waiting request
        was sent, or the last answer if one came since."""
        if self.waiting_since is None:
            return 0.0
        since = self.waiting_since
        if self.last_answer is not None:
            since = max(since, self.last_answer)
        return max(0.0, now - since)


class HealthTracker(TransportHooks):
    """Keeps a :class:`TransportHealth` from the responses; warns on long outages."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last_answer: float | None = None
        self._failing_since: float | None = None
        self._failures = 0
        self._last_failure: str | None = None
        self._warned_at: float | None = None
        # When each request waiting for its answer was sent, in the order sent
        # (so the first is the oldest), by ticket.
        self._waiting: dict[int, float] = {}
        self._tickets = itertools.count()

    @property
    def health(self) -> TransportHealth:
        oldest = next(iter(self._waiting.values()), None)
        return TransportHealth(
            self._last_answer,
            self._failing_since,
            self._failures,
            self._last_failure,
            waiting_since=oldest,
            waiting=len(self._waiting),
        )

    def sending(self) -> int:
        """A request is put on the wire; returns its ticket for :meth:`done`."""
        ticket = next(self._tickets)
        self._waiting[ticket] = self._clock()
        return ticket

    def done(self, ticket: int) -> None:
        """The request of ``ticket`` has its answer, failed, or was cancelled."""
        self._waiting.pop(ticket, None)

    def on_response(self, event: ResponseReceived) -> None:
        if event.cancelled:
            return  # neither an answer nor a failure
        self.answered(event.status, event.error, event.request.endpoint)

    def answered(self, status: int | None, error: str | None, endpoint: str) -> None:
        """:meth:`on_response` without the event: a try to ``endpoint`` ended with
        ``status`` (None: no answer, for the reason ``error``). The transport calls
        this directly when no other hook listens, to build no events per request."""
        now = self._clock()
        if not _failing(status):
            if self._failures == 0 and self._warned_at is None:
                self._last_answer = now  # the usual answer: nothing else to change
                return
            if self._warned_at is not None:
                log.warning(
                    "async_orch.server_answering_again",
                    after_seconds=round(self.health.failing_for(now), 1),
                    failures=self._failures,
                )
                self._warned_at = None
            self._last_answer, self._failing_since, self._failures = now, None, 0
            self._last_failure = None
            return
        what = error if status is None else f"HTTP {status}"
        if self._failing_since is None:
            self._failing_since = now
        self._failures += 1
        self._last_failure = what
        warned = self._warned_at if self._warned_at is not None else self._failing_since
        if now - warned >= OUTAGE_WARNING_AFTER:
            self._warned_at = now
            log.warning(
                "async_orch.server_not_answering",
                seconds=round(now - self._failing_since, 1),
                failures=self._failures,
                last_failure=what,
                endpoint=endpoint,
            )
