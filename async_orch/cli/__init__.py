"""The `async-orch` command line: one module per command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from async_orch import __version__

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="async-orch",
        description="Dispatch many UiPath Orchestrator jobs at once, watch them, gather outputs.",
    )
    parser.add_argument("--version", action="version", version=f"async-orch {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 2
