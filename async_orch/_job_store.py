"""Where a journaled batch keeps what it did, so it can be resumed: the store protocol.

A :class:`JobStore` hears of every request before anything starts (with its
Reference fixed), of every job as soon as it exists, of its states and of its
result; a resume reads it back (:meth:`JobStore.requests`, :meth:`JobStore.jobs`)
and ``_journal.plan_resume`` sorts that into what to report, re-attach to and
look up. :class:`~async_orch._journal.Journal` (SQLite, one file) is the default
store; ``_journaled.py`` runs batches over any store.

A store's writes must be durable when they return: the ``record_*`` calls come
from the event loop's callbacks, before anything else happens to the job, and
exactly-once rests on them. A write that fails raises, and sets ``failure`` so
the batch ends and says so once.

One batch at a time writes a store: a second ``run_jobs``/``resume_jobs`` on a
store a batch of this process is writing is refused (ConfigurationError). Across
processes that is the store's job (the SQLite journal takes a lock): two resumes
of one store would look up the same requests, find nothing, and both start them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from async_orch._jobs import JobHandle
from async_orch._journal import JobRecord, JournalTarget, RequestRecord

__all__ = ["JobStore"]


class JobStore(Protocol):
    """What a journaled batch and its resume need from a store (module docstring)."""

    @property
    def target(self) -> JournalTarget:
        """The tenant the store belongs to; it is never resumed against another."""
        ...

    @property
    def failure(self) -> Exception | None:
        """The first write that failed (every later write raises it), else None."""
        ...

    def record_requests(self, requests: Sequence[RequestRecord]) -> None:
        """A new batch: its requests, each with its Reference, before any starts."""
        ...

    def requests(self) -> list[RequestRecord]:
        """The batch's requests, by index."""
        ...

    def jobs(self) -> list[JobRecord]:
        """Every job recorded, by request index."""
        ...

    def record_started(
        self,
        request_index: int,
        handle: JobHandle,
        *,
        state: str | None,
        attempts: int | None = None,
    ) -> None:
        """A job exists (idempotent: a job found again is kept once); ``attempts``:
        the StartJobs attempts it took (None: not known, e.g. found by Reference).
        :meth:`jobs` gives them back as ``JobRecord.attempts``, so a job reported
        by a later run keeps them."""
        ...

    def record_state(self, request_index: int, handle: JobHandle, state: str) -> None:
        """A job was seen in a new state."""
        ...

    def record_final(
        self,
        request_index: int,
        handle: JobHandle,
        *,
        outcome: str,
        state: str | None,
        result: Mapping[str, Any],
    ) -> None:
        """A job is over: its outcome and result (``JobResult.to_dict()``)."""
        ...

    def record_not_started(
        self, request_index: int, *, info: str, outcome: str = "not_started"
    ) -> None:
        """A request started no job, or may have (``outcome`` "uncertain")."""
        ...

    def record_event(self, kind: str, **detail: Any) -> None:
        """A run-level event: resumed, interrupted, finished, abandoned."""
        ...

    def last_run_finished(self) -> bool:
        """Whether the last run ended by itself (no StartJobs of it can be in flight)."""
        ...
