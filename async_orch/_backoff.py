"""Retry decisions and waits, as pure functions (no sleeping, no clock reads).

When is a retry safe?
---------------------

Repeating a request is safe when the repetition cannot do harm. Reads (GET,
HEAD) and idempotent writes (PUT, DELETE, StopJobs) are harmless to repeat, so
any transient failure is retried. ``POST .../StartJobs`` is not: each accepted
call creates jobs. It is retried only on answers that prove the server did
not act on it:

========================  ===========  ===========  ======================================
Outcome                   idempotent   StartJobs    why
========================  ===========  ===========  ======================================
connection refused, DNS,  retry        retry        nothing was sent
TLS, connect timeout
reset, disconnect, read   retry        **no**       the request may have been processed
timeout, truncated body
408 Request Timeout       retry        retry        the server never got the whole request
429 Too Many Requests     retry        retry        a rate limiter refused it up front
503 + ``Retry-After``     retry        retry        a deliberate "come back later"
503 without it            retry        **no**       proxies also answer 503 when the
                                                    upstream broke after forwarding
502, 504                  retry        **no**       a proxy forwarded it and lost or
                                                    waited on the answer
500, other 5xx            retry        **no**       the handler ran and failed part-way
501, 505                  no           no           will not change on retry
other 4xx                 no           no           the request itself is wrong
========================  ===========  ===========  ======================================

After a "no" on StartJobs the caller looks the jobs up by their Reference
before posting again (``TransportError.may_have_reached_server``).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from async_orch._config import RetryPolicy
from async_orch._errors import APIError, OrchestratorError, TransportError

__all__ = [
    "compute_delay",
    "is_retryable",
    "is_retryable_status",
    "parse_retry_after",
]

# Answers that prove the request was refused before anything happened.
_REFUSED = frozenset({408, 429})
# Server errors that will not go away by asking again.
_PERMANENT_5XX = frozenset({501, 505})


def compute_delay(attempt: int, *, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    ``wait_initial * 2**(attempt-1)`` plus up to ``wait_jitter`` random
    seconds, never more than ``wait_max``. So with the defaults: 0.5-1.5 s,
    1-2 s, 2-3 s, 4-5 s, then 8-10 s.

    Args:
        attempt: how many tries have failed so far (>= 1).
        policy: the waits.
        rng: randomness for the jitter; seed one for reproducible tests.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    # Past 2**60 the cap has long been reached; this also avoids float overflow.
    exponential = policy.wait_initial * 2.0 ** min(attempt - 1, 60)
    jitter = (rng or random).uniform(0.0, policy.wait_jitter)
    return min(policy.wait_max, exponential + jitter)


def parse_retry_after(value: str | None, *, now: datetime | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for, or None if absent or unreadable.

    Both forms of RFC 9110 §10.2.3 are read: delta-seconds (``"120"``; a
    fraction is tolerated) and an HTTP-date, measured from ``now``. A value in
    the past or below zero gives 0.

    Args:
        value: the header value.
        now: the reference time for the HTTP-date form; pass the response's
            ``Date`` header when there is one, which avoids clock skew. With
            None an HTTP-date cannot be measured and gives None.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if now is None:
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def is_retryable_status(status: int, *, idempotent: bool, has_retry_after: bool = False) -> bool:
    """Whether an HTTP error status is worth retrying (the table in the module docstring).

    Args:
        status: the response status.
        idempotent: True when repeating the request cannot do harm.
        has_retry_after: the response carried a readable ``Retry-After``; it
            turns a 503 into a proven refusal.
    """
    if status in _REFUSED:
        return True
    if status == 503 and has_retry_after:
        return True
    if 500 <= status <= 599 and status not in _PERMANENT_5XX:
        return idempotent
    return False


def is_retryable(error: OrchestratorError, *, idempotent: bool) -> bool:
    """Whether an error raised for a request is worth retrying.

    A TransportError is retried when the request is idempotent or certainly
    never left; an APIError by its status. The error carries no headers, so a
    503 counts as one without ``Retry-After`` (the conservative choice).
    """
    if isinstance(error, TransportError):
        return idempotent or not error.may_have_reached_server
    if isinstance(error, APIError):
        return is_retryable_status(error.status, idempotent=idempotent)
    return False
