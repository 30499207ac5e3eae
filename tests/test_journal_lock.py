"""The journal lock: one writer at a time, refused at once, gone with its holder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_harness import REPO

from async_orch._errors import ConfigurationError
from async_orch._journal_lock import JournalInUseError, JournalLock, LockHolder, lock_path

SINCE = "2025-01-02T03:04:05Z"

# Takes the lock of the journal named by argv[1], says so on stdout, then holds
# it until killed (or until its stdin closes).
HOLDER = """
import sys
from pathlib import Path
from async_orch._journal_lock import JournalLock
JournalLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def _clock() -> datetime:
    return datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def held(lock: JournalLock) -> bool:
    """``lock.held``, read afresh (mypy would keep an earlier assert's narrowing)."""
    return lock.held


def test_a_second_lock_is_refused_while_the_first_is_held_and_granted_after(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "batch.sqlite"
    first = JournalLock(journal, clock=_clock)
    first.acquire()
    second = JournalLock(journal)
    with pytest.raises(JournalInUseError) as refused:
        second.acquire()
    me = LockHolder(pid=os.getpid(), host=socket.gethostname(), since=SINCE)
    assert refused.value.holder == me
    assert refused.value.journal == journal
    message = str(refused.value)
    assert message.startswith(
        f"journal {journal} is in use by another async-orch process "
        f"(pid {os.getpid()} on host {socket.gethostname()}, since {SINCE}); "
        "only one process may write a journal at a time."
    )
    assert "Wait for that process to end (or stop it), then run this again" in message
    assert "even if it is killed, so there is nothing to clean up" in message
    assert message.endswith(f"To read the journal meanwhile: async-orch jobs --journal {journal}")
    assert "\n" not in message
    assert isinstance(refused.value, ConfigurationError)  # the CLI's exit code 2
    assert not held(second)

    first.release()
    second.acquire()
    assert held(second)
    with pytest.raises(JournalInUseError):
        JournalLock(journal).acquire()
    second.release()


def test_release_removes_the_lock_file_and_a_with_block_releases(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite"
    with JournalLock(journal) as lock:
        assert held(lock)
        assert lock.path == lock_path(journal) == tmp_path.resolve() / "batch.sqlite.lock"
        assert LockHolder.parse(lock.path.read_text(encoding="utf-8")) is not None
    assert not held(lock)
    assert not lock_path(journal).exists()
    lock.release()  # twice is harmless
    with JournalLock(journal):
        pass


def test_a_lock_file_left_behind_locks_nothing(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite"
    lock_path(journal).write_text('{"pid": 1, "host": "gone", "since": "x"}\n', encoding="utf-8")
    with JournalLock(journal, clock=_clock) as lock:
        holder = LockHolder.parse(lock.path.read_text(encoding="utf-8"))
    assert holder == LockHolder(pid=os.getpid(), host=socket.gethostname(), since=SINCE)


def test_a_holder_not_recorded_yet_still_gives_a_clear_message(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite"
    with JournalLock(journal):
        lock_path(journal).write_text("", encoding="utf-8")  # as if caught mid-write
        with pytest.raises(JournalInUseError) as refused:
            JournalLock(journal).acquire()
    assert refused.value.holder is None
    assert str(refused.value).startswith(
        f"journal {journal} is in use by another async-orch process; only one process"
    )


def test_lock_holder_parsing_tolerates_anything() -> None:
    assert LockHolder.parse("[1]") is None
    assert LockHolder.parse("{not json") is None
    odd = LockHolder.parse('{"pid": "7", "host": 3, "since": null}')
    assert odd == LockHolder()
    assert odd.describe() == ""
    assert LockHolder(host="h").describe() == "on host h"
    assert LockHolder(pid=7, since=SINCE).describe() == f"pid 7, since {SINCE}"


def test_a_lock_that_cannot_be_created_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot lock journal .*cannot open") as failed:
        JournalLock(tmp_path / "missing" / "batch.sqlite").acquire()
    assert not isinstance(failed.value, JournalInUseError)


@pytest.mark.slow
def test_the_lock_goes_with_its_holder_when_it_is_killed(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite"
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(journal)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"  # it holds the lock now
        with pytest.raises(JournalInUseError) as refused:
            JournalLock(journal).acquire()
        assert refused.value.holder is not None
        assert refused.value.holder.pid == holder.pid
        assert f"pid {holder.pid} on host {socket.gethostname()}" in str(refused.value)

        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=60) == -signal.SIGKILL
    assert lock_path(journal).exists()  # the killed holder could not remove it...
    with JournalLock(journal, clock=_clock) as lock:  # ...and it locks nothing
        assert lock.held
        assert LockHolder.parse(lock.path.read_text(encoding="utf-8")) == LockHolder(
            pid=os.getpid(), host=socket.gethostname(), since=SINCE
        )


def test_a_symbolic_link_and_a_hard_link_meet_the_same_lock(tmp_path: Path) -> None:
    """Two names of one journal must not let two writers in (issue 11, point 1)."""
    journal = tmp_path / "batch.sqlite"
    journal.write_bytes(b"")
    symlink = tmp_path / "elsewhere" / "via-symlink.sqlite"
    symlink.parent.mkdir()
    symlink.symlink_to(journal)
    hardlink = tmp_path / "elsewhere" / "via-hardlink.sqlite"
    os.link(journal, hardlink)
    assert lock_path(symlink) == lock_path(journal)  # the sidecar of the resolved file

    with JournalLock(symlink, clock=_clock):
        with pytest.raises(JournalInUseError) as by_name:
            JournalLock(journal).acquire()
        assert f"pid {os.getpid()}" in str(by_name.value)  # the same sidecar: holder known
        with pytest.raises(JournalInUseError) as by_inode:
            JournalLock(hardlink).acquire()
        assert "under another name: a hard link to the same file" in str(by_inode.value)
        assert not lock_path(hardlink).exists()  # the refused one left nothing behind
    with JournalLock(hardlink), pytest.raises(JournalInUseError):
        JournalLock(symlink).acquire()  # and the other way round
    with JournalLock(journal):
        pass  # all free again


def test_the_lock_file_is_private(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite"
    old = os.umask(0)
    try:
        with JournalLock(journal) as lock:
            assert lock.path.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
