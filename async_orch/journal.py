"""A SQLite journal of one dispatch, so a crashed or interrupted run can resume.

Theory of operation:

* Before anything is started, every request is written with its **Reference**,
  fixed in advance (the user's, or ``ao-<batch>-<index>``). That is what makes a
  resume safe: a StartJobs whose answer was lost (the process died between the
  server creating the job and the journal recording it) is found again by
  Reference instead of being posted twice.
* Each job id is written as soon as the job is known to exist (the dispatcher's
  ``on_started`` callback runs before any other await), then its state changes
  and finally its outcome and outputs. Every write is its own small transaction,
  committed at once.
* The journal names the tenant it was written for (Orchestrator base URL,
  organization, tenant), so it is never resumed against another one.
* One process writes a journal at a time: :meth:`Journal.create` and
  :meth:`Journal.open` take its :class:`~async_orch.journal_lock.JournalLock`
  (released by :meth:`Journal.close`, or by the kernel when the process dies),
  so two resumes of one journal can never both start a request. A journal
  opened ``read_only`` takes no lock and refuses to write.

Durability: WAL mode with ``synchronous=NORMAL`` keeps every committed write
across a crash of the process (SIGKILL included); only a power loss may drop
the last few, which a resume then reconciles by Reference like any lost answer.
A write costs tens of microseconds (no fsync per commit), so the journal is
called directly from the event loop's callbacks.

:func:`plan_resume` (pure) sorts a journal's contents into what is final, what
to re-attach to, and what must be looked up by Reference before starting.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from async_orch.batch import JobHandle
from async_orch.errors import ConfigurationError
from async_orch.journal_lock import JournalLock

__all__ = [
    "SCHEMA_VERSION",
    "JobRecord",
    "Journal",
    "JournalTarget",
    "RequestRecord",
    "ResumePlan",
    "plan_resume",
]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE requests (
    idx INTEGER PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    folder TEXT NOT NULL,
    process TEXT NOT NULL,
    inputs TEXT,
    timeout REAL,
    outcome TEXT,          -- set only when the request started no job (not_started)
    info TEXT,
    updated TEXT NOT NULL
);
CREATE TABLE jobs (
    job_id INTEGER PRIMARY KEY,
    request_idx INTEGER NOT NULL REFERENCES requests (idx),
    handle TEXT NOT NULL,  -- JobHandle.to_dict() as JSON
    state TEXT,            -- the last state seen
    outcome TEXT,          -- set once the job is final (an Outcome value)
    result TEXT,           -- the result row (state, info, outputs, times) as JSON
    updated TEXT NOT NULL
);
CREATE INDEX jobs_by_request ON jobs (request_idx);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,    -- created, started, state, final, not_started, resumed, ...
    request_idx INTEGER,
    job_id INTEGER,
    detail TEXT
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalTarget:
    """The tenant a journal belongs to."""

    url: str  # the Orchestrator base URL
    organization: str | None
    tenant: str | None

    def same_tenant(self, other: JournalTarget) -> bool:
        """Whether ``other`` is this tenant (hosts and names compare case-insensitively)."""
        return (
            self.url.rstrip("/").casefold() == other.url.rstrip("/").casefold()
            and (self.organization or "").casefold() == (other.organization or "").casefold()
            and (self.tenant or "").casefold() == (other.tenant or "").casefold()
        )

    def describe(self) -> str:
        if self.organization or self.tenant:
            return f"{self.url} (organization {self.organization}, tenant {self.tenant})"
        return self.url


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """A request as journaled; ``outcome`` is set only if it started no job."""

    index: int
    reference: str
    folder: str
    process: str
    inputs: dict[str, Any] | None = None
    timeout: float | None = None
    outcome: str | None = None
    info: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRecord:
    """A started job as journaled."""

    job_id: int
    request_index: int
    handle: JobHandle
    state: str | None
    outcome: str | None
    result: dict[str, Any] | None

    @property
    def final(self) -> bool:
        return self.outcome is not None


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """What a resume does with each journaled request.

    Attributes:
        finished: jobs already final (reported from the journal, never touched).
        reattach: jobs started but not final: watched again, not started again.
        lookup: requests with no job recorded: looked up by Reference in their
            folder first (the process may have died right after StartJobs), and
            started only if nothing is found.
    """

    finished: list[JobRecord]
    reattach: list[JobRecord]
    lookup: list[RequestRecord]


def plan_resume(requests: Sequence[RequestRecord], jobs: Sequence[JobRecord]) -> ResumePlan:
    """Sort a journal's contents for a resume (pure)."""
    with_jobs = {j.request_index for j in jobs}
    return ResumePlan(
        finished=[j for j in jobs if j.final],
        reattach=[j for j in jobs if not j.final],
        # A request reported not_started is tried again too: "not started" is
        # certain only after its Reference has been looked up, which lookup does.
        lookup=[r for r in requests if r.index not in with_jobs],
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


class Journal:
    """One dispatch's journal file. Build it with :meth:`create` or :meth:`open`.

    Args:
        clock: the wall clock for timestamps (injected for tests).
        lock: the journal's lock, held by this process; None for a read-only
            journal, whose ``record_*`` methods then raise RuntimeError.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path,
        *,
        clock: Callable[[], datetime] = _now,
        lock: JournalLock | None = None,
    ) -> None:
        self._db = connection
        self.path = path
        self._clock = clock
        self._lock = lock
        rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        self._meta: dict[str, str] = {str(k): str(v) for k, v in rows}

    # -- opening -----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        target: JournalTarget,
        batch_id: str,
        requests: Sequence[RequestRecord],
        clock: Callable[[], datetime] = _now,
    ) -> Journal:
        """Write a new journal holding ``requests``; refuse to overwrite a file.

        Its lock is taken before the file is created and held until :meth:`close`
        (:class:`~async_orch.journal_lock.JournalInUseError` if another process
        holds it).
        """
        if path.exists():
            raise ConfigurationError(_exists_message(path))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create journal {path}: {exc}") from exc
        lock = JournalLock(path, clock=clock)
        with _take_lock(lock):
            if path.exists():  # another process created it since the check above
                raise ConfigurationError(_exists_message(path))
            try:
                db = _connect(path)
            except (OSError, sqlite3.Error) as exc:
                raise ConfigurationError(f"cannot create journal {path}: {exc}") from exc
            now = _iso(clock())
            db.executescript(f"BEGIN; {_SCHEMA} COMMIT;")
            with _transaction(db):
                meta = {
                    "schema_version": str(SCHEMA_VERSION),
                    "batch_id": batch_id,
                    "created": now,
                    "url": target.url,
                    "organization": target.organization or "",
                    "tenant": target.tenant or "",
                }
                db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                rows = [
                    (r.index, r.reference, r.folder, r.process, _dumps(r.inputs), r.timeout, now)
                    for r in requests
                ]
                db.executemany(
                    "INSERT INTO requests (idx, reference, folder, process, inputs, timeout, "
                    "updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                db.execute(
                    "INSERT INTO events (at, kind, detail) VALUES (?, 'created', ?)",
                    (now, _dumps({"requests": len(requests)})),
                )
        return cls(db, path, clock=clock, lock=lock)

    @classmethod
    def open(
        cls, path: Path, *, clock: Callable[[], datetime] = _now, read_only: bool = False
    ) -> Journal:
        """Open an existing journal to write it (a resume), or ``read_only`` to show it.

        To write, its lock is taken first and held until :meth:`close`
        (:class:`~async_orch.journal_lock.JournalInUseError` if another process
        holds it). ``read_only`` takes no lock, so a journal can be read while
        another process writes it; the ``record_*`` methods then raise.
        """
        if not path.is_file():
            raise ConfigurationError(
                f"no journal at {path} (the path is shown when dispatch starts)"
            )
        lock = None if read_only else JournalLock(path, clock=clock)
        with _take_lock(lock):
            try:
                db = _connect(path)
                version = db.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
            except sqlite3.Error as exc:
                raise ConfigurationError(f"{path} is not an async-orch journal ({exc})") from exc
            if version is None or version[0] != str(SCHEMA_VERSION):
                db.close()
                raise ConfigurationError(
                    f"{path} is a journal of schema {version[0] if version else '?'}; "
                    f"this async-orch reads schema {SCHEMA_VERSION}"
                )
        return cls(db, path, clock=clock, lock=lock)

    @property
    def read_only(self) -> bool:
        """Whether this journal was opened without its lock (and so never writes)."""
        return self._lock is None

    def close(self) -> None:
        """Close the file, then release the lock (this process wrote its last)."""
        try:
            self._db.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what it holds ------------------------------------------------------------

    @property
    def target(self) -> JournalTarget:
        return JournalTarget(
            url=self._meta["url"],
            organization=self._meta.get("organization") or None,
            tenant=self._meta.get("tenant") or None,
        )

    @property
    def batch_id(self) -> str:
        return self._meta["batch_id"]

    @property
    def created(self) -> str:
        return self._meta["created"]

    def check_target(self, target: JournalTarget) -> None:
        """Raise ConfigurationError unless ``target`` is the journal's tenant."""
        if not self.target.same_tenant(target):
            raise ConfigurationError(
                f"journal {self.path} belongs to {self.target.describe()}, but this run "
                f"connects to {target.describe()}; resume it against the same tenant "
                "(the URL comes from --url, else UIPATH_URL or the profile, else the "
                "journal: leave those out to use the journal's, or point them at its tenant)"
            )

    def requests(self) -> list[RequestRecord]:
        rows = self._db.execute(
            "SELECT idx, reference, folder, process, inputs, timeout, outcome, info "
            "FROM requests ORDER BY idx"
        ).fetchall()
        return [
            RequestRecord(
                index=idx,
                reference=reference,
                folder=folder,
                process=process,
                inputs=json.loads(inputs) if inputs is not None else None,
                timeout=timeout,
                outcome=outcome,
                info=info,
            )
            for idx, reference, folder, process, inputs, timeout, outcome, info in rows
        ]

    def jobs(self) -> list[JobRecord]:
        rows = self._db.execute(
            "SELECT job_id, request_idx, handle, state, outcome, result FROM jobs "
            "ORDER BY request_idx, job_id"
        ).fetchall()
        return [
            JobRecord(
                job_id=job_id,
                request_index=request_idx,
                handle=JobHandle.from_dict(json.loads(handle)),
                state=state,
                outcome=outcome,
                result=json.loads(result) if result is not None else None,
            )
            for job_id, request_idx, handle, state, outcome, result in rows
        ]

    def events(self) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT seq, at, kind, request_idx, job_id, detail FROM events ORDER BY seq"
        ).fetchall()
        return [
            {
                "seq": seq,
                "at": at,
                "kind": kind,
                "request": request_idx,
                "job_id": job_id,
                "detail": json.loads(detail) if detail else None,
            }
            for seq, at, kind, request_idx, job_id, detail in rows
        ]

    # -- recording, one committed transaction each ----------------------------------

    def record_started(self, request_index: int, handle: JobHandle, *, state: str | None) -> None:
        """A job exists: record its id (idempotent: a re-found job is kept once)."""
        now = _iso(self._clock())
        with self._writing():
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO jobs (job_id, request_idx, handle, state, updated) "
                "VALUES (?, ?, ?, ?, ?)",
                (handle.job_id, request_index, _dumps(handle.to_dict()), state, now),
            ).rowcount
            # The request did start after all: forget an earlier not_started.
            self._db.execute(
                "UPDATE requests SET outcome = NULL, info = NULL, updated = ? WHERE idx = ?",
                (now, request_index),
            )
            if inserted:
                self._event(now, "started", request_index, handle.job_id, {"state": state})

    def record_state(self, job_id: int, state: str) -> None:
        """A job's state changed (written only when it differs from the last one)."""
        now = _iso(self._clock())
        with self._writing():
            changed = self._db.execute(
                "UPDATE jobs SET state = ?, updated = ? "
                "WHERE job_id = ? AND outcome IS NULL AND state IS NOT ?",
                (state, now, job_id, state),
            ).rowcount
            if changed:
                self._event(now, "state", None, job_id, {"state": state})

    def record_final(
        self, job_id: int, *, outcome: str, state: str | None, result: Mapping[str, Any]
    ) -> None:
        """A job is over: its outcome and result row (outputs included)."""
        now = _iso(self._clock())
        with self._writing():
            self._db.execute(
                "UPDATE jobs SET state = coalesce(?, state), outcome = ?, result = ?, "
                "updated = ? WHERE job_id = ?",
                (state, outcome, _dumps(dict(result)), now, job_id),
            )
            self._event(now, "final", None, job_id, {"outcome": outcome, "state": state})

    def record_not_started(
        self, request_index: int, *, info: str, outcome: str = "not_started"
    ) -> None:
        """A request started no job, or may have (``outcome`` "uncertain"); for now:
        a resume looks it up by Reference and starts it only if nothing is found."""
        now = _iso(self._clock())
        with self._writing():
            self._db.execute(
                "UPDATE requests SET outcome = ?, info = ?, updated = ? WHERE idx = ?",
                (outcome, info, now, request_index),
            )
            self._event(now, "not_started", request_index, None, {"info": info})

    def record_event(self, kind: str, **detail: Any) -> None:
        """A run-level event: resumed, interrupted, finished."""
        now = _iso(self._clock())
        with self._writing():
            self._event(now, kind, None, None, detail or None)

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        """One committed write transaction; only the lock's holder writes."""
        if self._lock is None:
            raise RuntimeError(f"journal {self.path} was opened read-only")
        return _transaction(self._db)

    def _event(
        self,
        now: str,
        kind: str,
        request_index: int | None,
        job_id: int | None,
        detail: Mapping[str, Any] | None,
    ) -> None:
        self._db.execute(
            "INSERT INTO events (at, kind, request_idx, job_id, detail) VALUES (?, ?, ?, ?, ?)",
            (now, kind, request_index, job_id, _dumps(dict(detail)) if detail else None),
        )


def _exists_message(path: Path) -> str:
    return (
        f"journal {path} already exists; resume it with --resume {path}, "
        "or choose another path with --journal"
    )


@contextlib.contextmanager
def _take_lock(lock: JournalLock | None) -> Iterator[None]:
    """Take ``lock`` (if any) and keep it, unless the block fails: then give it back."""
    if lock is None:
        yield
        return
    lock.acquire()
    try:
        yield
    except BaseException:
        lock.release()
        raise


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (_transaction), one per write.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 5000")  # readers (async-orch jobs) may be looking
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
