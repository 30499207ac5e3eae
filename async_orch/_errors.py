"""The exceptions async-orch raises.

Every error is an :class:`OrchestratorError`, in two branches: a
:class:`UsageError` means the calling code or its setup is wrong (fix the code,
nothing was sent for it); a :class:`RequestError` means talking to Orchestrator
about one thing failed. A batch never raises a :class:`RequestError`: it goes
into that job's result (``JobResult.error``). A direct call (``orch.api``)
raises it. "No response" is kept apart from "an error response"; data travels
as attributes; the cause is always chained.

::

    OrchestratorError
    ├── UsageError                fix the calling code or its setup; raised, never in a result
    │   ├── ConfigurationError    bad or missing settings; raised before any I/O
    │   ├── ClientClosedError     the client is used outside its 'async with' block,
    │   │                         or the aiohttp session it was given is closed
    │   └── InvalidRequestError   a request we refuse to send (malformed inputs, too long,
    │                             a bad batch); a batch refuses all of it before starting
    └── RequestError              one call or one job failed; in a batch, a result's error
        ├── AuthenticationError   the identity endpoint refused, or 401 after one refresh
        ├── NotFoundByNameError   a folder or process name that does not resolve
        │   ├── FolderNotFoundError
        │   └── ProcessNotFoundError
        ├── TransportError        no usable HTTP response (connection reset, DNS, ...)
        │   └── RequestTimeoutError
        ├── APIError              a response arrived with status >= 400
        │   ├── BadRequestError       400, 422
        │   ├── UnauthorizedError     401 (the client turns it into AuthenticationError
        │   │                         once a token refresh did not help)
        │   ├── PermissionDeniedError 403
        │   ├── NotFoundError         404
        │   ├── ConflictError         409
        │   ├── RateLimitedError      429 (.retry_after)
        │   └── ServerError           5xx
        ├── ResponseDecodeError   a 2xx body that is not what the API documents
        │   ├── BlobTooLargeError attachment content longer than the cap
        │   └── StartAnswerUnreadableError  StartJobs answered 2xx (its jobs exist),
        │                         but not readably: they are looked up by Reference
        ├── NotStartedError       the batch timeout passed before the request's turn to start
        │   └── ReferenceInUseError  its Reference already names an older job: never posted
        ├── UncertainStartError   a StartJobs that may or may not have created jobs
        │                         (.reference): reported, never posted again
        ├── JobLostError          a started job the server no longer has as we knew it
        │                         (404, or its id now names another job)
        ├── StuckPendingError     a job Pending longer than pending_timeout
        └── OutputsUnavailableError  a job's OutputFile attachment could not be read

Whether an error is worth retrying is a function (:func:`async_orch._retries.is_retryable`),
not a class: the tree says what happened, the retry policy decides what to do.

``TransportError.may_have_reached_server`` and ``APIError`` tell the dispatcher
whether a non-idempotent POST (StartJobs) may have created jobs, so it can look
them up by Reference instead of posting again.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BlobTooLargeError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "FolderNotFoundError",
    "InvalidRequestError",
    "JobLostError",
    "NotFoundByNameError",
    "NotFoundError",
    "NotStartedError",
    "OrchestratorError",
    "OutputsUnavailableError",
    "PermissionDeniedError",
    "ProcessNotFoundError",
    "RateLimitedError",
    "ReferenceInUseError",
    "RequestError",
    "RequestTimeoutError",
    "ResponseDecodeError",
    "ServerError",
    "StartAnswerUnreadableError",
    "StuckPendingError",
    "TransportError",
    "UnauthorizedError",
    "UncertainStartError",
    "UsageError",
]


class OrchestratorError(Exception):
    """Base class of every error async-orch raises."""


class UsageError(OrchestratorError):
    """The calling code or its setup is wrong: fix it. Raised, never put in a
    result; nothing was sent for what it names."""


class RequestError(OrchestratorError):
    """One call to Orchestrator, or one job of a batch, failed.

    A batch reports it in that job's result (``JobResult.error``) and goes on
    with the others; a direct call (``orch.api``) raises it.
    """


class ConfigurationError(UsageError):
    """Settings are missing or inconsistent; nothing was sent."""


class ClientClosedError(UsageError):
    """The client cannot send: it is not open, or its aiohttp session is closed.

    Nothing was sent. Attributes:
        session_closed: True when the cause is an aiohttp session the
            application passed in (``session=``) and then closed.
    """

    def __init__(self, *, session_closed: bool = False) -> None:
        self.session_closed = session_closed
        if session_closed:
            message = (
                "the aiohttp session passed to OrchestratorClient(session=...) is closed: keep "
                "it open for as long as the client is used, or pass no session and let "
                "'async with OrchestratorClient(settings) as orch:' open and close its own"
            )
        else:
            message = (
                "the OrchestratorClient is not open: use it inside "
                "'async with OrchestratorClient(settings) as orch:' (it was called before "
                "that block was entered or after it was left, or it was closed while the "
                "call was still running)"
            )
        super().__init__(message)


class InvalidRequestError(UsageError):
    """A request async-orch refuses to send because the server would reject it
    (a batch with one refuses all of it, before anything starts)."""


class NotStartedError(RequestError):
    """A request of a batch was not started: the batch timeout passed while it
    waited for its turn. Nothing was sent for it; raise the timeout, or the
    ``max_in_flight`` / ``per_folder`` limits."""


class ReferenceInUseError(NotStartedError):
    """A request was not started because its Reference already names a job older
    than the batch (or of another process). A Reference must identify one job: a
    start whose answer is lost is found again by it, and that job is not this
    request's. Nothing was posted for the request; give it a new Reference.

    Attributes:
        reference: the request's Reference.
        folder: the folder the request went to.
        job_id: the older job that has the Reference.
        created: that job's CreationTime (ISO 8601, the server's clock), if known.
    """

    def __init__(
        self, *, reference: str, folder: str, job_id: int, created: str | None, why: str
    ) -> None:
        self.reference = reference
        self.folder = folder
        self.job_id = job_id
        self.created = created
        super().__init__(
            f"Reference {reference!r} already names job {job_id} in folder {folder!r} "
            f"({why}); References must identify one job, so this request was not "
            "started: give it a new reference"
        )


class UncertainStartError(RequestError):
    """A StartJobs got no clear answer and looking its Reference up failed, so its
    jobs may or may not exist. It was not posted again: a duplicate job is worse
    than a reported doubt. Look the Reference up in Orchestrator before starting
    that work again.

    Attributes:
        reference: the request's Reference (what to look for).
        folder: the folder the request went to.
        start_error: the ambiguous StartJobs failure.
        lookup_error: the lookup that failed.
    """

    def __init__(
        self,
        *,
        reference: str,
        folder: str,
        start_error: OrchestratorError,
        lookup_error: OrchestratorError,
    ) -> None:
        self.reference = reference
        self.folder = folder
        self.start_error = start_error
        self.lookup_error = lookup_error
        super().__init__(
            f"StartJobs with Reference {reference!r} in folder {folder!r} may or may not "
            f"have started jobs: it got no clear answer ({start_error}) and looking that "
            f"Reference up failed ({lookup_error}). It was not posted again; look for "
            "that Reference in Orchestrator before starting it again"
        )


class AuthenticationError(RequestError):
    """Credentials were refused, or a fresh token was still refused.

    Attributes:
        status: HTTP status from the server, if any.
        server_message: what the server said, quoted (never contains secrets).
        hint: the likely fix, in one sentence.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        server_message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.status = status
        self.server_message = server_message
        self.hint = hint
        text = message
        if server_message:
            text += f" (server said: {server_message})"
        if hint:
            text += f". {hint}"
        super().__init__(text)


_SHOWN_CANDIDATES = 10


class NotFoundByNameError(RequestError):
    """A name given by the user does not match anything the credentials can see.

    Attributes:
        name: what was asked for.
        candidates: the names available, the closest first, to help fix a typo.
    """

    def __init__(self, message: str, *, name: str, candidates: list[str] | None = None) -> None:
        self.name = name
        self.candidates = list(candidates or [])
        if self.candidates:
            more = len(self.candidates) - _SHOWN_CANDIDATES
            message += f"; available: {', '.join(self.candidates[:_SHOWN_CANDIDATES])}"
            message += f" and {more} more" if more > 0 else ""
        super().__init__(message)


class FolderNotFoundError(NotFoundByNameError):
    """No folder with that path, key or id is visible to these credentials."""


class ProcessNotFoundError(NotFoundByNameError):
    """No process (release) with that name or key exists in the folder."""


class TransportError(RequestError):
    """No usable response arrived (connection refused or reset, DNS failure, timeout).

    Attributes:
        method: the request's HTTP method.
        url: the request's URL.
        may_have_reached_server: False only when the request certainly never left
            (for example, the connection was refused). When True a POST may
            have taken effect.
        hint: the likely fix, in one sentence, when it is known.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        may_have_reached_server: bool = True,
        hint: str | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.may_have_reached_server = may_have_reached_server
        self.hint = hint
        super().__init__(f"{message} ({method} {url})" + (f". {hint}" if hint else ""))


class RequestTimeoutError(TransportError):
    """The server did not answer in time."""


class APIError(RequestError):
    """Orchestrator answered with an error status.

    Attributes:
        status: HTTP status.
        method: the request's HTTP method.
        url: the request's URL.
        error_code: Orchestrator's ``errorCode`` (e.g. 1101), if any.
        message: the server's ``message``.
        trace_id: the server's ``traceId`` (quote it to UiPath support).
        body: the response body, truncated to 2,000 characters.
        retry_after: seconds the server asked us to wait (Retry-After), if it said;
            set on 429 and on some 503s.
    """

    def __init__(
        self,
        *,
        status: int,
        method: str,
        url: str,
        message: str,
        error_code: int | str | None = None,
        trace_id: str | None = None,
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        self.status = status
        self.method = method
        self.url = url
        self.message = message
        self.error_code = error_code
        self.trace_id = trace_id
        self.body = body[:2000]
        code = f", errorCode {error_code}" if error_code is not None else ""
        super().__init__(f"{method} {url} -> HTTP {status}{code}: {message}")


class BadRequestError(APIError):
    """400/422: the request is invalid (missing folder header, bad OData, ...)."""


class UnauthorizedError(APIError):
    """401: the token was missing, expired, revoked or for another tenant."""


class PermissionDeniedError(APIError):
    """403: the token lacks a scope or the user a permission."""


#: What refuses the calls about one folder's jobs: its access lost (errorCode 1100,
#: a FolderNotFoundError naming it) or a permission in it taken away (403).
FOLDER_REFUSALS = (FolderNotFoundError, PermissionDeniedError)


class NotFoundError(APIError):
    """404: no such job, folder or route."""


class ConflictError(APIError):
    """409: the resource is in a state that forbids the operation."""


class RateLimitedError(APIError):
    """429: the tenant's rate limit was hit; see ``retry_after``."""


class ServerError(APIError):
    """5xx: Orchestrator (or a proxy in front of it) failed."""


class ResponseDecodeError(RequestError):
    """A successful response whose body is not what the API documents."""


class BlobTooLargeError(ResponseDecodeError):
    """An attachment's content longer than the caller's cap (nothing past the cap was read)."""


class StartAnswerUnreadableError(ResponseDecodeError):
    """StartJobs answered with a success status, so its jobs exist, but the answer
    could not be read (not JSON, a job without a usable Id, State or CreationTime, or
    no job listed for a strategy other than All).
    A batch takes it as an ambiguous start: it looks the jobs up by Reference."""


class OutputsUnavailableError(RequestError):
    """A job ended with its outputs in an attachment (OutputFile) that could not be
    read; the job's own outcome stands, its outputs are unknown (never a silent None).

    Attributes:
        job_id: the job.
        output_file: its OutputFile attachment key.
    """

    def __init__(self, message: str, *, job_id: int, output_file: str) -> None:
        self.job_id = job_id
        self.output_file = output_file
        super().__init__(message)


class JobLostError(RequestError):
    """A job the client knew of that the server no longer has as it was.

    Reported per job (a result's ``error``), never raised out of a batch: the
    server answers 404 for it, its id now names another job (another Key,
    Reference or folder: a server that restarted and forgot its jobs hands its
    ids out again), reads by id keep answering another job's record, or the
    server gave its id to two jobs of one batch.

    Attributes:
        job_id: the job's id.
        reference: its Reference, to look for it by hand.
    """

    def __init__(self, message: str, *, job_id: int, reference: str | None) -> None:
        self.job_id = job_id
        self.reference = reference
        super().__init__(message)


class StuckPendingError(RequestError):
    """A job that stayed Pending longer than ``pending_timeout``: no robot took it.

    Reported per job (a result's ``error``, outcome ``stuck_pending``). Orchestrator
    never gives up on such a job by itself: with no free runtime, licence or
    connected machine it waits (orchestrator-api.md section 8).

    Attributes:
        job_id: the job's id.
        folder: the folder's path.
        seconds: how long it had been Pending (since async-orch saw it created).
        stopped: whether async-orch stopped it (the stop policy).
    """

    def __init__(self, *, job_id: int, folder: str, seconds: float, stopped: bool) -> None:
        self.job_id = job_id
        self.folder = folder
        self.seconds = seconds
        self.stopped = stopped
        minutes = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
        super().__init__(
            f"job {job_id} stayed Pending for {minutes} in folder {folder!r}: no robot "
            "picked it up (no free runtime or licence, or its machines are offline); "
            + ("it was stopped. " if stopped else "it is still Pending. ")
            + "Check the folder's machines, runtimes and licences; 'async-orch check "
            "--folder ... --process ...' validates a start without starting anything."
        )
