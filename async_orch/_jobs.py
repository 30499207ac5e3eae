"""What users hand the dispatcher and what they get back (pure data).

- :class:`JobRequest`: one process to start in one folder, with its inputs.
- :class:`JobHandle`: a started job, small and serialisable, so a service can
  start now, persist the handle, and wait later or elsewhere.
- :class:`JobResult`: how a job ended (or why it never started), with its
  parsed OutputArguments.
- :class:`Progress`: counts by state, overall and per folder, for progress
  displays.
- :class:`Abandoned`: what a batch that ended early left behind.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from async_orch._errors import InvalidRequestError, RequestError
from async_orch._jsonvalues import text_problem
from async_orch._models import (
    COUNT_STRATEGIES,
    CreatedJob,
    Folder,
    Job,
    JobPriority,
    StartRequest,
    StartStrategy,
    dump_input_arguments,
    id_tuple,
    prechecked_start_request,
    reference_problem,
)
from async_orch._records import record_builder
from async_orch._states import JobState

__all__ = [
    "Abandoned",
    "JobHandle",
    "JobRequest",
    "JobResult",
    "Outcome",
    "Progress",
    "Summary",
    "count_jobs",
    "iso_text",
]


def count_jobs(count: int) -> str:
    """``"1 job"``, ``"2 jobs"``: a count of jobs, as a sentence says it."""
    return f"{count} job" if count == 1 else f"{count} jobs"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRequest:
    """One process to start in one folder.

    Attributes:
        process: the process (release) name as shown in Orchestrator, its release
            Key or its ProcessKey.
        folder: the folder's full path ("Finance/Invoices"), Key (GUID) or Id;
            None: the client's default folder (``Settings.folder``, read from
            UIPATH_FOLDER_PATH or UIPATH_FOLDER_KEY).
        inputs: InputArguments as a dict; sent as JSON text (at most 10,000 chars).
        reference: a correlation id (<= 128 chars), unique within the batch. When
            None a unique one is generated. It is how a start whose response was
            lost is found again, so a job is never started twice.
        jobs_count: start this many identical jobs with one StartJobs call.
        priority: a [`JobPriority`][async_orch.JobPriority], or its name ("Low",
            "Normal", "High", in any case); None: the process's own.
        specific_priority: 1..100, finer than priority.
        strategy: a [`StartStrategy`][async_orch.StartStrategy], or its name;
            ModernJobsCount suits modern folders.
        robot_ids: robot selection, as in Orchestrator's StartProcessDto.
        machine_session_ids: robot selection, as in Orchestrator's StartProcessDto.
        runtime_type: robot selection, as in Orchestrator's StartProcessDto.
        timeout: seconds this job may take from its start before it is timed out.
    """

    process: str
    folder: int | str | None = None
    inputs: Mapping[str, Any] | None = None
    reference: str | None = None
    jobs_count: int = 1
    priority: JobPriority | str | None = None
    specific_priority: int | None = None
    strategy: StartStrategy | str = StartStrategy.MODERN_JOBS_COUNT
    robot_ids: Sequence[int] | None = None
    machine_session_ids: Sequence[int] | None = None
    runtime_type: str | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        # The shape only (cheap, at every construction); what StartJobs would
        # refuse (priority, jobs_count, inputs...) is checked by check(), which
        # the dispatcher runs on the whole batch before anything starts.
        # Typed as object: these are checks of what callers pass at run time.
        process: object = self.process
        folder: object = self.folder
        inputs: object = self.inputs
        reference: object = self.reference
        if not isinstance(process, str):
            raise InvalidRequestError(
                f"JobRequest.process must be the process name (a string), "
                f"got {type(process).__name__}"
            )
        if folder is not None and (
            isinstance(folder, bool) or not isinstance(folder, int | str) or folder == ""
        ):
            raise InvalidRequestError(
                "JobRequest.folder must be a folder path, Key or Id, "
                f"got {folder!r} ({type(folder).__name__})"
            )
        if inputs is not None and not isinstance(inputs, Mapping):
            hint = " (pass a dict, not JSON text)" if isinstance(inputs, str | bytes) else ""
            raise InvalidRequestError(
                "JobRequest.inputs must be a dict of argument name to value"
                f"{hint}, got {type(inputs).__name__}"
            )
        if reference is not None and not isinstance(reference, str):
            raise InvalidRequestError(
                f"JobRequest.reference must be a string, got {type(reference).__name__}"
            )
        for name, text in (("process", process), ("folder", folder), ("reference", reference)):
            # A lone surrogate would fail deep inside, encoding a URL or a header.
            # (ASCII has none: tested here, not by a call, for every request built.)
            if (
                isinstance(text, str)
                and not text.isascii()
                and (problem := text_problem(text)) is not None
            ):
                raise InvalidRequestError(f"JobRequest.{name} {problem}")
        if self.timeout is not None:
            check_seconds(self.timeout, "JobRequest.timeout")
        # A name given as text becomes its enum member (so the field says what it
        # is); one that names none stays as given, for check() to refuse by name.
        object.__setattr__(self, "strategy", _as_member(StartStrategy, self.strategy))
        if self.priority is not None:
            object.__setattr__(self, "priority", _as_member(JobPriority, self.priority))

    def check(self) -> None:
        """Refuse what StartJobs would refuse for this request (strategy, priority,
        robot ids, jobs_count, inputs that are not JSON or over 10,000 characters),
        without sending anything.

        Raises:
            InvalidRequestError: what is wrong and how to fix it.
        """
        _checked_inputs_json(self, set())

    def start_request(self, *, release_key: str, reference: str | None) -> StartRequest:
        """The StartJobs body for this request once its release is known.

        Raises:
            InvalidRequestError: see [`check`][async_orch.JobRequest.check].
        """
        return start_body(self, release_key=release_key, reference=reference)


def start_body(
    request: JobRequest,
    *,
    release_key: str,
    reference: str | None,
    inputs_json: str | None = None,
    checked: bool = False,
) -> StartRequest:
    """:meth:`JobRequest.start_request`, given the request's inputs already encoded
    (``CheckedRequests.inputs_json``) so they are not encoded again; None: encode them.

    ``checked``: the request passed :func:`checked_requests` (``inputs_json`` is then
    its entry there, None meaning no inputs) and ``reference`` passed
    ``batch_references``: the body is built without checking the same fields again.

    Raises:
        InvalidRequestError: see :meth:`JobRequest.check`.
    """
    strategy, priority = request.strategy, request.priority
    if (
        checked
        # A count strategy without robot ids, the usual request: the strategy checks
        # cannot come out otherwise now (an id list given may have changed since,
        # and the others tie it to the strategy: they take the full build).
        and strategy in COUNT_STRATEGIES
        and not request.robot_ids
        and (priority is None or isinstance(priority, JobPriority))
        and isinstance(release_key, str)
        and release_key.strip()
        and (request.inputs is None) == (inputs_json is None)
    ):
        machines = request.machine_session_ids
        return prechecked_start_request(
            release_key=release_key,
            strategy=strategy,  # type: ignore[arg-type]  # a member: COUNT_STRATEGIES
            jobs_count=request.jobs_count,
            robot_ids=None,
            # Re-read (the list may have changed since): only its ids are checked.
            machine_session_ids=id_tuple(machines, "machine_session_ids") if machines else None,
            job_priority=priority,
            specific_priority_value=request.specific_priority,
            runtime_type=request.runtime_type,
            reference=reference,
            input_arguments=dict(request.inputs) if request.inputs is not None else None,
            input_arguments_json=inputs_json,
        )
    # A name that is no member is refused by StartRequest, with the choices.
    return StartRequest(
        release_key=release_key,
        strategy=request.strategy,  # type: ignore[arg-type]
        jobs_count=request.jobs_count,
        robot_ids=list(request.robot_ids) if request.robot_ids else None,
        machine_session_ids=list(request.machine_session_ids)
        if request.machine_session_ids
        else None,
        job_priority=request.priority,  # type: ignore[arg-type]
        specific_priority_value=request.specific_priority,
        runtime_type=request.runtime_type,
        reference=reference,
        input_arguments=dict(request.inputs) if request.inputs is not None else None,
        input_arguments_json=inputs_json,
    )


def _checked_inputs_json(request: JobRequest, shapes: set[tuple[object, ...]]) -> str | None:
    """Check ``request`` (:meth:`JobRequest.check`); its inputs as JSON text.

    ``shapes``: the shapes (:func:`_shape_of`) of the batch's requests checked so
    far (this one's is added once checked). A request of one of them differs from a
    checked one only in its Reference and inputs, so only those are checked, as the
    full check does, in its order."""
    reference = request.reference or None
    shape = _shape_of(request)
    if shape is not None and shape in shapes:
        if reference is not None and (problem := reference_problem(reference)) is not None:
            raise InvalidRequestError(f"reference {problem}")
        # A copy, as the full check takes: a Mapping's own iteration is not trusted.
        return None if request.inputs is None else dump_input_arguments(dict(request.inputs))
    body = start_body(request, release_key=_ANY_RELEASE_KEY, reference=reference)
    if shape is not None:
        shapes.add(shape)
    return body.input_arguments_json


def _shape_of(request: JobRequest) -> tuple[object, ...] | None:
    """What the full check of ``request`` looks at besides its Reference and inputs,
    each value with its exact type (True is not 1 here). None, to check in full every
    time, for a request with robot or machine ids (lists, maybe changed since) or a
    value of any other type than the plain ones (whose equality may not be plain)."""
    if request.robot_ids or request.machine_session_ids:
        return None
    fields = (
        request.strategy,
        request.jobs_count,
        request.priority,
        request.specific_priority,
        request.runtime_type,
    )
    types = tuple(map(type, fields))
    if not _SHAPE_TYPES.issuperset(types):
        return None
    return tuple(zip(types, fields, strict=True))  # (no generator: every request runs this)


# The types of a shape's values that compare and hash as plain values.
_SHAPE_TYPES = frozenset({StartStrategy, JobPriority, int, float, str, type(None)})


_Member = TypeVar("_Member", StartStrategy, JobPriority)


def _as_member(kind: type[_Member], value: _Member | str) -> _Member | str:
    """``value`` as a member of ``kind`` when it names one (in any case), else as is."""
    if isinstance(value, kind) or not isinstance(value, str):
        return value
    for member in kind:
        if member.value.lower() == value.lower():
            return member
    return value


# Stands for the release key while checking a request: no key is known before
# its release is resolved, and no check depends on the key's value.
_ANY_RELEASE_KEY = "unresolved"

#: How many mistakes one InvalidRequestError lists (one line each).
MAX_REPORTED_MISTAKES = 20


class CheckedRequests(list[JobRequest]):
    """A batch's requests once :func:`checked_requests` passed them, with each one's
    inputs as the JSON text StartJobs gets: checking encodes them, and the
    upload-scope check and the start use that text, so each is encoded once a batch."""

    def __init__(self, requests: list[JobRequest], inputs_json: list[str | None]) -> None:
        super().__init__(requests)
        self.inputs_json = inputs_json


def checked_requests(requests: Sequence[JobRequest]) -> CheckedRequests:
    """``requests`` as a list, each a :class:`JobRequest` that passes
    :meth:`JobRequest.check`: a batch is refused as a whole, before anything starts.
    A :class:`CheckedRequests` is already checked: it is returned as it is.

    Raises:
        InvalidRequestError: one line per mistake (up to 20), naming ``requests[i]``.
    """
    if isinstance(requests, CheckedRequests):
        return requests
    listed = checked_items(requests, JobRequest, "requests")
    inputs_json: list[str | None] = []
    mistakes: list[str] = []
    position_of_reference: dict[str, int] = {}
    shapes: set[tuple[object, ...]] = set()  # checked in full already
    for position, request in enumerate(listed):
        if request.reference is not None:
            first = position_of_reference.setdefault(request.reference, position)
            if first != position:
                mistakes.append(
                    f"requests[{position}]: reference {request.reference!r} is also "
                    f"requests[{first}]'s; References must be unique in a batch, so a lost "
                    "start can be found again"
                )
        if request.folder is None:
            mistakes.append(
                f"requests[{position}]: no folder: give JobRequest(folder=...) or a default "
                "folder (Settings(folder=...), UIPATH_FOLDER_PATH or a profile's folder)"
            )
            continue
        try:
            inputs_json.append(_checked_inputs_json(request, shapes))
        except InvalidRequestError as exc:
            mistakes.append(f"requests[{position}]: {exc}")
    if mistakes:
        raise InvalidRequestError(summarize_mistakes(mistakes, "requests"))
    return CheckedRequests(listed, inputs_json)


def with_default_folder(requests: Sequence[JobRequest], folder: str | None) -> Sequence[JobRequest]:
    """``requests`` with ``folder`` (the client's default) in those that name none."""
    if folder is None or not isinstance(requests, Sequence):
        return requests  # anything else is for checked_requests to refuse, by name
    return [
        replace(r, folder=folder) if isinstance(r, JobRequest) and r.folder is None else r
        for r in requests
    ]


def folder_of(request: JobRequest) -> int | str:
    """The folder of a request that passed :func:`checked_requests`."""
    if request.folder is None:  # checked_requests refuses it before anything starts
        raise InvalidRequestError(f"no folder in {request!r}")
    return request.folder


def summarize_mistakes(mistakes: Sequence[str], where: str) -> str:
    """The first :data:`MAX_REPORTED_MISTAKES` mistakes, one a line, and how many more."""
    lines = list(mistakes[:MAX_REPORTED_MISTAKES])
    more = len(mistakes) - len(lines)
    if more:
        lines.append(f"... and {more:,} more in {where}; nothing was started")
    return "\n".join(lines)


def check_seconds(value: object, name: str, *, allow_zero: bool = False) -> None:
    """Refuse a duration that is not a finite number of seconds, > 0 (or >= 0 with
    ``allow_zero``): a negative or NaN timeout would start jobs only to abandon them."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        above_floor = value >= 0 if allow_zero else value > 0
        if above_floor and value < math.inf:  # False for NaN too
            return
    what = "zero or a positive" if allow_zero else "a positive"
    limit = "" if allow_zero else " (None for no limit)"
    raise InvalidRequestError(f"{name} must be {what} number of seconds{limit}, got {value!r}")


_T = TypeVar("_T")


def checked_items(items: Sequence[_T], kind: type[_T], name: str) -> list[_T]:
    """``items`` as a list, refused before anything starts unless each is a ``kind``."""
    if isinstance(items, kind | str | Mapping):
        raise InvalidRequestError(
            f"{name} must be a list of {kind.__name__}, got a {type(items).__name__}"
        )
    listed = list(items)
    for position, item in enumerate(listed):
        if not isinstance(item, kind):
            raise InvalidRequestError(
                f"{name}[{position}] is a {type(item).__name__}, not a {kind.__name__}"
            )
    return listed


@dataclass(frozen=True, slots=True, kw_only=True)
class JobHandle:
    """A started job: enough to find it again, from this process or another."""

    job_id: int
    job_key: str | None
    folder_id: int
    folder_key: str | None
    folder_path: str
    reference: str | None
    created: datetime | None = None

    @classmethod
    def of(
        cls, job: Job | CreatedJob, folder: Folder, *, reference: str | None = None
    ) -> JobHandle:
        """The handle of ``job``, created in ``folder`` (with ``reference`` if the
        job's own record does not give one)."""
        # One a started job: built by _records unless for a subclass.
        build = _build_handle if cls is JobHandle else cls
        return build(
            job_id=job.id,
            job_key=job.key,
            folder_id=folder.id,
            folder_key=folder.key,
            folder_path=folder.fully_qualified_name,
            reference=job.reference or reference,
            created=job.creation_time,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for journals and queues)."""
        return {
            "job_id": self.job_id,
            "job_key": self.job_key,
            "folder_id": self.folder_id,
            "folder_key": self.folder_key,
            "folder_path": self.folder_path,
            "reference": self.reference,
            "created": self.created.isoformat() if self.created else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobHandle:
        """The handle [`to_dict`][async_orch.JobHandle.to_dict] gave.

        Raises:
            ValueError: ``data`` is not such a dict; the message names the field.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a job handle is a dict from JobHandle.to_dict, not {data!r:.80}")
        missing = [name for name in ("job_id", "folder_id") if data.get(name) is None]
        if missing:
            raise ValueError(
                f"a job handle needs {' and '.join(repr(m) for m in missing)} "
                f"(as JobHandle.to_dict gives them); got the fields {sorted(data)}"
            )
        created = data.get("created")
        return cls(
            job_id=int(data["job_id"]),
            job_key=data.get("job_key"),
            folder_id=int(data["folder_id"]),
            folder_key=data.get("folder_key"),
            folder_path=str(data.get("folder_path", "")),
            reference=data.get("reference"),
            created=datetime.fromisoformat(created) if created else None,
        )


_build_handle = record_builder(JobHandle)


class Outcome(enum.StrEnum):
    """How a request ended, from the caller's point of view."""

    SUCCESSFUL = "successful"  # the job ended Successful
    FAULTED = "faulted"  # the job ended Faulted
    STOPPED = "stopped"  # the job ended Stopped (by us on timeout, or by someone else)
    TIMED_OUT = "timed_out"  # a deadline passed; the job may still be running (see state)
    # Pending longer than pending_timeout: no robot picked it up (error: a
    # StuckPendingError saying how long and where); stopped if asked (see state).
    STUCK_PENDING = "stuck_pending"
    # Suspended at its deadline, with StopPolicy(on_suspended="report"): left
    # suspended (waiting for a person or an event), never stopped (see state).
    SUSPENDED = "suspended"
    NOT_STARTED = "not_started"  # no job was created (see error)
    # StartJobs got no clear answer and a lookup of its Reference failed: jobs may
    # exist (error is an UncertainStartError naming the Reference); never re-posted.
    UNCERTAIN = "uncertain"
    UNKNOWN = "unknown"  # a state this version does not know, or the job is gone (see error)

    @classmethod
    def of_final(cls, state: JobState) -> Outcome | None:
        """The outcome of a job that ended in ``state`` (None: it has not ended)."""
        return _FINAL_OUTCOMES.get(state)


_FINAL_OUTCOMES = {
    JobState.SUCCESSFUL: Outcome.SUCCESSFUL,
    JobState.FAULTED: Outcome.FAULTED,
    JobState.STOPPED: Outcome.STOPPED,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """The result of one job (or of one request that started no job)."""

    index: int  # position of the request in the batch (then in ``handles``)
    request: JobRequest | None  # None for a job given by handle (wait only)
    outcome: Outcome
    handle: JobHandle | None = None
    job: Job | None = None  # last known view of the job
    error: RequestError | None = None
    attempts: int = 0  # StartJobs attempts (including reconciliations)
    detected: datetime | None = None  # when async-orch saw the final state
    timed_out: bool = False  # a deadline passed (TIMED_OUT, or STOPPED by async-orch)
    last_state: JobState | None = None  # the last state seen (a timed-out job's included)
    # The last stop async-orch sent ("SoftStop" or "Kill"; None: none). SoftStop only
    # asks the workflow to stop (orchestrator-api.md §8): a job may still end
    # Successful or Faulted after it, and ``outcome`` is then what it really did.
    stop_sent: str | None = None
    # Why a job reported without ending was left (timed_out: the limit that passed
    # and the last state seen); shown as ``info`` when there is no other.
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SUCCESSFUL

    @property
    def finished_despite_stop(self) -> bool:
        """Asked to stop, but it ended Successful or Faulted (it did not stop)."""
        return self.stop_sent is not None and self.outcome in (
            Outcome.SUCCESSFUL,
            Outcome.FAULTED,
        )

    @property
    def state(self) -> JobState | None:
        """The job's state: from its full record when read, else the last one seen."""
        return self.job.state if self.job else self.last_state

    @property
    def outputs(self) -> dict[str, Any] | None:
        """Parsed OutputArguments (None when the job produced none)."""
        return self.job.output_arguments if self.job else None

    @property
    def job_id(self) -> int | None:
        """The job's Id (None: no job was started)."""
        return self.handle.job_id if self.handle else None

    @property
    def key(self) -> str | None:
        """The job's Key (a GUID), if the server gave one."""
        return self.handle.job_key if self.handle else None

    @property
    def reference(self) -> str | None:
        """The Reference the job was started with (the request's, when no job was)."""
        if self.handle is not None and self.handle.reference is not None:
            return self.handle.reference
        return self.request.reference if self.request else None

    @property
    def folder(self) -> str | None:
        """The folder's full path (the request's folder as given, when no job was)."""
        if self.handle is not None:
            return self.handle.folder_path
        return str(self.request.folder) if self.request else None

    @property
    def process(self) -> str | None:
        """The process (release) name."""
        if self.request is not None and self.request.process:
            return self.request.process
        return self.job.release_name if self.job else None

    @property
    def created(self) -> datetime | None:
        """When Orchestrator created the job."""
        if self.job is not None and self.job.creation_time is not None:
            return self.job.creation_time
        return self.handle.created if self.handle else None

    @property
    def started(self) -> datetime | None:
        """When the job started running (None: it did not, or it was not read)."""
        return self.job.start_time if self.job else None

    @property
    def ended(self) -> datetime | None:
        """When the job ended (None: it has not, or it was not read)."""
        return self.job.end_time if self.job else None

    @property
    def info(self) -> str | None:
        """The job's Info (its completion or error message), our error, or our note."""
        if self.error is not None:
            return str(self.error)
        if self.note is not None and not (self.job is not None and self.job.info):
            return self.note
        return self.job.info if self.job else None

    def to_dict(self) -> dict[str, Any]:
        """The result as a flat, JSON-ready dict: the columns of the CLI's output
        and of the journal (times as ISO 8601 text in UTC)."""
        return {
            "index": self.index,
            "reference": self.reference,
            "folder": self.folder,
            "process": self.process,
            "job_id": self.job_id,
            "job_key": self.key,
            "outcome": self.outcome.value,
            # A job past its deadline was not read in full: its last state seen.
            "state": self.job.raw_state if self.job else (self.state.value if self.state else None),
            "info": self.info,
            "outputs": self.outputs,
            "created": iso_text(self.job.creation_time if self.job else None),
            "started": iso_text(self.started),
            "ended": iso_text(self.ended),
            "detected": iso_text(self.detected),
            "attempts": self.attempts,
            # The last stop async-orch sent (SoftStop/Kill): with outcome successful or
            # faulted, the job was asked to stop but finished anyway.
            "stop_sent": self.stop_sent,
        }


def iso_text(value: datetime | None) -> str | None:
    """A time as results write it (ISO 8601, ``Z`` for UTC), or None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass(slots=True)
class Progress:
    """Counts by state, overall and per folder (full path); updated as events arrive.

    The keys of ``by_state`` are: ``"queued"`` (not started yet), a job state
    (``"Pending"``, ``"Running"``, ...) while a job runs, then an
    [`Outcome`][async_orch.Outcome] value once it is over. ``total`` is the number of results
    the batch will give, so at the end ``finished == total``. A state no job is
    in any more is dropped: every count shown is at least 1.
    """

    total: int = 0
    by_state: Counter[str] = field(default_factory=Counter)
    by_folder: dict[str, Counter[str]] = field(default_factory=dict)
    # Per folder, the jobs seen Pending and since when (the dispatcher's clock,
    # time.monotonic by default), oldest first: see oldest_pending(). Not in the repr:
    # one entry a job (thousands, printed on every change by Hooks(on_progress=print)).
    pending_since: dict[str, dict[int, float]] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        """One short line, e.g. ``120/300 done: 118 successful, 2 faulted; 180 Running``."""
        ended = [o.value for o in Outcome if self.by_state[o.value]]
        line = f"{self.finished}/{self.total} done"
        if ended:
            line += ": " + ", ".join(f"{self.by_state[o]} {o}" for o in ended)
        live = [(s, n) for s, n in self.by_state.items() if n and s not in ended]
        if live:
            line += "; " + ", ".join(f"{n} {s}" for s, n in live)
        return line

    def move(self, folder: str, old: str | None, new: str, count: int = 1) -> None:
        """Record that ``count`` jobs of ``folder`` went from ``old`` to ``new``."""
        # Runs at every change of every job: _folder_counts and _take inlined.
        by_state = self.by_state
        per_folder = self.by_folder.get(folder)
        if per_folder is None:
            per_folder = self.by_folder[folder] = Counter()
        if old is not None:
            left = by_state.get(old, 0) - count
            if left:
                by_state[old] = left
            else:
                del by_state[old]
            left = per_folder.get(old, 0) - count
            if left:
                per_folder[old] = left
            else:
                del per_folder[old]
        # dict.get, not Counter's += : no __missing__ call for a state new to the count.
        by_state[new] = by_state.get(new, 0) + count
        per_folder[new] = per_folder.get(new, 0) + count

    def forget(self, folder: str, state: str, count: int = 1) -> None:
        """Drop ``count`` jobs counted under ``state`` (they are recounted elsewhere)."""
        _take(self.by_state, state, count)
        _take(self._folder_counts(folder), state, count)

    def _folder_counts(self, folder: str) -> Counter[str]:
        # Not setdefault(folder, Counter()): that builds a Counter on every event.
        counts = self.by_folder.get(folder)
        if counts is None:
            counts = self.by_folder[folder] = Counter()
        return counts

    def note_pending(self, folder: str, job_id: int, pending: bool, now: float) -> None:
        """Record whether job ``job_id`` of ``folder`` is Pending (seen so at ``now``)."""
        jobs = self.pending_since.get(folder)  # (setdefault would build a dict a call)
        if jobs is None:
            jobs = self.pending_since[folder] = {}
        if pending:
            jobs.setdefault(job_id, now)
        else:
            jobs.pop(job_id, None)

    def oldest_pending(self, folder: str) -> float | None:
        """When the folder's oldest job still Pending was first seen so (None: none is)."""
        jobs = self.pending_since.get(folder)
        return min(jobs.values()) if jobs else None

    @property
    def finished(self) -> int:
        """Jobs (and requests that started none) with a final outcome."""
        return sum(self.by_state[o.value] for o in Outcome)

    def folder_finished(self, folder: str) -> int:
        """Like [`finished`][async_orch.Progress.finished], for one folder (its full path)."""
        counts = self.by_folder.get(folder, Counter())
        return sum(counts[o.value] for o in Outcome)


def _take(counts: Counter[str], key: str, count: int) -> None:
    """Take ``count`` from ``counts[key]``, dropping the key once it reaches 0."""
    left = counts.get(key, 0) - count
    if left:
        counts[key] = left
    else:
        del counts[key]


@dataclass(frozen=True, slots=True)
class Summary:
    """Totals of a batch."""

    total: int
    by_outcome: Mapping[str, int]
    # Of by_outcome's successful and faulted: jobs asked to stop that ended so
    # anyway (by_outcome's "stopped" are the ones that did stop).
    finished_despite_stop: int = 0

    @classmethod
    def of(cls, results: Sequence[JobResult]) -> Summary:
        """The counts of ``results`` by outcome (``Summary.of(results).describe()``
        is the one-line summary the CLI prints)."""
        counts = Counter(r.outcome.value for r in results)
        despite = sum(1 for r in results if r.finished_despite_stop)
        return cls(total=len(results), by_outcome=dict(counts), finished_despite_stop=despite)

    def describe(self) -> str:
        """One line: ``10 jobs: stopped 6, successful 4 (4 asked to stop but finished)``."""
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.by_outcome.items()))
        line = f"{count_jobs(self.total)}: {parts or 'none'}"
        if self.finished_despite_stop:
            line += f" ({self.finished_despite_stop} asked to stop but finished)"
        return line

    @property
    def all_successful(self) -> bool:
        return self.by_outcome.get(Outcome.SUCCESSFUL.value, 0) == self.total


@dataclass(frozen=True, slots=True, kw_only=True)
class Abandoned:
    """What a batch that ended early (cancelled, left early, a callback raised, an
    error met mid-run such as every folder refused) left behind: every job it
    started and gave no result for is in ``stopped``, ``left_running`` or ``ended``.

    Attributes:
        reason: the name of what ended it (``CancelledError``, ``ValueError``...);
            ``break`` when a ``stream_jobs`` block was left before its last result.
        stopped: jobs stopped on the way out (``StopPolicy.on_cancel``) and seen ended
            (their last state went to ``on_state``).
        left_running: jobs started and not seen ended: they may still run.
            Wait for them with ``wait_jobs`` or stop them in Orchestrator.
        ended: jobs seen ended (``on_state`` told their final state) whose result
            had not come: their read by id, for outputs, was in flight or refused.
            Neither stopped nor running; read them with ``wait_jobs``.
        uncertain_references: References of StartJobs calls whose answer never
            came: look them up before starting them again.
        stop_sent: the last stop sent on the way out ("SoftStop" or "Kill"), by job
            id, for the jobs of ``stopped`` and ``left_running`` it was sent to.
        results: with ``run_jobs``, which returns no list when its batch ends
            early, the results it had (jobs ended, some ``unknown`` by a folder's
            refusal, requests not started), in request order; with ``stream_jobs``
            left early, those its block had not read (it yielded the others; ended
            by an error, it yields them all, then the error: empty). Empty with a
            journal, which holds them (``resume_jobs`` reports them).
    """

    reason: str
    stopped: tuple[JobHandle, ...] = ()
    left_running: tuple[JobHandle, ...] = ()
    uncertain_references: tuple[str, ...] = ()
    stop_sent: Mapping[int, str] = field(default_factory=dict)
    ended: tuple[JobHandle, ...] = ()
    results: tuple[JobResult, ...] = ()
