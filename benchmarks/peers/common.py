"""What every peer shares: its arguments, its clock and the JSON line it prints.

Standard library only: each peer imports just the client it stands for.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TERMINAL_STATES", "PeerResult", "Run", "Tally", "parse_args"]

TERMINAL_STATES = frozenset({"Successful", "Faulted", "Stopped"})


def parse_args(description: str) -> argparse.Namespace:
    """The arguments every peer takes (the comparison passes all of them)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True, help="Orchestrator base URL (cloud shape)")
    parser.add_argument("--token-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--scope", default="OR.Folders.Read OR.Execution.Read OR.Jobs")
    parser.add_argument("--process", required=True)
    parser.add_argument("--folder", action="append", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--deadline", type=float, required=True, help="seconds for the run")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--workers", type=int, default=32, help="threads (threaded peers)")
    return parser.parse_args()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(slots=True)
class Tally:
    """Outcome counters, filled as jobs end (threads update it under the GIL)."""

    started: int = 0
    by_state: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def error(self, exc: BaseException) -> None:
        """Count a job the client lost track of, by the kind of error."""
        self.errors[_error_kind(exc)] += 1


def _error_kind(exc: BaseException) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is None:
        status = getattr(exc, "status_code", None)
    return f"HTTP {status}" if status else type(exc).__name__


@dataclass(slots=True)
class PeerResult:
    """The one JSON line a peer prints at the end."""

    client: str
    count: int
    started: int
    by_state: dict[str, int]
    errors: dict[str, int]
    finished: bool  # every job reached a final state before the deadline
    wall_seconds: float  # from the first request to the last result
    startup_cpu_seconds: float  # interpreter and imports, before the first request
    note: str = ""

    @property
    def done(self) -> int:
        return sum(self.by_state.values())

    def emit(self) -> None:
        data: dict[str, Any] = asdict(self)
        data["done"] = self.done
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()


#: Seconds past its deadline a peer may take to wind down before the watchdog
#: reports what it has and ends the process (a client too busy to notice its
#: deadline still gives a result).
WATCHDOG_GRACE = 15.0


class Run:
    """Clock and tally of one peer run; :meth:`finish` prints the JSON line once."""

    def __init__(self, client: str, args: argparse.Namespace) -> None:
        self.client = client
        self.args = args
        self.tally = Tally()
        self.startup_cpu = _cpu_seconds()
        self.started_at = time.monotonic()
        self.deadline_at: float = self.started_at + float(args.deadline)
        self._emitted = threading.Lock()
        watchdog = threading.Timer(args.deadline + WATCHDOG_GRACE, self._give_up)
        watchdog.daemon = True
        watchdog.start()

    def _give_up(self) -> None:
        self.finish(f"deadline; still busy {WATCHDOG_GRACE:g} s later, ended by the watchdog")
        os._exit(0)

    def finish(self, note: str = "") -> None:
        """Print the result line (only the first call does)."""
        if self._emitted.acquire(blocking=False):
            self.result(note).emit()

    def time_left(self) -> float:
        return self.deadline_at - time.monotonic()

    def folder(self, index: int) -> str:
        folders: list[str] = self.args.folder
        return folders[index % len(folders)]

    def result(self, note: str = "") -> PeerResult:
        done = sum(self.tally.by_state.values())
        return PeerResult(
            client=self.client,
            count=self.args.count,
            started=self.tally.started,
            by_state=dict(self.tally.by_state),
            errors=dict(self.tally.errors),
            finished=done == self.args.count,
            wall_seconds=round(time.monotonic() - self.started_at, 3),
            startup_cpu_seconds=round(self.startup_cpu, 3),
            note=note,
        )
