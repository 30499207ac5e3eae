"""What every command shares: connection flags, logging set-up, error handling."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import structlog

from async_orch.cli.profiles import default_config_path, merge_environment, profile_environment
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
    "load_settings",
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
    group.add_argument(
        "--profile",
        help="connection profile from the config file (default: $ASYNC_ORCH_PROFILE, "
        "else [profiles.default] if the file has one)",
    )
    group.add_argument(
        "--config",
        type=Path,
        help="config file with [profiles.NAME] tables (default: $ASYNC_ORCH_CONFIG, "
        "else ~/.config/async-orch/config.toml)",
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
async def connection(
    args: argparse.Namespace, *, default_url: str | None = None
) -> AsyncIterator[Settings]:
    """Settings for this run: an embedded simulator's, or from flags, environment and
    profile (``default_url`` when none of them names a URL)."""
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
    yield load_settings(args, environ=os.environ, default_url=default_url)


def load_settings(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str],
    default_url: str | None = None,
) -> Settings:
    """Settings from flags, then environment and profile (see :func:`merge_environment`).

    ``default_url`` (a journal's tenant) is used when neither ``--url`` nor any
    variable or profile gives one.
    """
    explicit = args.profile or environ.get("ASYNC_ORCH_PROFILE") or None
    path = args.config or default_config_path(environ, Path.home())
    profile: dict[str, str] = {}
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from exc
        if explicit or "[profiles.default]" in text:
            profile = profile_environment(
                text, explicit or "default", environ=environ, where=str(path)
            )
    elif explicit or args.config is not None:
        raise ConfigurationError(
            f"config file {path} not found (needed for --profile {explicit or 'default'}); "
            "create it with a [profiles.NAME] table, or pass --config PATH"
        )
    merged = merge_environment(environ, profile, profile_wins=explicit is not None)
    url = args.url or None
    if url is None and default_url is not None and not merged.get("UIPATH_URL", "").strip():
        url = default_url
    return Settings.from_env(merged, url=url)


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
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): not an error worth a traceback.
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except (ConfigurationError, InvalidRequestError, NotFoundByNameError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AuthenticationError as exc:
        print(f"authentication failed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TransportError as exc:
        print(
            f"cannot reach Orchestrator: {exc}. Check the URL (--url, UIPATH_URL or the "
            "profile's url), your network and any proxy (HTTPS_PROXY)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.Error as exc:
        print(f"error: journal: {exc}", file=sys.stderr)
        return EXIT_USAGE
