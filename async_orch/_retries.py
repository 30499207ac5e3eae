"""Every retry decision of async-orch: pure functions and one state machine.

No I/O, no clock reads, no sleeping: time comes in as an argument and each
decision comes out as a value that the I/O shell (``transport.py``,
``starting.py``) carries out. The policy (:class:`RetryPolicy`: how many tries,
how long the waits) is here too, with the waits it gives (:func:`compute_delay`).

Who retries what (one owner per request):

* **The transport** retries a request it is asked to send with ``attempts``
  > 1 (reads, StopJobs, token requests), as :func:`transport_step` decides.
* **The start protocol** (:class:`StartProtocol`) owns StartJobs: the
  transport sends each StartJobs POST, and each Reference lookup, exactly
  once, so a persistent 429 costs at most ``start_attempts`` POSTs per
  request, and ``batch_retries`` re-posts per batch.

Theory of operation of the exactly-once start
---------------------------------------------

Every request carries a Reference. ``next_step(now)`` says what to do:

::

    POST ──created──────────────────────────────────────────> Created
      │ ──refused (429, 503+Retry-After, not sent)──> wait, POST again
      │ ──rejected (4xx) or out of attempts──────────────────> Failed
      │ ──ambiguous (timeout, reset, 5xx): it may exist──┐
      │                                                   v
      │        LOOKUP now, then a final LOOKUP once the reconcile window
      │        has passed since the ambiguous answer (the server may still
      │        be working on the call until then); a final lookup that fails
      │        is tried again, up to RetryPolicy.attempts times, with backoff
      │          jobs found (any lookup) ────────────────────> Adopted
      │          a lookup sent after the window found none ──> POST again
      │          ... found only jobs not ours (older, or of ──> Failed
      │              another process: a reused Reference)     (ReferenceInUseError)
      │          the final lookup kept failing ──────────────> Uncertain
      └────────────────────────────────────────────────────────────

A request is posted again only when a lookup sent after the reconcile window
answered and found nothing: the server is no longer at work on the first call
by then, so that answer proves the call created nothing. An earlier lookup that
failed proves nothing either way (lookups are reads) and does not change this.
An uncertain request is reported with its Reference
(:class:`~async_orch._errors.UncertainStartError`), never guessed.
Lookups are list calls: the shell batches them per folder and charges each
to the list budget (``reference_lookups.py``).

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
2xx that cannot be read   no           **no**       StartJobs created jobs, which only a
(StartAnswerUnreadable)                             lookup by Reference can name
========================  ===========  ===========  ======================================

After a "no" on StartJobs the caller looks the jobs up by their Reference
before posting again (``TransportError.may_have_reached_server``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from async_orch._errors import (
    APIError,
    ConfigurationError,
    OrchestratorError,
    RateLimitedError,
    ReferenceInUseError,
    ServerError,
    StartAnswerUnreadableError,
    TransportError,
    UncertainStartError,
)
from async_orch._models import CreatedJob, Job

__all__ = [
    "ADOPTION_CLOCK_TOLERANCE",
    "Adopted",
    "BatchRetries",
    "Created",
    "Failed",
    "FoundJobs",
    "GiveUp",
    "LookUp",
    "Post",
    "Retry",
    "RetryPolicy",
    "StartProtocol",
    "StartStep",
    "Uncertain",
    "Wait",
    "compute_delay",
    "is_retryable",
    "is_retryable_status",
    "may_have_started",
    "parse_retry_after",
    "sort_found_jobs",
    "transport_step",
]


# -- the policy and its waits -----------------------------------------------------------


#: Seconds added to the request timeout for the default reconcile window.
RECONCILE_MARGIN = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How transient failures are retried (the waits: `compute_delay`).

    Attributes:
        attempts: tries per request, the first included (1 = never retry).
        wait_initial: backoff before the first retry, doubled for each next one.
        wait_max: ceiling of one backoff wait.
        wait_jitter: up to this many random seconds added, so clients spread out.
        retry_after_max: the longest server-requested wait (``Retry-After``) we
            honour; asked for more, we give up at once instead of hammering a
            limit that will still be closed.
        reconcile_window: seconds after a StartJobs got no clear answer during
            which the server may still create its jobs. Such a start is posted
            again only if its Reference was still not found by a lookup made
            after this window (docs/reliability.md). None: the request timeout
            plus 30 s (90 s with the defaults); set it longer when a gateway in
            front of Orchestrator keeps requests alive longer than that.
        batch_retries: StartJobs re-posts allowed in one batch, over all its
            requests (None: one per request plus 10); per request,
            ``DispatchLimits.start_attempts`` bounds the POSTs.
    """

    attempts: int = 5
    wait_initial: float = 0.5
    wait_max: float = 10.0
    wait_jitter: float = 1.0
    retry_after_max: float = 120.0
    reconcile_window: float | None = None
    batch_retries: int | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError(
                f"RetryPolicy.attempts must be at least 1 (got {self.attempts})"
            )
        for name in ("wait_initial", "wait_max", "wait_jitter", "retry_after_max"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"RetryPolicy.{name} must not be negative")
        window = self.reconcile_window
        if window is not None and not (0 <= window < math.inf):
            raise ConfigurationError(
                f"RetryPolicy.reconcile_window must be a number of seconds >= 0, got {window}"
            )
        if self.batch_retries is not None and self.batch_retries < 0:
            raise ConfigurationError(
                f"RetryPolicy.batch_retries must not be negative, got {self.batch_retries}"
            )

    def window_after(self, request_timeout: float) -> float:
        """The reconcile window in seconds, for requests that time out after
        ``request_timeout`` seconds (see ``reconcile_window``)."""
        if self.reconcile_window is not None:
            return self.reconcile_window
        return request_timeout + RECONCILE_MARGIN


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


# -- the transport's retries ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Retry:
    """Send the request again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop trying; raise ``error``."""

    error: OrchestratorError


def transport_step(
    error: OrchestratorError,
    *,
    failures: int,
    attempts: int,
    idempotent: bool,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> Retry | GiveUp:
    """What the transport does after a transient failure of one request.

    Args:
        error: what the last try raised (a TransportError or an APIError).
        failures: tries failed so far, this one included (>= 1).
        attempts: tries this request may take in all (1: the caller retries).
        idempotent: repeating the request is harmless.
        policy: the waits and the longest ``Retry-After`` honoured.
        rng: randomness for the jitter.
    """
    retry_after = error.retry_after if isinstance(error, APIError) else None
    if isinstance(error, APIError):
        retryable = is_retryable_status(
            error.status, idempotent=idempotent, has_retry_after=retry_after is not None
        )
    else:
        retryable = is_retryable(error, idempotent=idempotent)
    too_long = retry_after is not None and retry_after > policy.retry_after_max
    if not retryable or too_long or failures >= attempts:
        if isinstance(error, RateLimitedError) and attempts > 1:
            return GiveUp(_exhausted(error, failures=failures, policy=policy))
        return GiveUp(error)
    if retry_after is not None:
        return Retry(retry_after)  # the server's wait, no backoff on top
    return Retry(compute_delay(failures, policy=policy, rng=rng))


def _exhausted(error: RateLimitedError, *, failures: int, policy: RetryPolicy) -> RateLimitedError:
    """The 429 to raise when retrying stopped, saying why and what to do."""
    if error.retry_after is not None and error.retry_after > policy.retry_after_max:
        # Retries inside the window are refused too (orchestrator-api.md §4):
        # coming back early only spends the tenant's shared budget.
        advice = (
            f"the server asked to wait {error.retry_after:.0f} s, longer than "
            f"RetryPolicy.retry_after_max ({policy.retry_after_max:.0f} s); try "
            "again later, or raise retry_after_max"
        )
    else:
        advice = (
            f"the rate limit stayed exhausted after {failures} tries; lower the "
            "request rate (Automation Cloud allows about 100 GET /odata/Jobs calls "
            "a minute per tenant, shared by all API clients) or try again later"
        )
    return RateLimitedError(
        retry_after=error.retry_after,
        status=error.status,
        method=error.method,
        url=error.url,
        message=f"{error.message} - {advice}",
        error_code=error.error_code,
        trace_id=error.trace_id,
        body=error.body,
    )


# -- StartJobs ---------------------------------------------------------------------------


def may_have_started(exc: OrchestratorError) -> bool:
    """Whether a failed StartJobs may still have created jobs (see backoff.py's table)."""
    if isinstance(exc, TransportError):
        return exc.may_have_reached_server
    if isinstance(exc, StartAnswerUnreadableError):
        return True  # a success status: its jobs exist, only their Reference names them
    if isinstance(exc, RateLimitedError):
        return False  # a 429 is a refusal
    if isinstance(exc, ServerError):
        # Only a 503 with Retry-After is a deliberate "not now"; a proxy also
        # answers 503 after forwarding, and 500/502/504 say nothing either.
        return not (exc.status == 503 and exc.retry_after is not None)
    return False


# -- adopting jobs found by Reference ---------------------------------------------------

#: How much older than the batch a job found by its Reference may say it is and
#: still be taken as the batch's own. CreationTime (JobDto, orchestrator-api.md
#: §3.4) is the server's clock; the batch's start is put on it with the offset
#: the server's ``Date`` headers show, or, before any was seen, 5 minutes earlier
#: than this machine's clock (``ServerClock.earliest_server_time``). What is left
#: is seconds: ``Date``'s one-second steps, the server's nodes' clocks, and this
#: machine's clock stepping between a sample and the start (or, on a resume,
#: between the journal's creation and the resume). A false "not ours" reports a
#: running job as not started, so the margin is several times that; a reused
#: Reference names a job of an earlier run, and dispatch warns before starting
#: References that name jobs.
ADOPTION_CLOCK_TOLERANCE = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class FoundJobs:
    """Jobs found by a Reference, sorted: ``ours`` may be this batch's; each of
    ``foreign`` cannot be (with the reason, for the error)."""

    ours: list[Job]
    foreign: list[tuple[Job, str]]

    def refusal(self, reference: str, folder: str) -> ReferenceInUseError | None:
        """The error of a request whose Reference names only jobs not its own, else None."""
        if self.ours or not self.foreign:
            return None
        job, why = self.foreign[0]
        created = job.creation_time.isoformat() if job.creation_time else None
        return ReferenceInUseError(
            reference=reference, folder=folder, job_id=job.id, created=created, why=why
        )


def sort_found_jobs(
    jobs: list[Job],
    *,
    not_before: datetime | None,
    process: str | None,
    tolerance: timedelta = ADOPTION_CLOCK_TOLERANCE,
) -> FoundJobs:
    """Which jobs found by a Reference can be the batch's own (pure).

    A job is not adopted if it was created before ``not_before`` (when the batch,
    or the request's first StartJobs, began, on the server's clock as far as
    known: :class:`~async_orch._server_clock.ServerClock`) by more than
    ``tolerance``, or if it
    runs another process than ``process`` (compared without case, as names
    resolve); a field the server did not send, or None here, does not count
    against it. A Reference used before names such a job: adopting it would
    report an old job's outputs as this request's and never start the work.
    """
    ours: list[Job] = []
    foreign: list[tuple[Job, str]] = []
    for job in jobs:
        if (
            not_before is not None
            and job.creation_time is not None
            and job.creation_time < not_before - tolerance
        ):
            foreign.append(
                (
                    job,
                    f"created {job.creation_time.isoformat()}, before this batch began "
                    f"at {not_before.isoformat()}",
                )
            )
        elif (
            process is not None
            and job.release_name is not None
            and job.release_name.casefold() != process.casefold()
        ):
            foreign.append((job, f"a job of process {job.release_name!r}, not {process!r}"))
        else:
            ours.append(job)
    return FoundJobs(ours, foreign)


@dataclass(slots=True)
class BatchRetries:
    """StartJobs re-posts left to one batch, over all its requests.

    A persistent refusal (a tenant out of quota, a 429 storm) then costs a
    batch at most ``limit`` extra POSTs, whatever its size.
    """

    limit: int
    used: int = 0

    @classmethod
    def for_batch(cls, requests: int, policy: RetryPolicy) -> BatchRetries:
        """The allowance of a batch of ``requests`` under ``policy.batch_retries``."""
        if policy.batch_retries is not None:
            return cls(policy.batch_retries)
        return cls(requests + _BATCH_RETRIES_EXTRA)

    def take(self) -> bool:
        """Spend one re-post; False when none is left."""
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


_BATCH_RETRIES_EXTRA = 10  # default allowance: one re-post per request, plus this


@dataclass(frozen=True, slots=True)
class Post:
    """Send StartJobs (attempt ``attempt``, counting from 1)."""

    attempt: int


@dataclass(frozen=True, slots=True)
class LookUp:
    """List the folder's jobs with this Reference."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do before ``until`` (the protocol's clock)."""

    until: float


@dataclass(frozen=True, slots=True)
class Created:
    """StartJobs answered with these jobs."""

    jobs: Sequence[CreatedJob | Job]


@dataclass(frozen=True, slots=True)
class Adopted:
    """A lookup found the jobs an ambiguous StartJobs created."""

    jobs: list[Job]


@dataclass(frozen=True, slots=True)
class Failed:
    """No job was created, certainly; ``error`` says why."""

    error: OrchestratorError


@dataclass(frozen=True, slots=True)
class Uncertain:
    """Jobs may or may not exist; never posted again (``error`` names the Reference)."""

    error: UncertainStartError


StartStep = Post | LookUp | Wait | Created | Adopted | Failed | Uncertain


@dataclass(slots=True)
class _Ambiguity:
    """The reconciliation of one ambiguous StartJobs."""

    at: float  # when the ambiguous answer came
    error: OrchestratorError  # that answer
    final_due: float  # the end of the reconcile window: the final lookup goes after it
    next_due: float  # when the next lookup may be sent
    final_failures: int = 0  # lookups after the window that failed


@dataclass(slots=True)
class StartProtocol:
    """The exactly-once start of one request (module docstring), driven by its
    shell: ``next_step(now)``, carry the step out, report what happened.

    Usage::

        protocol = StartProtocol("order-42", folder="Shared", max_posts=4,
                                 window=90.0, policy=RetryPolicy(),
                                 batch=BatchRetries(10))
        step = protocol.next_step(now)       # Post(1)
        protocol.post_failed(timeout, now)   # ambiguous
        step = protocol.next_step(now)       # LookUp()
        protocol.looked_up([], sent_at=now)  # not there yet
        step = protocol.next_step(now)       # Wait(now + 90)

    Args:
        reference: the request's Reference.
        folder: the folder's name, for the uncertain error.
        max_posts: StartJobs POSTs allowed for this request (>= 1).
        window: the reconcile window, seconds: how long after an ambiguous
            answer the server may still create the jobs.
        policy: backoff waits and the longest ``Retry-After`` honoured.
        batch: the batch's re-post allowance, shared by its requests.
        rng: randomness for the backoff jitter.
        process: the request's process (ReleaseName): a job of another process
            found by the Reference is not adopted (:func:`sort_found_jobs`).
        first_post_at: when the first StartJobs was sent, on the server's clock
            as far as the shell knows it (``Date`` headers): a job found by the
            Reference created well before it is not adopted.
    """

    reference: str
    folder: str
    max_posts: int
    window: float
    policy: RetryPolicy
    batch: BatchRetries
    rng: random.Random | None = None
    process: str | None = None
    first_post_at: datetime | None = None
    posts: int = field(default=0, init=False)  # StartJobs POSTs sent so far
    _post_at: float = field(default=-math.inf, init=False)  # when the next POST may go
    _ambiguity: _Ambiguity | None = field(default=None, init=False)
    _in_flight: bool = field(default=False, init=False)  # a step awaits its outcome
    _done: StartStep | None = field(default=None, init=False)

    # -- what to do next ---------------------------------------------------------------

    def next_step(self, now: float) -> StartStep:
        """The next step; the same one again until its outcome is reported."""
        if self._done is not None:
            return self._done
        if self._in_flight:
            raise RuntimeError("report the outcome of the last step before asking again")
        amb = self._ambiguity
        if amb is not None:
            if now < amb.next_due:
                return Wait(amb.next_due)
            self._in_flight = True
            return LookUp()
        if now < self._post_at:
            return Wait(self._post_at)
        self.posts += 1
        self._in_flight = True
        return Post(self.posts)

    @property
    def reconciling(self) -> bool:
        """True while an ambiguous StartJobs is being looked up."""
        return self._ambiguity is not None and self._done is None

    # -- outcomes of a Post ------------------------------------------------------------

    def posted(self, jobs: Sequence[CreatedJob | Job]) -> None:
        """StartJobs answered with ``jobs``."""
        self._reported()
        self._done = Created(jobs)

    def post_failed(self, error: OrchestratorError, now: float) -> None:
        """StartJobs raised ``error`` at ``now``."""
        self._reported()
        if may_have_started(error):
            self._ambiguity = _Ambiguity(
                at=now, error=error, final_due=now + self.window, next_due=now
            )
            return
        if not is_retryable(error, idempotent=False) and not _refused_503(error):
            self._done = Failed(error)  # rejected: asking again will not help
            return
        retry_after = error.retry_after if isinstance(error, APIError) else None
        if retry_after is not None and retry_after > self.policy.retry_after_max:
            self._done = Failed(error)
            return
        if not self._may_post_again():
            self._done = Failed(error)
            return
        if retry_after is None:
            retry_after = compute_delay(self.posts, policy=self.policy, rng=self.rng)
        self._post_at = now + retry_after

    # -- outcomes of a LookUp ----------------------------------------------------------

    def looked_up(self, jobs: list[Job], *, sent_at: float) -> None:
        """A lookup sent at ``sent_at`` listed ``jobs`` with the Reference."""
        self._reported()
        amb = self._ambiguity
        assert amb is not None
        found = sort_found_jobs(jobs, not_before=self.first_post_at, process=self.process)
        if found.ours:
            self._done = Adopted(found.ours)
            return
        if sent_at < amb.final_due:
            amb.next_due = amb.final_due  # the server may still be at work: look again
            return
        # Sent after the window and answered: nothing was created (module docstring).
        if (refusal := found.refusal(self.reference, self.folder)) is not None:
            # Only someone else's job has the Reference: a new job with it would
            # leave the Reference naming two, so nothing is posted.
            self._done = Failed(refusal)
            return
        self._ambiguity = None
        if self._may_post_again():
            self._post_at = sent_at
        else:
            self._done = Failed(amb.error)

    def lookup_failed(self, error: OrchestratorError, *, sent_at: float) -> None:
        """A lookup sent at ``sent_at`` raised ``error``: it proves nothing.

        The next lookup goes after the window, tried up to ``policy.attempts``
        times with backoff; if none of them answers, the request is uncertain.
        """
        self._reported()
        amb = self._ambiguity
        assert amb is not None
        if sent_at < amb.final_due:
            amb.next_due = amb.final_due
            return
        amb.final_failures += 1
        if amb.final_failures >= self.policy.attempts:
            self._done = self._uncertain(amb, error)
            return
        amb.next_due = sent_at + compute_delay(amb.final_failures, policy=self.policy, rng=self.rng)

    # -- helpers -----------------------------------------------------------------------

    def _reported(self) -> None:
        if not self._in_flight:
            raise RuntimeError("no step is waiting for an outcome")
        self._in_flight = False

    def _may_post_again(self) -> bool:
        return self.posts < self.max_posts and self.batch.take()

    def _uncertain(self, amb: _Ambiguity, lookup_error: OrchestratorError) -> Uncertain:
        return Uncertain(
            UncertainStartError(
                reference=self.reference,
                folder=self.folder,
                start_error=amb.error,
                lookup_error=lookup_error,
            )
        )


def _refused_503(error: OrchestratorError) -> bool:
    """A 503 with Retry-After: a deliberate "not now" (backoff.py's table)."""
    return isinstance(error, ServerError) and error.status == 503 and error.retry_after is not None
