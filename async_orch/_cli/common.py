"""What every command shares: connection flags, logging set-up, error handling."""

from __future__ import annotations

import argparse
import difflib
import logging
import math
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import structlog

from async_orch._cli.output import silence_closed_pipe
from async_orch._cli.profiles import chosen_profile, default_config_path, merge_environment
from async_orch._cli.textfile import read_utf8
from async_orch._config import ClientCredentials, Settings
from async_orch._errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    NotFoundByNameError,
    OrchestratorError,
    TransportError,
)

if TYPE_CHECKING:
    from async_orch.simulator import SimulatorHandle

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliParser",
    "add_connection_flags",
    "configure_logging",
    "connection",
    "exit_codes",
    "first_error",
    "list_budget",
    "load_settings",
    "non_negative",
    "positive",
    "positive_int",
    "refuse_simulator_with_target",
    "run_command",
]

EXIT_OK = 0
EXIT_FAILED = 1  # some jobs faulted, stopped or timed out
EXIT_USAGE = 2  # usage or configuration error
EXIT_INTERRUPTED = 130


def exit_codes(
    *lines: str,
    two: str = "usage or configuration error (one line on stderr, nothing done)",
    interrupted: bool = True,
) -> str:
    """An epilog's "exit codes:" block: the command's own lines, then 2 and (unless
    Ctrl-C is a normal stop for the command) 130."""
    last = ("130  interrupted (Ctrl-C)",) if interrupted else ()
    return "exit codes:\n" + "".join(f"  {line}\n" for line in (*lines, f"2    {two}", *last))


# -- argparse types: a bad number is a usage error before anything starts ---------------


def positive(text: str) -> float:
    """A number > 0 (seconds, a rate): a negative or NaN timeout would start jobs
    only to abandon them at once."""
    return _number(text, allow_zero=False)


def non_negative(text: str) -> float:
    """A number >= 0 (a grace period, a wait, a budget where 0 means none)."""
    return _number(text, allow_zero=True)


#: The tenant's limit on GET Jobs list calls a minute, non-automation (orchestrator-api.md §4).
TENANT_LIST_LIMIT = 100


def list_budget(text: str) -> float:
    """List calls a minute: 0 (none: jobs read by id) or 1 to the tenant's limit."""
    value = _number(text, allow_zero=True)
    if 0 < value < 1 or value > TENANT_LIST_LIMIT:
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} is outside 1..{TENANT_LIST_LIMIT}: the tenant allows "
            f"{TENANT_LIST_LIMIT} list calls a minute, shared with every other client "
            "(0 turns list calls off)"
        )
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:  # not a number, or over Python's 4,300-digit conversion limit
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a whole number of at least 1")
    return value


def _number(text: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 <= value < math.inf) or (value == 0 and not allow_zero):
        least = "0 or more" if allow_zero else "more than 0"
        # "finite": 1e400, inf and nan are floats to Python, not to a timer.
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} is not a finite number {least} (write it like 30 or 2.5)"
        )
    return value


def _shown(text: str) -> str:
    """A flag's value quoted for a message, cut short (a 5,000-digit number stays readable)."""
    return repr(text) if len(text) <= 40 else repr(text[:37]) + f"... ({len(text):,} characters)"


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: what is wrong and where to look.

    argparse's own prints the whole usage first (a dozen lines for ``dispatch``),
    burying the one that says what to fix. No abbreviations: ``--proces`` is a typo
    to point out, not ``--process`` to guess (and a later flag could make it ambiguous).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def takes(self, argument: str) -> bool:
        """Whether ``argument`` is one of this parser's options (``-vv``: ``-v`` twice)."""
        options = {o for action in self._actions for o in action.option_strings}
        name = argument.split("=", 1)[0]
        if name in options:
            return True
        letters = name[1:]
        return bool(
            name.startswith("-") and letters.isalpha() and all(f"-{c}" in options for c in letters)
        )

    def refuse_misplaced(self, flags: Sequence[str]) -> NoReturn:
        """This command's options given before its name, where only --version and
        --help go: say where they go instead."""
        shown = " ".join(flags)
        verb = "goes" if len([f for f in flags if f.startswith("-")]) == 1 else "go"
        self.exit(
            EXIT_USAGE,
            f"{self.prog}: error: {shown} {verb} after the command: {self.prog} {shown} ... "
            f"(see {self.prog} --help)\n",
        )

    def refuse_unknown(self, extra: Sequence[str]) -> NoReturn:
        """Arguments this command does not take: the closest option as a hint, and
        the command's usage in one line."""
        first = next((a for a in extra if a.startswith("-")), extra[0]).split("=", 1)[0]
        options = [o for action in self._actions for o in action.option_strings]
        close = difflib.get_close_matches(first, options, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        usage = " ".join(self.format_usage().split())
        self.exit(
            EXIT_USAGE,
            f"{self.prog}: error: unrecognized arguments: {' '.join(extra)}{hint} "
            f"(see {self.prog} --help)\n{usage}\n",
        )


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
        type=positive,
        default=None,
        help="with --simulator: simulated seconds per real second (default: the scenario's)",
    )
    group.add_argument(
        "--scenario",
        default=None,
        metavar="NAME_OR_FILE",
        help="with --simulator: a built-in scenario (demo, realistic) or a TOML file "
        "(default: demo)",
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
    args: argparse.Namespace,
    *,
    default_url: str | None = None,
    on_simulator: Callable[[SimulatorHandle], None] | None = None,
) -> AsyncIterator[Settings]:
    """Settings for this run: an embedded simulator's, or from flags, environment and
    profile (``default_url`` when none of them names a URL). ``on_simulator`` is given
    the embedded simulator, when there is one, before the settings are."""
    if args.simulator:
        refuse_simulator_with_target(args, os.environ)
        from async_orch.simulator import run_simulator

        async with run_simulator(args.scenario, time_scale=args.time_scale) as sim:
            if on_simulator is not None:
                on_simulator(sim)
            yield Settings(
                url=sim.url,
                credentials=ClientCredentials(
                    client_id=sim.client_id, client_secret=sim.client_secret
                ),
            )
        return
    yield load_settings(args, environ=os.environ, default_url=default_url)


def refuse_simulator_with_target(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """--simulator is its own Orchestrator: naming another one too is a mistake to say,
    not to settle silently (one of them would be ignored)."""
    named = [
        what
        for what, given in (
            ("--url", args.url),
            ("UIPATH_URL", environ.get("UIPATH_URL", "").strip()),
            ("--profile", args.profile),
            ("ASYNC_ORCH_PROFILE", environ.get("ASYNC_ORCH_PROFILE", "").strip()),
        )
        if given
    ]
    if named:
        listed = " and ".join(named)
        verb = "names" if len(named) == 1 else "name"
        raise ConfigurationError(
            f"--simulator runs its own Orchestrator, but {listed} {verb} another: "
            f"leave out --simulator to use that one, or drop (unset) {listed} to use the "
            "simulator"
        )


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
        # Parsed even when no profile is asked for: a broken file is an error, not ignored.
        profile = chosen_profile(
            read_utf8(path, "config file"), explicit, environ=environ, where=f"config file {path}"
        )
    elif explicit:
        raise ConfigurationError(
            f"config file {path} not found (needed for --profile {explicit}); "
            "create it with a [profiles.NAME] table, or pass --config PATH"
        )
    elif args.config is not None:
        raise ConfigurationError(f"config file {path} (--config) not found; check the path")
    elif environ.get("ASYNC_ORCH_CONFIG"):
        raise ConfigurationError(
            f"config file {path} (ASYNC_ORCH_CONFIG) not found; check the path, or unset "
            "ASYNC_ORCH_CONFIG"
        )
    merged = merge_environment(environ, profile, profile_wins=explicit is not None)
    url = args.url or None
    if url is None and default_url is not None and not merged.get("UIPATH_URL", "").strip():
        url = default_url
    return Settings.from_env(merged, url=url)


def first_error(exc: BaseException) -> BaseException:
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
            raise first_error(group) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`| head`) while something other than the
        # rows was written (emit_rows handles its own): not worth a traceback.
        silence_closed_pipe(sys.stdout)
        return EXIT_FAILED
    except (ConfigurationError, InvalidRequestError, NotFoundByNameError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AuthenticationError as exc:
        print(f"authentication failed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TransportError as exc:
        # An error that names its own fix (exc.hint) is printed as the library says it.
        hint = (
            ""
            if exc.hint
            else ". Check the URL (--url, UIPATH_URL or the profile's url), your network "
            "and any proxy (HTTPS_PROXY)"
        )
        print(f"cannot reach Orchestrator: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.Error as exc:
        print(f"error: journal: {exc}", file=sys.stderr)
        return EXIT_USAGE
