"""async-orch: dispatch many UiPath Orchestrator jobs at once from asyncio."""

from __future__ import annotations

from async_orch.errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    FolderNotFoundError,
    InvalidRequestError,
    OrchestratorError,
    ProcessNotFoundError,
    RateLimitedError,
    TransportError,
)
from async_orch.states import TERMINAL_STATES, JobState

__version__ = "0.1.0"

__all__ = [
    "TERMINAL_STATES",
    "APIError",
    "AuthenticationError",
    "ConfigurationError",
    "FolderNotFoundError",
    "InvalidRequestError",
    "JobState",
    "OrchestratorError",
    "ProcessNotFoundError",
    "RateLimitedError",
    "TransportError",
    "__version__",
]
