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
* A job is identified by its request (so its Reference), id and Key, not by
  its id alone: a server that forgot its jobs (restored from a backup, restarted
  without its state) gives their ids, even their Keys, to new jobs, and the
  journal keeps each on its own request's row. Journals of schema 1 (jobs keyed
  by id) are read as they are, and migrated in place when opened to write.
* The journal names the tenant it was written for (Orchestrator base URL,
  organization, tenant), so it is never resumed against another one.
* One process writes a journal at a time: :meth:`Journal.create` and
  :meth:`Journal.open` take its :class:`~async_orch._journal_lock.JournalLock`
  (released by :meth:`Journal.close`, or by the kernel when the process dies),
  so two resumes of one journal can never both start a request. A journal
  opened ``read_only`` takes no lock and refuses to write.
* A journal file with more than one hard link is not opened at all (see
  :func:`_refuse_other_names`): SQLite names its ``-wal`` file after the path
  it opens, so another name may not see the last writes.

Durability: WAL mode with ``synchronous=NORMAL`` keeps every committed write
across a crash of the process (SIGKILL included); only a power loss may drop
the last few, which a resume then reconciles by Reference like any lost answer.
A write costs tens of microseconds (no fsync per commit), so the journal is
called directly from the event loop's callbacks.

Failures are one typed error each, never a raw SQLite error or a KeyError:

* a write that fails (a full disk, an I/O error) raises
  :class:`JournalWriteError`, and every later write raises it again at once
  (:attr:`Journal.failure`), so the run ends and says how to resume;
* a row that is not what async-orch writes (bad JSON, a missing key, a wrong
  type, a file that is not SQLite) raises :class:`JournalDamagedError` naming
  the file, the row and what is wrong, when it is read. A write torn by a crash
  is not damage: SQLite's write-ahead log checksums every commit, and recovery
  drops a torn last commit whole, so the journal reads as of the last complete
  write (what the lost write would have said is found again by a resume: a job
  by its Reference, a state by watching). So a row that does not parse was
  changed outside async-orch, or its disk failed, and is refused, not guessed.

Privacy: a journal holds every request's inputs and every job's outputs, so
its file (and SQLite's ``-wal``/``-shm`` files, which SQLite creates with the
journal's mode) is created 0600, and each folder created for it 0700.

:func:`plan_resume` (pure) sorts a journal's contents into what is final, what
to re-attach to, and what must be looked up by Reference before starting.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from async_orch._errors import ConfigurationError, UsageError
from async_orch._jobs import JobHandle, Outcome
from async_orch._journal_lock import JournalLock
from async_orch._states import TERMINAL_STATES

__all__ = [
    "ENDED_BY_REFUSAL",
    "SCHEMA_VERSION",
    "JobRecord",
    "Journal",
    "JournalDamagedError",
    "JournalError",
    "JournalTarget",
    "JournalWriteError",
    "RequestRecord",
    "ResumePlan",
    "TwoJobsForOneRequestError",
    "make_private_dirs",
    "plan_resume",
]

SCHEMA_VERSION = 2
#: The older schema a journal opened to write is migrated from, in place (v1 keyed
#: jobs by id alone, so a server reusing ids mixed two requests' jobs up).
_MIGRATED_FROM = "1"

_T = TypeVar("_T")
_KIND_NAMES: dict[type, str] = {int: "an integer", str: "text"}

# A job is identified by its request (its Reference) and its id and Key: a server
# that forgets its jobs (restored, restarted without state) gives their ids, even
# their Keys, to new jobs, and the journal must keep both and not mix them up.
_JOBS_TABLE = """
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,
    request_idx INTEGER NOT NULL REFERENCES requests (idx),
    job_id INTEGER NOT NULL,
    job_key TEXT NOT NULL, -- the job's Key, '' if the server gave none
    handle TEXT NOT NULL,  -- JobHandle.to_dict() as JSON
    state TEXT,            -- the last state seen
    outcome TEXT,          -- set once the job is final (an Outcome value)
    result TEXT,           -- the result row (state, info, outputs, times) as JSON
    updated TEXT NOT NULL
)"""
_JOBS_INDEX = "CREATE UNIQUE INDEX jobs_identity ON jobs (request_idx, job_id, job_key)"
_JOB_IS = "request_idx = ? AND job_id = ? AND job_key = ?"

#: Outcomes a batch gives a job it leaves alive (unless it was stopped).
_LEFT_RUNNING = frozenset({Outcome.TIMED_OUT, Outcome.STUCK_PENDING, Outcome.SUSPENDED})
_FINAL_STATE_NAMES = frozenset(state.value for state in TERMINAL_STATES)
#: The key a job's result row has (true) when the batch ended it because calls about
#: it were refused (its folder's access, or a permission in it, lost mid-run), not
#: because the server said it ended: its real outcome is still to learn.
ENDED_BY_REFUSAL = "ended_by_refusal"

_SCHEMA = f"""
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
{_JOBS_TABLE};
{_JOBS_INDEX};
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,    -- created, started, state, final, not_started, resumed, ...
    request_idx INTEGER,
    job_id INTEGER,
    detail TEXT
);
"""


class JournalError(UsageError):
    """A journal that cannot be used as it is (the CLI prints it as one line, exit 2)."""


class JournalDamagedError(JournalError):
    """A journal holds something async-orch never writes (see the module docstring).

    Attributes:
        path: the journal; where: the table and row (or ``meta``, ``file``);
        what: what is wrong there.
    """

    def __init__(self, path: Path, where: str, what: str) -> None:
        self.path, self.where, self.what = path, where, what
        super().__init__(
            f"journal is damaged: {path}: {where}: {what}; it was changed outside async-orch "
            "or its disk failed: restore it from a backup if there is one, else look its "
            "batch's jobs up in Orchestrator by their References before dispatching them "
            "again, so that none is started twice"
        )


class JournalWriteError(JournalError):
    """A journal write failed (a full disk, an I/O error); the run must end.

    Attributes:
        path: the journal. ``__cause__`` is the OSError or sqlite3.Error.
    """

    def __init__(self, path: Path, cause: BaseException) -> None:
        self.path = path
        when = "once the disk has room again" if _disk_full(cause) else "once it can be written"
        super().__init__(
            f"cannot write journal {path} ({_describe(cause)}), so no more jobs are started. "
            "The jobs started so far are safe: every request's Reference was journaled "
            "before any job started, so a resume re-attaches to the jobs the journal "
            "recorded and finds by Reference any started but not recorded. "
            f"To finish, {when}: async-orch dispatch --resume {shlex.quote(str(path))}"
        )


class TwoJobsForOneRequestError(JournalError):
    """A journal shows two jobs for one request: one was started twice, so a
    resume refuses to go on rather than guess which one counts."""

    def __init__(self, path: Path | None, request: RequestRecord, job_ids: Sequence[int]) -> None:
        self.request, self.job_ids = request, list(job_ids)
        ids = ", ".join(str(i) for i in job_ids)
        shown = shlex.quote(str(path)) if path is not None else "JOURNAL"
        which = f"journal {path}" if path is not None else "the journal"
        super().__init__(
            f"{which} shows {len(job_ids)} jobs (ids {ids}) for request {request.index} "
            f"(Reference {request.reference}): it was started more than "
            "once, so the journal is not resumed. Stop the extra jobs in Orchestrator if "
            f"they must not run; see every row with: async-orch jobs --journal {shown}"
        )


def _disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return getattr(error, "sqlite_errorname", None) == "SQLITE_FULL"


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

    def check_same(self, other: JournalTarget, *, name: str) -> None:
        """Raise ConfigurationError unless ``other`` (this run's) is this tenant;
        ``name`` names the journal."""
        if not self.same_tenant(other):
            raise ConfigurationError(
                f"journal {name} belongs to {self.describe()}, but this run "
                f"connects to {other.describe()}; resume it against the same tenant "
                "(the URL comes from --url, else UIPATH_URL or the profile, else the "
                "journal: leave those out to use the journal's, or point them at its tenant)"
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
    attempts: int | None = None  # StartJobs attempts, when the run that started it knew
    stop_sent: str | None = None  # the last stop sent to it (SoftStop, Kill), if any

    @property
    def final(self) -> bool:
        return self.outcome is not None

    @property
    def refused(self) -> bool:
        """Reported ``unknown`` because calls about it were refused
        (:data:`ENDED_BY_REFUSAL`): a resume watches it again, by id."""
        return self.outcome is not None and bool((self.result or {}).get(ENDED_BY_REFUSAL))

    @property
    def left_running(self) -> bool:
        """Reported without ending (timed out, stuck Pending, suspended, or ended by a
        refusal) and not seen in a final state since: the job may still run or wait
        in the tenant."""
        return (self.outcome in _LEFT_RUNNING or self.refused) and (
            self.state is None or self.state not in _FINAL_STATE_NAMES
        )


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """What a resume does with each journaled request.

    Attributes:
        finished: jobs already final (reported from the journal, never touched).
        reattach: jobs started but not final, or ended by a refusal (their outcome
            is unknown: access may be back): watched again, not started again.
        lookup: requests with no job recorded: looked up by Reference in their
            folder first (the process may have died right after StartJobs), and
            started only if nothing is found.
    """

    finished: list[JobRecord]
    reattach: list[JobRecord]
    lookup: list[RequestRecord]


def plan_resume(
    requests: Sequence[RequestRecord], jobs: Sequence[JobRecord], *, path: Path | None = None
) -> ResumePlan:
    """Sort a journal's contents for a resume (pure).

    Raises :class:`TwoJobsForOneRequestError` (naming ``path``) if a request has
    more than one job: every journaled request starts one job, so a second one
    means it was started twice (two writers once got past the lock), and going
    on would report one of them as if it were the only one.
    """
    jobs_of: dict[int, list[int]] = {}
    for job in jobs:
        jobs_of.setdefault(job.request_index, []).append(job.job_id)
    for request in requests:
        if len(jobs_of.get(request.index, ())) > 1:
            raise TwoJobsForOneRequestError(path, request, jobs_of[request.index])
    with_jobs = set(jobs_of)
    return ResumePlan(
        finished=[j for j in jobs if j.final and not j.refused],
        reattach=[j for j in jobs if not j.final or j.refused],
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
        self.failure: JournalWriteError | None = None  # the first write that failed
        with self._reading("meta"):
            rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        self._meta: dict[str, str] = {}
        for key, value in rows:
            if not isinstance(key, str) or not isinstance(value, str):
                raise JournalDamagedError(path, "meta", f"the entry {key!r} is not text")
            self._meta[key] = value
        for key in ("batch_id", "created", "url"):
            if not self._meta.get(key):
                raise JournalDamagedError(path, "meta", f"{key} is missing")
        with self._reading("file"):
            tables = {
                name
                for (name,) in self._db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
        for table in ("requests", "jobs", "events"):
            if table not in tables:  # else a later write would fail as if the disk had
                raise JournalDamagedError(path, "file", f"the table {table} is missing")

    # -- opening -----------------------------------------------------------------

    @staticmethod
    def check_new_path(path: Path, *, how_to_resume: str | None = None) -> str:
        """Refuse ``path`` for a new journal if it exists (a file, a directory, a
        device...), with no I/O but a stat: callers check it before any network call.
        Returns the advice :meth:`create` gives when the file appears meanwhile."""
        hint = how_to_resume or (
            f"resume it with resume_jobs({str(path)!r}), or choose another path"
        )
        if path.exists():
            raise ConfigurationError(_exists_message(path, hint))
        return hint

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        target: JournalTarget,
        batch_id: str,
        requests: Sequence[RequestRecord],
        clock: Callable[[], datetime] = _now,
        how_to_resume: str | None = None,
    ) -> Journal:
        """Write a new journal holding ``requests``; refuse to overwrite a file.

        Its lock is taken before the file is created and held until :meth:`close`
        (:class:`~async_orch._journal_lock.JournalInUseError` if another process
        holds it). ``how_to_resume`` is the advice given when the file exists
        (default: the library's ``resume_jobs``; the CLI names its flags).
        """
        hint = cls.check_new_path(path, how_to_resume=how_to_resume)
        try:
            make_private_dirs(path.parent)
        except OSError as exc:
            raise ConfigurationError(f"cannot create journal {path}: {exc}") from exc
        lock = JournalLock(path, clock=clock)
        with _take_lock(lock):
            try:
                # Created 0600 here, empty, so SQLite (which keeps an existing
                # file's mode, and gives its -wal and -shm files the same) never
                # makes it readable by others, whatever the umask.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process created it since the check above
                raise ConfigurationError(_exists_message(path, hint)) from None
            except OSError as exc:
                raise ConfigurationError(f"cannot create journal {path}: {exc}") from exc
            try:
                if hasattr(os, "fchmod"):  # not on Windows, where modes mean little
                    os.fchmod(fd, 0o600)  # a umask taking the owner's bits away, undone
            finally:
                os.close(fd)
            db: sqlite3.Connection | None = None
            try:
                lock.lock_file()
                db = _connect(path)
                _write_new(db, _iso(clock()), target, batch_id, requests)
            except BaseException as exc:
                if db is not None:
                    with contextlib.suppress(sqlite3.Error):
                        db.close()
                _remove_new(path)  # nothing was started: leave nothing behind
                if isinstance(exc, (OSError, sqlite3.Error)):
                    raise ConfigurationError(
                        f"cannot create journal {path} ({_describe(exc)}); nothing was "
                        "started: make room, or choose another path with --journal"
                    ) from exc
                raise
        return cls(db, path, clock=clock, lock=lock)

    @classmethod
    def open(
        cls, path: Path, *, clock: Callable[[], datetime] = _now, read_only: bool = False
    ) -> Journal:
        """Open an existing journal to write it (a resume), or ``read_only`` to show it.

        To write, its lock is taken first and held until :meth:`close`
        (:class:`~async_orch._journal_lock.JournalInUseError` if another process
        holds it). ``read_only`` takes no lock, so a journal can be read while
        another process writes it; the ``record_*`` methods then raise.
        """
        if path.is_dir():
            raise ConfigurationError(
                f"journal {path} is a directory; give the path of a journal file (it is "
                "shown when dispatch starts)"
            )
        if path.exists() and not path.is_file():
            raise ConfigurationError(
                f"journal {path} is not a regular file (a device, a pipe, a socket); give "
                "the path of a journal file"
            )
        if not path.is_file():
            raise ConfigurationError(
                f"no journal at {path} (the path is shown when dispatch starts)"
            )
        _refuse_other_names(path)
        lock = None if read_only else JournalLock(path, clock=clock)
        with _take_lock(lock):
            db: sqlite3.Connection | None = None
            try:
                db = _connect(path)
                version = db.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
            except sqlite3.Error as exc:
                if db is not None:
                    db.close()
                if str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_CORRUPT"):
                    raise JournalDamagedError(
                        path, "file", f"SQLite cannot read it ({exc})"
                    ) from exc
                raise ConfigurationError(f"{path} is not an async-orch journal ({exc})") from exc
            try:
                if version is None or version[0] not in (str(SCHEMA_VERSION), _MIGRATED_FROM):
                    raise ConfigurationError(
                        f"{path} is a journal of schema {version[0] if version else '?'}; "
                        f"this async-orch reads schema {SCHEMA_VERSION} (and migrates "
                        f"schema {_MIGRATED_FROM}): use the async-orch that wrote it"
                    )
                journal = cls(db, path, clock=clock, lock=lock)
                if version[0] == _MIGRATED_FROM and not read_only:
                    # A reader reads the old schema as it is (its columns are read
                    # alike); a writer brings it up to date before writing.
                    journal._migrate_from_v1()
                return journal
            except BaseException:
                db.close()
                raise

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

    def _migrate_from_v1(self) -> None:
        """Rebuild the jobs table of schema 1 (keyed by job id) as schema 2's, in
        one transaction: a crash leaves the journal all old or all new."""
        jobs = self.jobs()  # every row checked first: damage is reported, not migrated
        now = _iso(self._clock())
        with self._writing():
            self._db.execute("ALTER TABLE jobs RENAME TO jobs_v1")
            self._db.execute(_JOBS_TABLE)
            self._db.execute(_JOBS_INDEX)
            self._db.executemany(
                "INSERT INTO jobs (request_idx, job_id, job_key, handle, state, outcome, "
                "result, updated) SELECT ?, ?, ?, handle, state, outcome, result, updated "
                "FROM jobs_v1 WHERE job_id = ?",
                [(*_identity(job.request_index, job.handle), job.job_id) for job in jobs],
            )
            self._db.execute("DROP TABLE jobs_v1")
            self._db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )
            self._event(now, "migrated", None, None, {"from": 1, "to": SCHEMA_VERSION})
        self._meta["schema_version"] = str(SCHEMA_VERSION)

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
        self.target.check_same(target, name=str(self.path))

    def requests(self) -> list[RequestRecord]:
        with self._reading("requests"):
            rows = self._db.execute(
                "SELECT idx, reference, folder, process, inputs, timeout, outcome, info "
                "FROM requests ORDER BY idx"
            ).fetchall()
        return [self._request(*row) for row in rows]

    def jobs(self) -> list[JobRecord]:
        with self._reading("jobs"):
            rows = self._db.execute(
                # Columns of both schemas, so a reader reads schema 1 as it is.
                "SELECT job_id, request_idx, handle, state, outcome, result FROM jobs "
                "ORDER BY request_idx, job_id, rowid"
            ).fetchall()
            known = {idx for (idx,) in self._db.execute("SELECT idx FROM requests")}
            per_job = self._db.execute(
                "SELECT seq, kind, request_idx, job_id, detail FROM events "
                "WHERE kind IN ('started', 'stop_sent') AND job_id IS NOT NULL ORDER BY seq"
            ).fetchall()
        # What the jobs table has no column for: the attempts a start took and the
        # last stop sent, from the jobs' own events (later ones win).
        noted: dict[tuple[int, int], dict[str, Any]] = defaultdict(dict)
        for seq, kind, request_idx, job_id, detail in per_job:
            data = self._json(detail, f"events row seq={seq}", "detail", dict) or {}
            key = "attempts" if kind == "started" else "strategy"
            if isinstance(data.get(key), int if kind == "started" else str):
                noted[(request_idx, job_id)][kind] = data[key]
        return [
            replace(
                record,
                attempts=noted[(record.request_index, record.job_id)].get("started"),
                stop_sent=noted[(record.request_index, record.job_id)].get("stop_sent"),
            )
            for record in (self._job(known, *row) for row in rows)
        ]

    def events(self) -> list[dict[str, Any]]:
        with self._reading("events"):
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
                "detail": self._json(detail, f"events row seq={seq}", "detail") if detail else None,
            }
            for seq, at, kind, request_idx, job_id, detail in rows
        ]

    def last_run_finished(self) -> bool:
        """Whether the last run of this journal ended by itself (not killed, not
        interrupted): then none of its StartJobs can still be in flight."""
        with self._reading("events"):
            row = self._db.execute(
                "SELECT kind, detail FROM events WHERE kind IN ('created', 'resumed', 'finished') "
                "ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        if row is None or row[0] != "finished":
            return False
        detail = self._json(row[1], "events (last finished)", "detail", dict) if row[1] else {}
        return detail.get("interrupted") is False

    def starts_in_doubt(self) -> frozenset[str] | None:
        """The References whose StartJobs the last run may have left for the server
        to complete. Empty when it ended by itself; when it ended early (an error,
        an interrupt) with its process alive to record it, those its batch named in
        doubt as it ended (the ``abandoned`` event's ``uncertain_references``: cut
        off, or cancelled while being looked up); None when nothing says (it was
        killed, or the record is not one async-orch wrote): then any may be."""
        if self.last_run_finished():
            return frozenset()
        with self._reading("events"):
            rows = self._db.execute(
                "SELECT detail FROM events WHERE seq > COALESCE((SELECT MAX(seq) FROM "
                "events WHERE kind IN ('created', 'resumed')), 0) AND kind = 'abandoned'"
            ).fetchall()
        if not rows:
            return None
        doubt: set[str] = set()
        for (detail,) in rows:
            try:
                references = json.loads(detail)["uncertain_references"] if detail else None
            except (ValueError, TypeError, KeyError):
                return None
            if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
                return None
            doubt.update(references)
        return frozenset(doubt)

    # -- reading rows, checked: a row async-orch did not write is damage, not a guess --

    def _request(
        self,
        idx: object,
        reference: object,
        folder: object,
        process: object,
        inputs: object,
        timeout: object,
        outcome: object,
        info: object,
    ) -> RequestRecord:
        where = f"requests row idx={idx}"
        parsed_inputs = self._json(inputs, where, "inputs", dict)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float, type(None))):
            raise JournalDamagedError(self.path, where, f"timeout {timeout!r} is not a number")
        return RequestRecord(
            index=self._check(idx, int, where, "idx", optional=False),
            reference=self._check(reference, str, where, "reference", optional=False),
            folder=self._check(folder, str, where, "folder", optional=False),
            process=self._check(process, str, where, "process", optional=False),
            inputs=parsed_inputs,
            timeout=float(timeout) if timeout is not None else None,
            outcome=self._check(outcome, str, where, "outcome"),
            info=self._check(info, str, where, "info"),
        )

    def _job(
        self,
        known: set[int],
        job_id: object,
        request_idx: object,
        handle: object,
        state: object,
        outcome: object,
        result: object,
    ) -> JobRecord:
        where = f"jobs row job_id={job_id}"
        index = self._check(request_idx, int, where, "request_idx", optional=False)
        if index not in known:
            raise JournalDamagedError(self.path, where, f"request {index} is not in the journal")
        data = self._json(handle, where, "handle", dict)
        try:
            parsed = JobHandle.from_dict(data or {})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise JournalDamagedError(
                self.path, where, f"handle is not a job handle ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(parsed.job_key, (str, type(None))):
            raise JournalDamagedError(
                self.path, where, f"handle's job_key {parsed.job_key!r} is not text"
            )
        if parsed.job_id != job_id:
            raise JournalDamagedError(
                self.path, where, f"handle names job {parsed.job_id}, not {job_id}"
            )
        checked_outcome = self._check(outcome, str, where, "outcome")
        if checked_outcome is not None and checked_outcome not in set(Outcome):
            raise JournalDamagedError(
                self.path, where, f"outcome {checked_outcome!r} is not an outcome"
            )
        row = self._json(result, where, "result", dict)
        if row is not None and not row:
            # A result is written whole, never empty; an empty one was edited or
            # damaged, and would print as a job with no id and outcome "None".
            raise JournalDamagedError(self.path, where, "result is empty")
        refused = (row or {}).get(ENDED_BY_REFUSAL, False)
        if not isinstance(refused, bool):
            # Edited: the text "false" would make the job one ended by a refusal.
            raise JournalDamagedError(
                self.path, where, f"result's {ENDED_BY_REFUSAL} {refused!r} is not true or false"
            )
        return JobRecord(
            job_id=parsed.job_id,
            request_index=index,
            handle=parsed,
            state=self._check(state, str, where, "state"),
            outcome=checked_outcome,
            result=row,
        )

    def _check(
        self, value: object, kind: type[_T], where: str, column: str, *, optional: bool = True
    ) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, kind) or isinstance(value, bool):
            raise JournalDamagedError(
                self.path, where, f"{column} is {value!r}, not {_KIND_NAMES[kind]}"
            )
        return value

    def _json(self, text: object, where: str, column: str, kind: type | None = None) -> Any:
        if text is None:
            return None
        if not isinstance(text, str):
            raise JournalDamagedError(self.path, where, f"{column} is {text!r}, not JSON text")
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise JournalDamagedError(
                self.path, where, f"{column} is not valid JSON ({exc})"
            ) from None
        if kind is not None and not isinstance(value, kind):
            raise JournalDamagedError(
                self.path, where, f"{column} is JSON {type(value).__name__}, not an object"
            )
        return value

    @contextlib.contextmanager
    def _reading(self, table: str) -> Iterator[None]:
        """A read; a file SQLite cannot read (truncated, overwritten) is damage."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise  # busy, not damaged
            raise JournalDamagedError(self.path, table, f"SQLite cannot read it ({exc})") from exc

    # -- recording, one committed transaction each ----------------------------------

    def record_requests(self, requests: Sequence[RequestRecord]) -> None:
        """The requests of a journal created empty (before any of them starts)."""
        now = _iso(self._clock())
        with self._writing():
            if self._db.execute("SELECT 1 FROM requests LIMIT 1").fetchone() is not None:
                raise ConfigurationError(
                    f"journal {self.path} holds a batch already; resume it, or give a new journal"
                )
            _insert_requests(self._db, now, requests)

    def record_started(
        self,
        request_index: int,
        handle: JobHandle,
        *,
        state: str | None,
        attempts: int | None = None,
    ) -> None:
        """A job exists: record its id (idempotent: a re-found job is kept once),
        and the StartJobs attempts it took when known."""
        now = _iso(self._clock())
        with self._writing():
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO jobs (request_idx, job_id, job_key, handle, state, "
                "updated) VALUES (?, ?, ?, ?, ?, ?)",
                (*_identity(request_index, handle), _dumps(handle.to_dict()), state, now),
            ).rowcount
            # The request did start after all: forget an earlier not_started.
            self._db.execute(
                "UPDATE requests SET outcome = NULL, info = NULL, updated = ? WHERE idx = ?",
                (now, request_index),
            )
            if inserted:
                detail: dict[str, Any] = {"state": state}
                if attempts is not None:
                    detail["attempts"] = attempts
                self._event(now, "started", request_index, handle.job_id, detail)

    def record_state(self, request_index: int, handle: JobHandle, state: str) -> None:
        """A job's state changed (written only when it differs from the last one)."""
        now = _iso(self._clock())
        with self._writing():
            changed = self._db.execute(
                f"UPDATE jobs SET state = ?, updated = ? "
                f"WHERE {_JOB_IS} AND outcome IS NULL AND state IS NOT ?",
                (state, now, *_identity(request_index, handle), state),
            ).rowcount
            if changed:
                self._event(now, "state", request_index, handle.job_id, {"state": state})

    def record_stop_sent(self, request_index: int, handle: JobHandle, strategy: str) -> None:
        """A stop was sent to a job (SoftStop or Kill); a final row records it too."""
        now = _iso(self._clock())
        identity = _identity(request_index, handle)
        with self._writing():
            row = self._db.execute(
                f"SELECT result FROM jobs WHERE {_JOB_IS} AND result IS NOT NULL", identity
            ).fetchone()
            if row is not None:
                result = json.loads(row[0])
                result["stop_sent"] = strategy
                self._db.execute(
                    f"UPDATE jobs SET result = ?, updated = ? WHERE {_JOB_IS}",
                    (_dumps(result), now, *identity),
                )
            self._event(now, "stop_sent", request_index, handle.job_id, {"strategy": strategy})

    def record_later_state(
        self,
        request_index: int,
        handle: JobHandle,
        state: str,
        *,
        ended: str | None = None,
        info: str | None = None,
    ) -> None:
        """A job reported left running (see :attr:`JobRecord.left_running`) was read
        again: its state now (with when it ended and its Info, once it has). Its
        outcome stays the one the batch reported."""
        now = _iso(self._clock())
        identity = _identity(request_index, handle)
        with self._writing():
            row = self._db.execute(
                f"SELECT result FROM jobs WHERE {_JOB_IS} AND outcome IS NOT NULL", identity
            ).fetchone()
            if row is None:
                return
            result = json.loads(row[0]) if row[0] else {}
            news = {"state": state, "ended": ended or result.get("ended")}
            if info is not None:
                news["info"] = info
            if all(result.get(name) == value for name, value in news.items()):
                return
            result.update(news)
            self._db.execute(
                f"UPDATE jobs SET state = ?, result = ?, updated = ? WHERE {_JOB_IS}",
                (state, _dumps(result), now, *identity),
            )
            self._event(now, "state", request_index, handle.job_id, {"state": state})

    def record_final(
        self,
        request_index: int,
        handle: JobHandle,
        *,
        outcome: str,
        state: str | None,
        result: Mapping[str, Any],
    ) -> None:
        """A job is over: its outcome and result row (outputs included)."""
        now = _iso(self._clock())
        detail = {"outcome": outcome, "state": state}
        with self._writing():
            self._db.execute(
                "UPDATE jobs SET state = coalesce(?, state), outcome = ?, result = ?, "
                f"updated = ? WHERE {_JOB_IS}",
                (state, outcome, _dumps(dict(result)), now, *_identity(request_index, handle)),
            )
            self._event(now, "final", request_index, handle.job_id, detail)

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

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One committed write transaction; only the lock's holder writes.

        The first write that fails (a full disk, an I/O error) becomes
        :attr:`failure`, raised by it and at once by every later write: the
        run ends, and nothing is written past a hole in what was recorded.
        """
        if self._lock is None:
            raise RuntimeError(f"journal {self.path} was opened read-only")
        if self.failure is not None:
            raise self.failure
        try:
            with _transaction(self._db):
                yield
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise  # a bug of ours, not the disk
        except (OSError, sqlite3.Error) as exc:
            self.failure = JournalWriteError(self.path, exc)
            raise self.failure from exc

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


def _identity(request_index: int, handle: JobHandle) -> tuple[int, int, str]:
    """What identifies a job's row: its request (so its Reference), id and Key."""
    return (request_index, handle.job_id, (handle.job_key or "").lower())  # Keys are GUIDs


def _refuse_other_names(path: Path) -> None:
    """Refuse a journal file with more than one hard link.

    SQLite names its ``-wal`` and ``-shm`` files after the name it opens: the
    writes of a process killed before they were copied into the file itself
    (``kill -9``) sit in ``NAME-wal``, unseen through another name, so a resume
    there would take recorded jobs for unstarted ones. (A symbolic link is no
    such risk: it is resolved before opening, see :func:`_connect`.)
    """
    links = path.stat().st_nlink
    if links > 1:
        raise ConfigurationError(
            f"journal {path} has {links} hard links (names), and SQLite keeps its latest "
            "writes in a file named after the name it was opened by, so another name may "
            "miss them: use the path the journal was created with (where its -wal file "
            f"is, if any) and remove the other links (find {shlex.quote(str(path.parent))} "
            f"-samefile {shlex.quote(str(path))} lists those in its folder)"
        )


def _exists_message(path: Path, how_to_resume: str) -> str:
    """Why a new journal cannot be created at ``path``, which exists."""
    if path.is_dir():
        return (
            f"journal {path} is a directory; give the path of a new file, such as "
            f"{path / 'batch.sqlite'}"
        )
    if not path.is_file():
        return (
            f"journal {path} exists and is not a regular file (a device, a pipe, a "
            "socket); give the path of a new file"
        )
    return f"journal {path} already exists; {how_to_resume}"


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


def make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and any missing parent 0700 (existing ones are left as they are)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            os.mkdir(created, 0o700)
            os.chmod(created, 0o700)  # still empty: a umask taking the owner's bits, undone


def _write_new(
    db: sqlite3.Connection,
    now: str,
    target: JournalTarget,
    batch_id: str,
    requests: Sequence[RequestRecord],
) -> None:
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
        _insert_requests(db, now, requests)


def _insert_requests(db: sqlite3.Connection, now: str, requests: Sequence[RequestRecord]) -> None:
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


def _remove_new(path: Path) -> None:
    """Remove a journal whose creation failed (and SQLite's files beside it)."""
    for name in (path.name, path.name + "-wal", path.name + "-shm", path.name + "-journal"):
        with contextlib.suppress(OSError):
            os.unlink(path.resolve().with_name(name))


def _describe(error: BaseException) -> str:
    return f"the disk is full: {error}" if _disk_full(error) else str(error)


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (_transaction), one per write.
    # Through the resolved path: SQLite names its -wal file after the name it
    # opens, and every name of one journal must share one.
    db = sqlite3.connect(path.resolve(), isolation_level=None, check_same_thread=False)
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
        db.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (a full disk can do that): then a
        # ROLLBACK would fail and hide the error that matters.
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise
