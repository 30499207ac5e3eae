"""The dispatch journal: committed as it goes, planned for resume (plain sync tests)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from async_orch import _journal as journal_module
from async_orch._cli.profiles import merge_environment, profile_environment
from async_orch._errors import ConfigurationError
from async_orch._jobs import JobHandle
from async_orch._journal import (
    ENDED_BY_REFUSAL,
    JobRecord,
    Journal,
    JournalDamagedError,
    JournalTarget,
    JournalWriteError,
    RequestRecord,
    TwoJobsForOneRequestError,
    plan_resume,
)
from async_orch._journal_lock import JournalInUseError, JournalLock, lock_path

TARGET = JournalTarget(
    url="https://cloud.uipath.com/acme/Prod/orchestrator_", organization="acme", tenant="Prod"
)


def _clock() -> datetime:
    return datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _records(n: int) -> list[RequestRecord]:
    return [
        RequestRecord(index=i, reference=f"r-{i}", folder="Shared", process="Echo", inputs={"i": i})
        for i in range(n)
    ]


def _handle(job_id: int, reference: str, key: str | None = None) -> JobHandle:
    return JobHandle(
        job_id=job_id,
        job_key=key,
        folder_id=7,
        folder_key=None,
        folder_path="Shared",
        reference=reference,
    )


def _journal(tmp_path: Path, n: int = 3) -> Journal:
    return Journal.create(
        tmp_path / "j.sqlite", target=TARGET, batch_id="b1", requests=_records(n), clock=_clock
    )


def test_a_new_journal_holds_its_requests_and_tenant(tmp_path: Path) -> None:
    _journal(tmp_path).close()
    with Journal.open(tmp_path / "j.sqlite") as journal:
        assert journal.batch_id == "b1"
        assert journal.target == TARGET
        assert journal.requests() == _records(3)
        assert journal.jobs() == []
        assert [e["kind"] for e in journal.events()] == ["created"]


def test_every_write_is_visible_to_another_connection_at_once(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.record_started(1, _handle(501, "r-1"), state="Pending")
    reader = sqlite3.connect(tmp_path / "j.sqlite")  # as a crashed process leaves it
    assert reader.execute("SELECT job_id, request_idx, state FROM jobs").fetchall() == [
        (501, 1, "Pending")
    ]
    journal.record_final(
        1, _handle(501, "r-1"), outcome="successful", state="Successful", result={"outputs": {}}
    )
    assert reader.execute("SELECT outcome FROM jobs").fetchall() == [("successful",)]
    reader.close()
    journal.close()


def test_record_started_is_idempotent_and_clears_not_started(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal:
        journal.record_not_started(0, info="timeout")
        assert journal.requests()[0].outcome == "not_started"
        journal.record_started(0, _handle(9, "r-0"), state=None)
        journal.record_started(0, _handle(9, "r-0"), state=None)
        assert [j.job_id for j in journal.jobs()] == [9]
        assert journal.requests()[0].outcome is None
        assert [e["kind"] for e in journal.events()].count("started") == 1


def test_state_changes_are_recorded_once_and_never_after_the_end(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal:
        journal.record_started(0, _handle(9, "r-0"), state="Pending")
        journal.record_state(0, _handle(9, "r-0"), "Running")
        journal.record_state(0, _handle(9, "r-0"), "Running")
        journal.record_final(
            0, _handle(9, "r-0"), outcome="faulted", state="Faulted", result={"info": "boom"}
        )
        journal.record_state(0, _handle(9, "r-0"), "Running")
        (job,) = journal.jobs()
        assert (job.state, job.outcome, job.result) == ("Faulted", "faulted", {"info": "boom"})
        assert [e["kind"] for e in journal.events()] == ["created", "started", "state", "final"]


def test_plan_resume_sorts_final_running_and_unknown(tmp_path: Path) -> None:
    with _journal(tmp_path, n=4) as journal:
        journal.record_started(0, _handle(10, "r-0"), state=None)
        journal.record_final(
            0, _handle(10, "r-0"), outcome="successful", state="Successful", result={"job_id": 10}
        )
        journal.record_started(1, _handle(11, "r-1"), state="Running")
        journal.record_not_started(3, info="lookup failed")
        plan = plan_resume(journal.requests(), journal.jobs())
    assert [j.job_id for j in plan.finished] == [10]
    assert [j.job_id for j in plan.reattach] == [11]
    assert [r.reference for r in plan.lookup] == ["r-2", "r-3"]


def test_plan_resume_reattaches_a_job_ended_by_a_refusal_and_left_running_says_so() -> None:
    """A job reported unknown because calls about it were refused (its result row
    says ENDED_BY_REFUSAL) was never read: a resume watches it again; one lost
    (unknown without the key) stays reported."""
    refused = {"outcome": "unknown", ENDED_BY_REFUSAL: True}
    jobs = [
        JobRecord(job_id=5, request_index=0, handle=_handle(5, "r-0"), state="Running",
                  outcome="unknown", result=refused),
        JobRecord(job_id=6, request_index=1, handle=_handle(6, "r-1"), state="Running",
                  outcome="unknown", result={"outcome": "unknown"}),
    ]  # fmt: skip
    plan = plan_resume(_records(2), jobs)
    assert [j.job_id for j in plan.reattach] == [5]
    assert [j.job_id for j in plan.finished] == [6]
    assert [(j.refused, j.left_running) for j in jobs] == [(True, True), (False, False)]


def test_another_tenant_is_refused(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal:
        journal.check_target(
            JournalTarget(url=TARGET.url.upper() + "/", organization="ACME", tenant="prod")
        )
        other = JournalTarget(url=TARGET.url.replace("Prod", "Test"), organization="acme",
                              tenant="Test")  # fmt: skip
        with pytest.raises(ConfigurationError, match=r"belongs to .*tenant Prod.*tenant Test"):
            journal.check_target(other)


def test_create_refuses_to_overwrite_and_open_refuses_strangers(tmp_path: Path) -> None:
    _journal(tmp_path).close()
    with pytest.raises(ConfigurationError, match="already exists; resume it"):
        _journal(tmp_path)
    stranger = tmp_path / "other.sqlite"
    sqlite3.connect(stranger).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ConfigurationError, match="not an async-orch journal"):
        Journal.open(stranger)
    with pytest.raises(ConfigurationError, match="no journal at"):
        Journal.open(tmp_path / "missing.sqlite")
    with pytest.raises(ConfigurationError, match=f"journal {tmp_path} is a directory; give"):
        Journal.open(tmp_path, read_only=True)
    with pytest.raises(ConfigurationError, match="journal /dev/null is not a regular file"):
        Journal.open(Path("/dev/null"), read_only=True)


def test_a_journal_is_locked_from_create_to_close_and_readable_meanwhile(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite"
    writer = _journal(tmp_path)
    with pytest.raises(JournalInUseError, match=re.escape(f"journal {path} is in use by another")):
        Journal.open(path)
    with Journal.open(path, read_only=True) as reader:  # no lock needed to read
        assert reader.read_only and not writer.read_only
        assert reader.requests() == _records(3)
        with pytest.raises(RuntimeError, match="opened read-only"):
            reader.record_started(0, _handle(9, "r-0"), state="Pending")
        with pytest.raises(RuntimeError, match="opened read-only"):
            reader.record_event("resumed")
    assert writer.jobs() == []  # nothing was written by the reader
    writer.close()
    assert not lock_path(path).exists()
    with Journal.open(path) as resumed:  # the lock is free again
        resumed.record_event("resumed")


def test_a_journal_in_use_is_not_created_and_a_failed_open_keeps_no_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite"
    with JournalLock(path), pytest.raises(JournalInUseError):
        _journal(tmp_path)  # another process is creating this very journal
    assert not path.exists()
    stranger = tmp_path / "other.sqlite"
    sqlite3.connect(stranger).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ConfigurationError, match="not an async-orch journal"):
        Journal.open(stranger)
    assert not lock_path(stranger).exists()
    with JournalLock(stranger):
        pass


def test_profiles_map_keys_to_variables_and_read_secrets_from_env() -> None:
    text = (
        '[profiles.p]\nurl = "https://x/a/b/orchestrator_"\nclient_secret_env = "S"\ntimeout = 5\n'
    )
    values = profile_environment(text, "p", environ={"S": "s3cret"}, where="cfg")
    assert values == {
        "UIPATH_URL": "https://x/a/b/orchestrator_",
        "UIPATH_CLIENT_SECRET": "s3cret",
        "ASYNC_ORCH_TIMEOUT": "5",
    }
    with pytest.raises(ConfigurationError, match="unknown key 'secret'"):
        profile_environment('[profiles.p]\nsecret = "x"\n', "p", environ={}, where="cfg")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        profile_environment("[profiles.p\n", "p", environ={}, where="cfg")


def test_a_chosen_profile_wins_over_the_environment_and_the_default_does_not() -> None:
    environ = {"UIPATH_URL": "from-env", "OTHER": "1"}
    profile = {"UIPATH_URL": "from-profile", "UIPATH_CLIENT_ID": "id"}
    chosen = merge_environment(environ, profile, profile_wins=True)
    assert chosen["UIPATH_URL"] == "from-profile" and chosen["OTHER"] == "1"
    default = merge_environment(environ, profile, profile_wins=False)
    assert default["UIPATH_URL"] == "from-env" and default["UIPATH_CLIENT_ID"] == "id"


# -- files and privacy (issue 11, point 8) -------------------------------------------


def test_a_journal_and_the_folders_made_for_it_are_private_whatever_the_umask(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "async-orch" / "j.sqlite"
    for umask in (0, 0o022, 0o277):  # 0o277 would take even the owner's write bit
        old = os.umask(umask)
        try:
            with Journal.create(path, target=TARGET, batch_id="b", requests=_records(2)) as j:
                j.record_started(0, _handle(5, "r-0"), state="Pending")
                sqlite_files = sorted(p.name for p in path.parent.iterdir())
                assert "j.sqlite-wal" in sqlite_files
                for name in sqlite_files:  # SQLite's -wal and -shm too
                    assert (path.parent / name).stat().st_mode & 0o777 == 0o600, (umask, name)
            for folder in (tmp_path / "state", tmp_path / "state" / "async-orch"):
                assert folder.stat().st_mode & 0o777 == 0o700, umask
        finally:
            os.umask(old)
        shutil.rmtree(tmp_path / "state")
    existing = tmp_path / "mine"
    existing.mkdir(mode=0o755)
    Journal.create(existing / "j.sqlite", target=TARGET, batch_id="b", requests=[]).close()
    assert existing.stat().st_mode & 0o777 == 0o755  # a folder the user made is theirs


# -- write failures (issue 11, point 5) ----------------------------------------------


def _failing_writes(monkeypatch: pytest.MonkeyPatch, error: BaseException | None) -> None:
    @contextlib.contextmanager
    def broken(db: sqlite3.Connection) -> Iterator[None]:
        if error is not None:  # always: as a full disk would, before the write
            raise error
        yield

    monkeypatch.setattr(journal_module, "_transaction", broken)


def test_a_failed_write_is_one_error_saying_what_is_safe_and_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = _journal(tmp_path)
    journal.record_started(0, _handle(5, "r-0"), state="Pending")
    _failing_writes(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(JournalWriteError) as failed:
        journal.record_started(1, _handle(6, "r-1"), state="Pending")
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write journal {journal.path} (the disk is full: ")
    assert "The jobs started so far are safe" in message
    assert "finds by Reference any started but not recorded" in message
    assert message.endswith(
        f"once the disk has room again: async-orch dispatch --resume {journal.path}"
    )
    assert journal.failure is failed.value
    monkeypatch.undo()  # even once writes would work again, none is made past the hole
    with pytest.raises(JournalWriteError) as again:
        journal.record_event("finished")
    assert again.value is failed.value
    assert [j.job_id for j in journal.jobs()] == [5]  # what was recorded stays readable
    journal.close()


def test_an_sqlite_io_error_is_a_write_error_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = _journal(tmp_path)
    _failing_writes(monkeypatch, sqlite3.OperationalError("disk I/O error"))
    with pytest.raises(JournalWriteError, match=r"\(disk I/O error\).*once it can be written:"):
        journal.record_state(0, _handle(5, "r-0"), "Running")
    journal.close()


def test_a_journal_that_cannot_be_written_at_creation_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failing_writes(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(ConfigurationError, match="nothing was started") as failed:
        _journal(tmp_path)
    assert "the disk is full" in str(failed.value)
    assert list(tmp_path.iterdir()) == []


# -- damage (issue 11, point 4) ------------------------------------------------------

DAMAGES = {
    "bad JSON": (
        "UPDATE requests SET inputs = '{\"i\": ' WHERE idx = 1",
        "requests row idx=1: inputs is not valid JSON",
    ),
    "inputs not an object": (
        "UPDATE requests SET inputs = '[1, 2]' WHERE idx = 1",
        "requests row idx=1: inputs is JSON list, not an object",
    ),
    "wrong type": (
        "UPDATE requests SET folder = X'00ff' WHERE idx = 2",
        "requests row idx=2: folder is b'\\x00\\xff', not text",
    ),
    "timeout not a number": (
        "UPDATE requests SET timeout = 'soon' WHERE idx = 0",
        "requests row idx=0: timeout 'soon' is not a number",
    ),
    "handle missing a key": (
        "UPDATE jobs SET handle = '{\"job_id\": 5}' WHERE job_id = 5",
        "jobs row job_id=5: handle is not a job handle (ValueError: a job handle needs 'folder_id'",
    ),
    "handle of another job": (
        "UPDATE jobs SET handle = replace(handle, '\"job_id\": 5', '\"job_id\": 6')",
        "jobs row job_id=5: handle names job 6, not 5",
    ),
    "key not text": (
        "UPDATE jobs SET handle = replace(handle, '\"job_key\": null', '\"job_key\": 3')",
        "jobs row job_id=5: handle's job_key 3 is not text",
    ),
    "job of no request": (
        "PRAGMA foreign_keys = OFF; UPDATE jobs SET request_idx = 99 WHERE job_id = 5",
        "jobs row job_id=5: request 99 is not in the journal",
    ),
    "unknown outcome": (
        "UPDATE jobs SET outcome = 'great' WHERE job_id = 5",
        "jobs row job_id=5: outcome 'great' is not an outcome",
    ),
    "empty result": (
        "UPDATE jobs SET result = '{}' WHERE job_id = 5",
        "jobs row job_id=5: result is empty",
    ),
    # Attack h10b: the text "false" (truthy) made the job one ended by a refusal.
    "ended_by_refusal not a boolean": (
        "UPDATE jobs SET outcome = 'unknown', "
        'result = \'{"outcome": "unknown", "ended_by_refusal": "false"}\' WHERE job_id = 5',
        "jobs row job_id=5: result's ended_by_refusal 'false' is not true or false",
    ),
    "meta missing": ("DELETE FROM meta WHERE key = 'url'", "meta: url is missing"),
    "table missing": ("DROP TABLE events", "file: the table events is missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_row_is_one_clear_error_naming_file_row_and_fault(
    tmp_path: Path, damage: str
) -> None:
    sql, expected = DAMAGES[damage]
    with _journal(tmp_path) as journal:
        journal.record_started(0, _handle(5, "r-0"), state="Pending")
        path = journal.path
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(sql)
    db.close()
    with pytest.raises(JournalDamagedError) as damaged, Journal.open(path) as reopened:
        plan_resume(reopened.requests(), reopened.jobs())
    message = str(damaged.value)
    assert message.startswith(f"journal is damaged: {path}: {expected}"), message
    assert "restore it from a backup" in message and "\n" not in message
    assert not lock_path(path).exists()  # a refused open keeps no lock


def test_a_truncated_file_is_damage_not_a_traceback(tmp_path: Path) -> None:
    with _journal(tmp_path, n=300) as journal:
        path = journal.path
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(JournalDamagedError) as failed, Journal.open(path) as reopened:
        reopened.requests()
    assert str(failed.value).startswith(
        f"journal is damaged: {path}: file: SQLite cannot read it (database disk image is "
        "malformed); it was changed outside async-orch or its disk failed"
    )


def test_a_write_torn_by_a_crash_is_dropped_whole_and_the_rest_reads(tmp_path: Path) -> None:
    """The torn last write a crash leaves is tolerated: SQLite's WAL checksums each
    commit, so recovery drops the torn one and keeps every complete one."""
    with _journal(tmp_path) as journal:
        for job_id in (5, 6):
            journal.record_started(job_id - 5, _handle(job_id, f"r-{job_id - 5}"), state=None)
        wal = Path(f"{journal.path}-wal")
        crashed = tmp_path / "crashed"
        crashed.mkdir()
        shutil.copy(journal.path, crashed / "j.sqlite")
        torn = wal.read_bytes()
        (crashed / "j.sqlite-wal").write_bytes(torn[:-100])  # the last commit, cut short
    with Journal.open(crashed / "j.sqlite") as reopened:
        assert [j.job_id for j in reopened.jobs()] == [5]  # job 6 is found again by Reference
        assert len(reopened.requests()) == 3


def test_a_resume_refuses_a_journal_showing_two_jobs_for_one_request(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.record_started(0, _handle(5, "r-0"), state="Running")
    journal.record_started(1, _handle(6, "r-1"), state="Running")
    journal.record_started(1, _handle(7, "r-1"), state="Running")  # started twice
    with pytest.raises(TwoJobsForOneRequestError) as refused:
        plan_resume(journal.requests(), journal.jobs(), path=journal.path)
    assert str(refused.value).startswith(
        f"journal {journal.path} shows 2 jobs (ids 6, 7) for request 1 (Reference r-1): "
        "it was started more than once, so the journal is not resumed."
    )
    assert refused.value.job_ids == [6, 7]
    journal.close()


# -- a server that reuses job ids (issue 11, point 6) ----------------------------------

KEY = "5f3c9a7e-0000-4000-8000-000000000005"


def test_two_requests_jobs_with_one_id_and_key_are_kept_apart(tmp_path: Path) -> None:
    """A server that forgot its jobs gives their ids (and, seeded alike, their Keys)
    to new ones: the journal keeps each job on its own request's row. On schema 1
    (job_id PRIMARY KEY) the second was not recorded, and its end overwrote the first."""
    with _journal(tmp_path) as journal:
        old, new = _handle(5, "r-0", KEY), _handle(5, "r-2", KEY.upper())
        journal.record_started(0, old, state="Running")
        journal.record_started(2, new, state="Pending")
        journal.record_started(2, new, state="Pending")  # found again: still once
        journal.record_state(2, new, "Running")
        journal.record_final(0, old, outcome="unknown", state=None, result={"info": "lost"})
        jobs = journal.jobs()
        plan = plan_resume(journal.requests(), jobs)
    assert [(j.request_index, j.job_id, j.outcome, j.state) for j in jobs] == [
        (0, 5, "unknown", "Running"),
        (2, 5, None, "Running"),
    ]
    assert [j.handle for j in jobs] == [old, new]
    assert [j.request_index for j in plan.reattach] == [2]
    assert [r.index for r in plan.lookup] == [1]


# The schema async-orch wrote before jobs were identified by request, id and Key.
SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE requests (
    idx INTEGER PRIMARY KEY, reference TEXT NOT NULL UNIQUE, folder TEXT NOT NULL,
    process TEXT NOT NULL, inputs TEXT, timeout REAL, outcome TEXT, info TEXT,
    updated TEXT NOT NULL
);
CREATE TABLE jobs (
    job_id INTEGER PRIMARY KEY, request_idx INTEGER NOT NULL REFERENCES requests (idx),
    handle TEXT NOT NULL, state TEXT, outcome TEXT, result TEXT, updated TEXT NOT NULL
);
CREATE INDEX jobs_by_request ON jobs (request_idx);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL,
    request_idx INTEGER, job_id INTEGER, detail TEXT
);
"""


def write_schema_1_journal(
    path: Path, target: JournalTarget, requests: list[RequestRecord], jobs: list[JobRecord]
) -> None:
    """A journal file as the previous async-orch wrote it (schema 1, WAL mode)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(SCHEMA_1)
    meta = {
        "schema_version": "1",
        "batch_id": "old",
        "created": "2025-01-01T00:00:00Z",
        "url": target.url,
        "organization": target.organization or "",
        "tenant": target.tenant or "",
    }
    db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    for r in requests:
        db.execute(
            "INSERT INTO requests (idx, reference, folder, process, inputs, updated) "
            "VALUES (?, ?, ?, ?, ?, 'then')",
            (r.index, r.reference, r.folder, r.process, json.dumps(r.inputs)),
        )
    for j in jobs:
        db.execute(
            "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, 'then')",
            (j.job_id, j.request_index, json.dumps(j.handle.to_dict()), j.state, j.outcome,
             json.dumps(j.result) if j.result is not None else None),
        )  # fmt: skip
    db.execute("INSERT INTO events (at, kind) VALUES ('then', 'created')")
    db.close()
    path.chmod(0o600)


def _schema_1_jobs() -> list[JobRecord]:
    return [
        JobRecord(job_id=5, request_index=0, handle=_handle(5, "r-0", KEY), state="Successful",
                  outcome="successful", result={"outputs": {"ok": 1}}),
        JobRecord(job_id=6, request_index=1, handle=_handle(6, "r-1"), state="Running",
                  outcome=None, result=None),
    ]  # fmt: skip


def test_a_schema_1_journal_is_read_as_is_and_migrated_in_place_when_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    write_schema_1_journal(path, TARGET, _records(3), _schema_1_jobs())
    with Journal.open(path, read_only=True) as reader:  # `jobs --journal`: no write
        assert reader.jobs() == _schema_1_jobs()
    schema = sqlite3.connect(path)
    assert schema.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
        "1",
    )

    with Journal.open(path, clock=_clock) as journal:  # a resume: migrated first
        assert journal.jobs() == _schema_1_jobs()
        assert journal.requests() == _records(3)
        # What schema 1 could not hold: another request's job with a reused id.
        journal.record_started(2, _handle(5, "r-2", KEY), state="Pending")
        journal.record_final(
            2, _handle(5, "r-2", KEY), outcome="faulted", state="Faulted", result={"job_id": 5}
        )
        jobs = journal.jobs()
        assert [e["kind"] for e in journal.events()] == ["created", "migrated", "started", "final"]
    assert [(j.request_index, j.job_id, j.outcome) for j in jobs] == [
        (0, 5, "successful"),
        (1, 6, None),
        (2, 5, "faulted"),
    ]
    assert schema.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
        "2",
    )
    assert [row[1] for row in schema.execute("PRAGMA index_list(jobs)")] == ["jobs_identity"]
    schema.close()
    with Journal.open(path) as again:  # already schema 2: nothing more to do
        assert [e["kind"] for e in again.events()].count("migrated") == 1
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_damaged_schema_1_journal_is_refused_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    write_schema_1_journal(path, TARGET, _records(2), _schema_1_jobs())
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE jobs SET handle = '{\"job_id\": 6}' WHERE job_id = 6")
    db.close()
    with pytest.raises(JournalDamagedError, match="jobs row job_id=6: handle is not a job handle"):
        Journal.open(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    db.close()
    assert not lock_path(path).exists()


def test_a_journal_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    _journal(tmp_path).close()
    db = sqlite3.connect(tmp_path / "j.sqlite", isolation_level=None)
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(ConfigurationError, match="schema 3; this async-orch reads schema 2"):
        Journal.open(tmp_path / "j.sqlite")


# -- other names of one journal (issue 11, point 1) ------------------------------------


def test_a_journal_with_another_hard_link_is_refused_by_every_name(tmp_path: Path) -> None:
    """SQLite keeps the latest writes in NAME-wal: through another name a resume
    after a kill -9 would not see them, so a second name is refused outright."""
    _journal(tmp_path).close()
    path = tmp_path / "j.sqlite"
    other = tmp_path / "copy" / "other.sqlite"
    other.parent.mkdir()
    os.link(path, other)
    for name in (path, other):
        for read_only in (False, True):
            with pytest.raises(ConfigurationError) as refused:
                Journal.open(name, read_only=read_only)
            message = str(refused.value)
            assert message.startswith(f"journal {name} has 2 hard links (names)"), message
            assert "use the path the journal was created with" in message
            assert "remove the other links" in message and "\n" not in message
            assert not lock_path(name).exists()
    other.unlink()
    with Journal.open(path) as journal:
        assert len(journal.requests()) == 3
