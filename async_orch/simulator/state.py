"""The simulator's memory across restarts: a SQLite file (``--state FILE``).

A real Orchestrator keeps its jobs, ids and References in a database, so a
restart forgets nothing. The simulator keeps the same promise with a command
log: every StartJobs and StopJobs the engine accepts is written (and committed)
before it is applied and answered, and a restart replays the log into fresh
engines (:meth:`JobEngine.replay`). Since the engine draws every random value
from its seeded RNG and takes time as an argument, the replay gives back the
same jobs, ids, Keys, References and states. One INSERT per StartJobs call keeps
the event loop's pause to a commit (about a millisecond on a local disk).

Also kept: the scenario's fingerprint (a state file only replays into the
scenario that wrote it), each tenant's first job id, and the simulated clock,
so simulated time goes on from where the last run's would be now (jobs go on
running while the server is down, as robots do).

Not kept (assumption): access tokens. Clients get 401 for a token issued before
the restart and request a new one, as after any revocation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from async_orch._errors import ConfigurationError
from async_orch.simulator.scenario import Scenario

__all__ = ["StateFile", "scenario_fingerprint"]

_FORMAT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    command TEXT NOT NULL
);
"""


def scenario_fingerprint(scenario: Scenario) -> str:
    """What a replay depends on: seed, timings, tenants (not faults, not time scale)."""
    text = repr((scenario.seed, scenario.timings, scenario.tenants))
    return hashlib.sha256(text.encode()).hexdigest()


class StateFile:
    """One simulator's state file; see the module docstring.

    Raises:
        ConfigurationError: the file cannot be opened, is not a state file, or
            was written for another scenario.
    """

    def __init__(self, path: str | Path, scenario: Scenario) -> None:
        self.path = Path(path)
        fingerprint = scenario_fingerprint(scenario)
        _refuse_foreign(self.path)
        self._lock_fd = _lock_exclusively(self.path)
        try:
            self._db = _open_private(self.path)
            with self._db:
                self._db.executescript(_SCHEMA)
            self.meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except (sqlite3.Error, OSError) as exc:
            os.close(self._lock_fd)
            raise ConfigurationError(
                f"cannot use {self.path} as a simulator state file: {exc}; "
                "give a new file name or the file an earlier run wrote"
            ) from None
        self.fresh = not self.meta
        if self.fresh:
            self.set_meta(format=str(_FORMAT), fingerprint=fingerprint, scenario=scenario.name)
        elif self.meta.get("format") != str(_FORMAT) or self.meta.get("fingerprint") != fingerprint:
            self.close()
            raise ConfigurationError(
                f"{self.path} holds the state of another scenario (it was written for "
                f"{self.meta.get('scenario', '?')!r} with other folders, processes, seed or "
                "timings); start with the same --scenario and --seed, or give a new state file"
            )

    def set_meta(self, **values: str) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items()
            )
        self.meta.update(values)

    def append(self, tenant: str, command: dict[str, Any]) -> None:
        """Write one command and commit it (before the command is applied)."""
        with self._db:
            self._db.execute(
                "INSERT INTO commands (tenant, command) VALUES (?, ?)",
                (tenant, json.dumps(command, separators=(",", ":"))),
            )

    def commands(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every command written so far, in order: (tenant key, command)."""
        for tenant, text in self._db.execute("SELECT tenant, command FROM commands ORDER BY seq"):
            yield tenant, json.loads(text)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)  # releases the lock


def _refuse_foreign(path: Path) -> None:
    """Refuse, before writing anything to it, a SQLite file that is not a state file
    (a dispatch journal, say): its tables are not ours."""
    try:
        if not path.exists() or path.stat().st_size == 0:
            return
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except (sqlite3.Error, OSError):
        return  # not SQLite at all: opening it says so
    if tables and not {"meta", "commands"} <= tables:
        raise ConfigurationError(
            f"{path} is not a simulator state file (it holds the tables "
            f"{', '.join(sorted(tables)[:4])}); give a new file name for --state"
        )


def _lock_exclusively(path: Path) -> int:
    """An exclusive lock on the state file for this simulator's lifetime: two
    simulators on one file would hand out the same job ids."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot use {path} as a simulator state file: {exc.strerror}; "
            "give a new file name or the file an earlier run wrote"
        ) from None
    if sys.platform == "win32":
        return fd  # no advisory locks there: one simulator per file is up to the user
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigurationError(
            f"the state file {path} is in use by another simulator; stop it first, or "
            "give this one another --state file"
        ) from None
    return fd


def _open_private(path: Path) -> sqlite3.Connection:
    """Open (creating it 0600) a SQLite file: it holds job inputs and References."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    db = sqlite3.connect(path, isolation_level="DEFERRED")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db
