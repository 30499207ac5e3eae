"""What every command shares: connection flags, logging set-up, error handling."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import structlog

from async_orch.config import ClientCredentials, Settings
from async_orch.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    NotFoundByNameError,
    OrchestratorError,
    TransportError,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_connection_flags",
    "configure_logging",
    "connection",
    "run_command",
]

EXIT_OK = 0
EXIT_FAILED = 1  # some jobs faulted, stopped or timed out
EXIT_USAGE = 2  # usage or configuration error
EXIT_INTERRUPTED = 130


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """Flags choosing the tenant: the embedded simulator, or a URL + credentials."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--simulator",
        action="store_true",
        help="run against an embedded Orchestrator simulator (demo tenant, no credentials)",
    )
    group.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="with --simulator: simulated seconds per real second (default: the scenario's)",
    )
    group.add_argument(
        "--url",
        help="Orchestrator URL, e.g. https://cloud.uipath.com/ORG/TENANT/orchestrator_ "
        "(default: $UIPATH_URL)",
    )
    group.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")


def configure_logging(verbosity: int) -> None:
    """Quiet by default (warnings only); key=value lines on stderr."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


@asynccontextmanager
async def connection(args: argparse.Namespace) -> AsyncIterator[Settings]:
    """Settings for this run: an embedded simulator's, or from flags and environment."""
    if args.simulator:
        from async_orch.simulator import run_simulator

        async with run_simulator(time_scale=args.time_scale) as sim:
            yield Settings(
                url=sim.url,
                credentials=ClientCredentials(
                    client_id=sim.client_id, client_secret=sim.client_secret
                ),
            )
        return
    overrides = {"url": args.url} if args.url else {}
    yield Settings.from_env(dict(os.environ), **overrides)


def _first_error(exc: BaseException) -> BaseException:
    """The error inside task-group wrappers, so users see it, not the wrapping."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def run_command(main: Callable[[], Awaitable[int]]) -> int:
    """Run an async command: one clear line and exit code 2 for bad input, 130 on Ctrl-C."""
    try:
        try:
            return anyio.run(main)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigurationError, InvalidRequestError, NotFoundByNameError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AuthenticationError as exc:
        print(f"authentication failed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TransportError as exc:
        print(f"cannot reach Orchestrator: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
