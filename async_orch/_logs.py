"""Loggers for the library: structlog events, quiet until the application asks.

Until the application configures structlog (``structlog.configure``, or the
CLI's ``-v``), nothing below warning is logged, and warnings and errors go
through the standard library instead: ``logging.getLogger("async_orch.<module>")``
at the same level, the message being the event name followed by ``key=value``
pairs. An application using ``logging`` (uvicorn, FastAPI, ...) thus gets them
in its own handlers, and one that set up no logging at all sees them on stderr
(Python's last-resort handler); nothing is ever printed to stdout. (structlog's
own default would print every event, at every level, to stdout.)

Once structlog is configured, every event goes to its configuration and the
application's own filtering decides.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

__all__ = ["get_logger"]

_QUIET_BELOW = logging.WARNING


class _LibraryLogger:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def debug(self, event: str, **values: Any) -> None:
        # Below _QUIET_BELOW: nothing unless structlog is configured (as _emit, without
        # its call: a debug event is logged at every start).
        if structlog.is_configured():
            structlog.get_logger(self._name).debug(event, **values)

    def info(self, event: str, **values: Any) -> None:
        self._emit(logging.INFO, "info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        self._emit(logging.WARNING, "warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        self._emit(logging.ERROR, "error", event, values)

    def _emit(self, level: int, method: str, event: str, values: dict[str, Any]) -> None:
        if structlog.is_configured():
            getattr(structlog.get_logger(self._name), method)(event, **values)
            return
        if level < _QUIET_BELOW:
            return
        logger = logging.getLogger(self._name)
        if logger.isEnabledFor(level):
            logger.log(level, "%s", _key_values(event, values))


def _key_values(event: str, values: dict[str, Any]) -> str:
    # repr keeps each value on one line and tells the string "3" from the number 3.
    return " ".join([event, *(f"{key}={value!r}" for key, value in values.items())])


def get_logger(name: str) -> _LibraryLogger:
    """A logger named ``name`` (``async_orch.<module>``); see the module docstring."""
    return _LibraryLogger(name)
