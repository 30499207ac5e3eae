"""The `async-orch` command line: one module per command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from async_orch import __version__
from async_orch._cli import check_cmd, dispatch_cmd, jobs_cmd, loadtest_cmd, simulator_cmd
from async_orch._cli.common import CliParser

__all__ = ["main"]

# Command name -> run(args) -> exit code. Each command module also exposes
# add_parser(subparsers), called by build_parser() in this order.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "dispatch": dispatch_cmd.run,
    "check": check_cmd.run,
    "jobs": jobs_cmd.run_jobs,
    "stop": jobs_cmd.run_stop,
    "loadtest": loadtest_cmd.run,
    "simulator": simulator_cmd.run,
}
_PARSERS = (
    dispatch_cmd.add_parser,
    check_cmd.add_parser,
    jobs_cmd.add_jobs_parser,
    jobs_cmd.add_stop_parser,
    loadtest_cmd.add_parser,
    simulator_cmd.add_parser,
)


def build_parser() -> CliParser:
    parser = CliParser(
        prog="async-orch",
        description="Dispatch many UiPath Orchestrator jobs at once, watch them, gather outputs.",
    )
    parser.add_argument("--version", action="version", version=f"async-orch {__version__}")
    # CliParser for every command too: an error is one line, not the usage first.
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=CliParser
    )
    for add_parser in _PARSERS:
        add_parser(subparsers)
    return parser


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser | None = action.choices.get(name)
            return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = _subparser(parser, args.command) if args.command else None
        refusing = command if isinstance(command, CliParser) else parser
        if isinstance(command, CliParser):
            # Only --version and --help go before the command; `async-orch -vv dispatch`
            # is a command's flag in the wrong place, not an unknown one.
            before = argv[: argv.index(args.command)]
            misplaced = [a for a in extra if a in before]
            flags = [a for a in misplaced if a.startswith("-")]
            if flags and all(command.takes(a) for a in flags):
                command.refuse_misplaced(misplaced)
        refusing.refuse_unknown(extra)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return COMMANDS[args.command](args)
