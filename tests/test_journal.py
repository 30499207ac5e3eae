"""The dispatch journal: committed as it goes, planned for resume (plain sync tests)."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from async_orch.batch import JobHandle
from async_orch.cli.profiles import merge_environment, profile_environment
from async_orch.errors import ConfigurationError
from async_orch.journal import Journal, JournalTarget, RequestRecord, plan_resume
from async_orch.journal_lock import JournalInUseError, JournalLock, lock_path

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


def _handle(job_id: int, reference: str) -> JobHandle:
    return JobHandle(
        job_id=job_id,
        job_key=None,
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
    journal.record_final(501, outcome="successful", state="Successful", result={"outputs": {}})
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
        journal.record_state(9, "Running")
        journal.record_state(9, "Running")
        journal.record_final(9, outcome="faulted", state="Faulted", result={"info": "boom"})
        journal.record_state(9, "Running")
        (job,) = journal.jobs()
        assert (job.state, job.outcome, job.result) == ("Faulted", "faulted", {"info": "boom"})
        assert [e["kind"] for e in journal.events()] == ["created", "started", "state", "final"]


def test_plan_resume_sorts_final_running_and_unknown(tmp_path: Path) -> None:
    with _journal(tmp_path, n=4) as journal:
        journal.record_started(0, _handle(10, "r-0"), state=None)
        journal.record_final(10, outcome="successful", state="Successful", result={})
        journal.record_started(1, _handle(11, "r-1"), state="Running")
        journal.record_not_started(3, info="lookup failed")
        plan = plan_resume(journal.requests(), journal.jobs())
    assert [j.job_id for j in plan.finished] == [10]
    assert [j.job_id for j in plan.reattach] == [11]
    assert [r.reference for r in plan.lookup] == ["r-2", "r-3"]


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
