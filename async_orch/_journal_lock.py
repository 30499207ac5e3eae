"""An exclusive lock on a dispatch journal: one writing process at a time.

Why: a resume looks up by Reference the requests with no job recorded, and
starts those it does not find. Two processes resuming one journal at once
would look up the same requests and could both start one of them: a job
started twice. So whoever writes a journal (a new dispatch, a resume, ``stop``,
``jobs --refresh``) holds this lock for as long as it has the journal open, and
a second writer is refused at once, never made to wait, with a message naming
the process that holds it. Readers take no lock.

How: ``flock(LOCK_EX | LOCK_NB)`` on a sidecar file ``<journal>.lock``. The
kernel drops the lock when the holding process ends, however it ends (SIGKILL
included), so a crash never leaves a journal locked and there is nothing to
clean up. The file holds the holder's pid, host name and locking time, for the
message only: the kernel lock alone decides, the file's content never does.
On a network file system the lock is as good as that file system's locking.

The file is removed on release while still locked. A process that opened it
just before then gets the lock on a file that no longer has that name: it
notices (the path names another file, or none) and starts over, so two
processes never each hold a different file of the same name.

Windows has no ``fcntl``: there ``msvcrt.locking`` locks one byte of the file
(far past the holder's details, which stay readable). Windows also releases
it when the process ends. The file is removed after release unless another
process has it open, in which case it stays, which is harmless.

A journal has more than one name when it is reached through a symbolic link
or a hard link, and a lock on a name would let two processes in through two
names (two resumes of one journal started 183 jobs for 100 requests that way).
So the lock is on the file, not on a name:

* the sidecar is named after the journal's resolved path (symbolic links
  followed), so every symbolic link to a journal meets the same sidecar;
* where the kernel has open-file-description locks (Linux), the journal file
  itself is locked too, by device and inode, which no other name escapes
  (a hard link, a bind mount). It is a write lock on one byte far past
  anything SQLite locks or writes (:data:`_JOURNAL_LOCK_OFFSET`), so it never
  gets in SQLite's way; and as an OFD lock it belongs to our descriptor, so
  SQLite closing its own descriptors of the file never drops it. Elsewhere
  (macOS, Windows) only the sidecar locks, and a hard link is not caught by
  the lock; :meth:`Journal.open <async_orch._journal.Journal.open>` refuses a
  journal with a second hard link anyway (made before it opened the file), and
  a resume refuses a journal showing two jobs for one request.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from async_orch._errors import ConfigurationError

if sys.platform == "win32":
    import msvcrt

    #: The byte locked on Windows: past the holder's details, so they stay readable.
    _WINDOWS_LOCK_OFFSET = 1 << 20

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EDEADLOCK):
                return False
            raise
        return True

    def _unlock_and_close(fd: int, path: Path) -> None:
        with contextlib.suppress(OSError):
            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        os.close(fd)
        # An open file cannot be removed on Windows: if another process opened
        # it meanwhile, it stays (and that process may lock it, which is fine).
        with contextlib.suppress(OSError):
            os.unlink(path)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock_and_close(fd: int, path: Path) -> None:
        # Remove the file while still holding it (see the module docstring);
        # closing the descriptor then releases the lock.
        if _same_file(fd, path):
            with contextlib.suppress(OSError):
                os.unlink(path)
        os.close(fd)


#: Where the journal file itself is locked: one byte at 1 TiB, far past SQLite's
#: lock bytes (at 1 GiB) and past any journal's end (locking there grows nothing).
_JOURNAL_LOCK_OFFSET = 1 << 40


def _lock_journal_file(journal: Path) -> int | None:
    """Lock the journal file's inode; its descriptor, None where this is not
    supported, or raise BlockingIOError if another descriptor holds it."""
    ofd_setlk = getattr(fcntl, "F_OFD_SETLK", None) if sys.platform != "win32" else None
    if ofd_setlk is None:
        return None
    # Closing any descriptor of a file drops the process's classic POSIX locks on
    # it, SQLite's included: so this one is opened before SQLite opens the file
    # and closed after it closed it (Journal.create, open and close keep that order).
    fd = os.open(journal, os.O_RDWR)
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks).
    request = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, _JOURNAL_LOCK_OFFSET, 1, 0)
    try:
        fcntl.fcntl(fd, ofd_setlk, request)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise BlockingIOError(exc.errno, exc.strerror) from exc
        raise
    return fd


__all__ = ["JournalInUseError", "JournalLock", "LockHolder", "lock_path"]


def lock_path(journal: Path) -> Path:
    """The sidecar lock file of ``journal``: ``<journal>.lock`` beside the file
    it resolves to (so every symbolic link to a journal has the same one)."""
    resolved = journal.resolve()
    return resolved.with_name(resolved.name + ".lock")


@dataclass(frozen=True, slots=True, kw_only=True)
class LockHolder:
    """Who holds a journal's lock, as the holder wrote it into the lock file."""

    pid: int | None = None
    host: str | None = None
    since: str | None = None  # ISO 8601, UTC

    def describe(self) -> str:
        """E.g. ``pid 4242 on host build-01, since 2025-01-02T03:04:05Z``."""
        who = " ".join(
            part
            for part in (
                f"pid {self.pid}" if self.pid is not None else "",
                f"on host {self.host}" if self.host else "",
            )
            if part
        )
        when = f"since {self.since}" if self.since else ""
        return ", ".join(part for part in (who, when) if part)

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        """The holder recorded in a lock file; None if unreadable (being written)."""
        try:
            data: Any = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        pid, host, since = data.get("pid"), data.get("host"), data.get("since")
        return cls(
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            host=host if isinstance(host, str) else None,
            since=since if isinstance(since, str) else None,
        )


class JournalInUseError(ConfigurationError):
    """Another process holds the journal's lock (it is dispatching, resuming or stopping).

    Attributes:
        journal: the journal's path.
        holder: who holds it, if the lock file could be read.
    """

    def __init__(
        self, journal: Path, holder: LockHolder | None, *, other_name: bool = False
    ) -> None:
        self.journal = journal
        self.holder = holder
        described = holder.describe() if holder is not None else ""
        if other_name:  # the file's own lock: its holder wrote its details elsewhere
            described = "which opened it under another name: a hard link to the same file"
        who = f" ({described})" if described else ""
        super().__init__(
            f"journal {journal} is in use by another async-orch process{who}; only one "
            "process may write a journal at a time. Wait for that process to end (or stop "
            "it), then run this again: its lock goes away with it, even if it is killed, "
            "so there is nothing to clean up. To read the journal meanwhile: "
            f"async-orch jobs --journal {journal}"
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _read_holder(fd: int) -> LockHolder | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
    except OSError:
        return None
    return LockHolder.parse(data.decode("utf-8", errors="replace"))


class JournalLock:
    """The exclusive, process-level lock on one journal (see the module docstring).

    ``acquire()`` fails at once with :class:`JournalInUseError` if another
    process (or another ``JournalLock`` of this one) holds it; ``release()``
    (or the end of a ``with`` block) gives it back. A process that dies
    releases it too.

    Args:
        journal: the journal's path; the lock file is :func:`lock_path` of it.
        clock: the wall clock for the time recorded in the lock file (for tests).
    """

    def __init__(self, journal: Path, *, clock: Callable[[], datetime] = _now) -> None:
        self.journal = journal
        self.path = lock_path(journal)
        self._clock = clock
        self._fd: int | None = None
        self._file_fd: int | None = None  # the journal file's own lock, if held

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`JournalInUseError` without waiting.

        If the journal exists its file is locked too (see the module docstring);
        a journal created after this call is locked with :meth:`lock_file`.
        Raises ConfigurationError if the lock file cannot be created or locked at
        all (a read-only directory, say).
        """
        if self._fd is not None:
            raise RuntimeError(f"the lock of {self.journal} is already held by this object")
        self._lock_sidecar()
        if self.journal.exists():
            try:
                self.lock_file()
            except BaseException:
                self.release()
                raise

    def lock_file(self) -> None:
        """Lock the journal file itself (by device and inode), once it exists."""
        if self._fd is None or self._file_fd is not None:
            raise RuntimeError(f"lock_file of {self.journal} needs the lock, once")
        try:
            self._file_fd = _lock_journal_file(self.journal)
        except BlockingIOError:
            raise JournalInUseError(self.journal, None, other_name=True) from None
        except OSError as exc:
            raise ConfigurationError(
                f"cannot lock journal {self.journal}: {exc.strerror or exc}"
            ) from exc

    def _lock_sidecar(self) -> None:
        while True:  # more than once only if the holder released it while we opened it
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot lock journal {self.journal}: cannot open {self.path}: "
                    f"{exc.strerror or exc}"
                ) from exc
            try:
                locked = _try_lock(fd)
            except OSError as exc:
                os.close(fd)
                raise ConfigurationError(
                    f"cannot lock journal {self.journal} ({self.path}): {exc.strerror or exc}"
                ) from exc
            if not locked:
                holder = _read_holder(fd)
                os.close(fd)
                raise JournalInUseError(self.journal, holder)
            if _same_file(fd, self.path):
                break
            os.close(fd)  # removed or replaced by its last holder meanwhile: start over
        self._fd = fd
        if hasattr(os, "fchmod"):  # ours now: 0600 whatever the umask (it names us)
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o600)
        self._write_holder(fd)

    def release(self) -> None:
        """Give the lock back and remove the lock file (does nothing if not held)."""
        file_fd, self._file_fd = self._file_fd, None
        if file_fd is not None:
            os.close(file_fd)  # closing it drops its lock (an OFD lock)
        fd, self._fd = self._fd, None
        if fd is not None:
            _unlock_and_close(fd, self.path)

    def __enter__(self) -> JournalLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _write_holder(self, fd: int) -> None:
        """Record who holds the lock, for the message of whoever is refused.

        Best effort: the lock holds even if this write fails (a full disk).
        """
        since = self._clock().isoformat(timespec="seconds").replace("+00:00", "Z")
        details = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(details) + "\n").encode("utf-8"))
