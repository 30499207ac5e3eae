"""async-orch: dispatch many UiPath Orchestrator jobs at once from asyncio.

The documented entry points are re-exported here; see README.md.
"""

from __future__ import annotations

from async_orch._client import OrchestratorClient
from async_orch._config import (
    ClientCredentials,
    PasswordCredentials,
    RefreshTokenCredentials,
    RequestTimeouts,
    RetryPolicy,
    Settings,
    StaticToken,
)
from async_orch._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    BlobTooLargeError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    FolderNotFoundError,
    InvalidRequestError,
    JobLostError,
    NotFoundByNameError,
    NotFoundError,
    NotStartedError,
    OrchestratorError,
    OutputsUnavailableError,
    PermissionDeniedError,
    ProcessNotFoundError,
    RateLimitedError,
    ReferenceInUseError,
    RequestError,
    RequestTimeoutError,
    ResponseDecodeError,
    ServerError,
    StartAnswerUnreadableError,
    StuckPendingError,
    TransportError,
    UnauthorizedError,
    UncertainStartError,
    UsageError,
)
from async_orch._job_store import JobStore
from async_orch._jobs import Abandoned, JobHandle, JobRequest, JobResult, Outcome, Progress, Summary
from async_orch._journal import (
    JobRecord,
    JournalDamagedError,
    JournalError,
    JournalTarget,
    JournalWriteError,
    RequestRecord,
    TwoJobsForOneRequestError,
)
from async_orch._journal_lock import JournalInUseError
from async_orch._limits import DispatchLimits
from async_orch._models import Folder, Job, JobPriority, Release, StartStrategy
from async_orch._options import (
    AbandonedCallback,
    Hooks,
    ProgressCallback,
    StartedCallback,
    StateCallback,
    StopPolicy,
)
from async_orch._planner import PollPolicy
from async_orch._redis_budget import RedisListBudget
from async_orch._resources import OrchestratorAPI
from async_orch._sessions import session_for
from async_orch._shared_budget import InProcessListBudget, SharedListBudget
from async_orch._starting import Started, StartFailure
from async_orch._states import TERMINAL_STATES, JobState
from async_orch._transport import TransportStats
from async_orch._transport_hooks import (
    RequestSent,
    ResponseReceived,
    RetryScheduled,
    TransportHealth,
    TransportHooks,
)
from async_orch._validation import Validation, ValidationProblem
from async_orch._version import __version__
from async_orch._webhooks import WebhookReceiver

__all__ = [
    "TERMINAL_STATES",
    "APIError",
    "Abandoned",
    "AbandonedCallback",
    "AuthenticationError",
    "BadRequestError",
    "BlobTooLargeError",
    "ClientClosedError",
    "ClientCredentials",
    "ConfigurationError",
    "ConflictError",
    "DispatchLimits",
    "Folder",
    "FolderNotFoundError",
    "Hooks",
    "InProcessListBudget",
    "InvalidRequestError",
    "Job",
    "JobHandle",
    "JobLostError",
    "JobPriority",
    "JobRecord",
    "JobRequest",
    "JobResult",
    "JobState",
    "JobStore",
    "JournalDamagedError",
    "JournalError",
    "JournalInUseError",
    "JournalTarget",
    "JournalWriteError",
    "NotFoundByNameError",
    "NotFoundError",
    "NotStartedError",
    "OrchestratorAPI",
    "OrchestratorClient",
    "OrchestratorError",
    "Outcome",
    "OutputsUnavailableError",
    "PasswordCredentials",
    "PermissionDeniedError",
    "PollPolicy",
    "ProcessNotFoundError",
    "Progress",
    "ProgressCallback",
    "RateLimitedError",
    "RedisListBudget",
    "ReferenceInUseError",
    "RefreshTokenCredentials",
    "Release",
    "RequestError",
    "RequestRecord",
    "RequestSent",
    "RequestTimeoutError",
    "RequestTimeouts",
    "ResponseDecodeError",
    "ResponseReceived",
    "RetryPolicy",
    "RetryScheduled",
    "ServerError",
    "Settings",
    "SharedListBudget",
    "StartAnswerUnreadableError",
    "StartFailure",
    "StartStrategy",
    "Started",
    "StartedCallback",
    "StateCallback",
    "StaticToken",
    "StopPolicy",
    "StuckPendingError",
    "Summary",
    "TransportError",
    "TransportHealth",
    "TransportHooks",
    "TransportStats",
    "TwoJobsForOneRequestError",
    "UnauthorizedError",
    "UncertainStartError",
    "UsageError",
    "Validation",
    "ValidationProblem",
    "WebhookReceiver",
    "__version__",
    "session_for",
]

# Public errors show as async_orch.AuthenticationError (tracebacks, reprs, pickles),
# where users import them from, not as the private module that defines them.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) and issubclass(_value, BaseException):
        _value.__module__ = __name__
del _name, _value
