"""async-orch: dispatch many UiPath Orchestrator jobs at once from asyncio.

The documented entry points are re-exported here; see README.md.
"""

from __future__ import annotations

from async_orch.batch import Abandoned, JobHandle, JobRequest, JobResult, Outcome, Progress, Summary
from async_orch.client import OrchestratorClient
from async_orch.config import (
    ClientCredentials,
    PasswordCredentials,
    RefreshTokenCredentials,
    RetryPolicy,
    Settings,
    StaticToken,
)
from async_orch.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
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
    RequestError,
    RequestTimeoutError,
    ResponseDecodeError,
    ServerError,
    StuckPendingError,
    TransportError,
    UnauthorizedError,
    UncertainStartError,
    UsageError,
)
from async_orch.limits import DispatchLimits
from async_orch.models import Folder, Job, JobPriority, Release, StartStrategy
from async_orch.options import (
    AbandonedCallback,
    Hooks,
    ProgressCallback,
    StartedCallback,
    StateCallback,
    StopPolicy,
)
from async_orch.planner import PollPolicy
from async_orch.starting import Started, StartFailure
from async_orch.states import TERMINAL_STATES, JobState
from async_orch.transport import TransportStats
from async_orch.version import __version__

__all__ = [
    "TERMINAL_STATES",
    "APIError",
    "Abandoned",
    "AbandonedCallback",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ClientCredentials",
    "ConfigurationError",
    "ConflictError",
    "DispatchLimits",
    "Folder",
    "FolderNotFoundError",
    "Hooks",
    "InvalidRequestError",
    "Job",
    "JobHandle",
    "JobLostError",
    "JobPriority",
    "JobRequest",
    "JobResult",
    "JobState",
    "NotFoundByNameError",
    "NotFoundError",
    "NotStartedError",
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
    "RefreshTokenCredentials",
    "Release",
    "RequestError",
    "RequestTimeoutError",
    "ResponseDecodeError",
    "RetryPolicy",
    "ServerError",
    "Settings",
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
    "TransportStats",
    "UnauthorizedError",
    "UncertainStartError",
    "UsageError",
    "__version__",
]
