"""Loggers for the library: structlog events, quiet until the application asks.

structlog prints every event at every level when nobody configured it, which
would make a library chatty by default. So, until the application configures
structlog (``structlog.configure``, or the CLI's ``-v``), only warnings and
errors get through; once it has, every event goes to its configuration and
the application's own filtering decides.
"""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["get_logger"]

_QUIET_BELOW = 30  # warning


class _LibraryLogger:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def debug(self, event: str, **values: Any) -> None:
        self._emit(10, "debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        self._emit(20, "info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        self._emit(30, "warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        self._emit(40, "error", event, values)

    def _emit(self, level: int, method: str, event: str, values: dict[str, Any]) -> None:
        if level < _QUIET_BELOW and not structlog.is_configured():
            return
        getattr(structlog.get_logger(self._name), method)(event, **values)


def get_logger(name: str) -> _LibraryLogger:
    """A logger named ``name`` (``async_orch.<module>``); see the module docstring."""
    return _LibraryLogger(name)
