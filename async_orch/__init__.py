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
from async_orch.dispatcher import (
    AbandonedCallback,
    DispatchLimits,
    ProgressCallback,
    StartedCallback,
    StateCallback,
)
from async_orch.errors import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    FolderNotFoundError,
    InvalidRequestError,
    JobLostError,
    OrchestratorError,
    ProcessNotFoundError,
    RateLimitedError,
    StuckPendingError,
    TransportError,
    UncertainStartError,
)
from async_orch.models import Folder, Job, Release
from async_orch.planner import PollPolicy
from async_orch.starting import Started, StartFailure
from async_orch.states import TERMINAL_STATES, JobState
from async_orch.transport import TransportStats

__version__ = "0.1.0"

__all__ = [
    "TERMINAL_STATES",
    "APIError",
    "Abandoned",
    "AbandonedCallback",
    "AuthenticationError",
    "ClientClosedError",
    "ClientCredentials",
    "ConfigurationError",
    "DispatchLimits",
    "Folder",
    "FolderNotFoundError",
    "InvalidRequestError",
    "Job",
    "JobHandle",
    "JobLostError",
    "JobRequest",
    "JobResult",
    "JobState",
    "OrchestratorClient",
    "OrchestratorError",
    "Outcome",
    "PasswordCredentials",
    "PollPolicy",
    "ProcessNotFoundError",
    "Progress",
    "ProgressCallback",
    "RateLimitedError",
    "RefreshTokenCredentials",
    "Release",
    "RetryPolicy",
    "Settings",
    "StartFailure",
    "Started",
    "StartedCallback",
    "StateCallback",
    "StaticToken",
    "StuckPendingError",
    "Summary",
    "TransportError",
    "TransportStats",
    "UncertainStartError",
    "__version__",
]
