"""Decide which jobs to ask Orchestrator about, and when: a pure poll planner.

Theory of operation
-------------------

After StartJobs, every job is watched until it ends, then read once more for
its outputs. Two routes exist (orchestrator-api.md §3.4 and §4):

- ``GET /odata/Jobs?$filter=Id in (...)``: one call covers many jobs of one
  folder (the folder header scopes it), but the endpoint is rate limited per
  tenant (100 calls a minute, shared by every script of the tenant) and returns
  OutputArguments as null. The planner asks for it with :class:`ListBatch`.
- ``GET /odata/Jobs?$filter=Id ge A and Id le B and (State eq 'Pending' or
  ...)``: the jobs of one folder within an id range that have *not* ended, one
  page of up to 1,000 rows (``$top``'s documented maximum), ordered by Id. A
  watched job missing from the answer has ended, so one call settles any number
  of ended jobs: only the unfinished ones (bounded by the robots and the queue)
  take rows. The planner asks for it with :class:`ListUnfinished` when a folder
  has more jobs than one id list holds.
- ``GET /odata/Jobs({id})``: one job, full record with outputs, not rate
  limited. The planner asks for it with :class:`FetchOne`.

:class:`PollPlanner` is an h11-style state machine: it does no I/O and never
reads a clock. The caller tells it what happened (:meth:`~PollPlanner.add`,
:meth:`~PollPlanner.observe`, :meth:`~PollPlanner.list_failed`, ...) and asks what
to do now (:meth:`~PollPlanner.next_action`) and when to ask again
(:meth:`~PollPlanner.next_wake`). Time is a float of seconds passed in by the
caller, from a monotonic clock.

A job moves through these phases::

    add ──> WATCHING ──ListBatch──> LISTING ──observe(non-final)──> WATCHING
               │                      ├──observe(final)──> FETCH_QUEUED ──FetchOne──> FETCHING
               │                      ├──observe_missing──> FETCH_QUEUED (probe) ──FetchOne──> ...
               │                      ├──observe_range(unlisted)──> FETCH_QUEUED (unlisted) ──> ...
               │                      └──list_failed──> WATCHING (after a backoff)
               └──(list calls blocked, overdue)──FetchOne probe──> FETCHING
    FETCHING ──observe_fetched──> done          (the full final record was read)
    FETCHING ──observe(non-final)──> WATCHING    (a probe found it still running)
    FETCHING ──fetch_failed──> queued again after a backoff
    any phase ──remove──> gone

Rules
-----

*Intervals.* A job is due again ``interval`` seconds after each answer about
it: ``interval_growth`` times its age (time since :meth:`~PollPlanner.add`),
clamped to ``[min_interval, max_interval]``. New jobs are checked after
``min_interval``; long runners settle at ``max_interval``.

*Suspended and unknown states.* A Suspended job waits for a person or an event
and may stay so for days; a state this version does not know cannot be
reasoned about. Both are kept under watch at ``max_interval``; the planner
never gives up on a job by itself; deadlines are the caller's.

*List budget.* List calls are paced evenly by a :class:`ListBudget`
(``_list_budget.py``): at an adaptive rate that never exceeds
``list_budget_per_minute`` in any 60-second window, slowed by 429s and by a
low ``X-RateLimit-Remaining``, regained slowly. Pacing rather than bursting
matters: spending a minute's budget in the first seconds would leave every job
unchecked for the rest of that minute. Calls may be *eager* (up to 4x sooner
than the even pacing, at most half the window in a burst, and never leaving
the calls after it more than 2 list intervals apart: the budget's rules) while
jobs end in numbers: when a folder's last answer had ``EAGER_ROWS`` ended jobs,
that folder and the folders not asked yet are asked as soon as a job of theirs is
due, other folders once a job of theirs has waited a list interval; a full page's
continuation is eager too. A short batch then uses in its few seconds the calls the 60 s window
allows; completions spread over minutes keep the even pace.
After :meth:`~PollPlanner.rate_limited` (a 429) no list call is issued until
the pause ends. A budget of 0 turns list calls off: each job is then read by
id whenever it is due (see Probes). The budget is a :class:`ListBudget`, which
several planners can share (the dispatcher gives all its batches one): the
tenant's limit is one for all of them.

*Batches.* A list call is made only when at least one job is due. It goes to
the folder whose oldest due job has waited more than ``max_interval / 2`` past
its due time, if any (oldest first, so a small folder is not starved by a big
one); otherwise to the folder with the most due jobs (ties: the one whose due
jobs have waited longest in sum). The batch takes
that folder's due jobs, most overdue first, up to
``max_batch`` and as many as the call's URL holds (a ``ListRoom``, sized by
encoded length), then fills the remaining room with the folder's other jobs not
checked in the last ``min_interval`` or not listed since their start, soonest due
first: the call costs the same with more ids, so they are checked early for
free, and jobs of a folder fall into step, which keeps later calls full. (A
start's answer does not count as a check here: a job started just before webhook
events slowed its folder otherwise waited for its slowed check, while the calls
went to jobs the events were about to tell.)

*Ranges.* A folder with more than ``range_threshold`` watched jobs is asked
for its unfinished jobs instead of being asked about every id: a
:class:`ListUnfinished` covers all the folder's watched jobs (the range from the
lowest to the highest id), and only jobs in a non-final state come back. A few
lowest jobs far below the others (long runners) are named by id in the same
filter instead, so that the range does not span other callers' jobs between
them. The caller reports the rows with :meth:`~PollPlanner.observe_range`: a job
in the rows gets its state (rescheduled like a job seen running); a job not in
them has left the unfinished states, almost always because it ended, and is read
by id at once (``FetchOne(purpose=UNLISTED)``, not paced: that read is the
outputs read a final job needs anyway; a job it finds still unfinished goes back
to WATCHING). Rows of jobs not watched (other callers' jobs in the range) are
ignored. A full page (``top`` rows, or fewer when the server says it cut the
page: the folder's pages are that size from then on) answers only up to its
last row among those the query asked for (rows outside the range would put the
cursor anywhere): the jobs above it go back due at once, and the continuation is
asked for with an eager call. A full page without one such row makes no
progress (a stall): its jobs go back due at their interval, and the folder's
next call is an id list. A job last seen in a state the range's filter does not
name (say, one added to the service later: UNKNOWN) is *hidden*: a range's
silence about it says nothing, and it is read by id only when due. A job whose
row came without a readable state (``unreadable``) was listed, so it has not
ended; its state is unknown, so it is read by id at ``max_interval``. A server
may also cut pages below ``top`` without saying so: a job left out above a short
page's last row that a read finds unfinished (in a state the range asks for)
says so, and pages of that many rows are read as full from then on (a heuristic:
``top`` is still asked for, and a bigger page unlearns it). Asking for
what has *not* ended makes a call's reach independent of how many jobs ended
since the last one: asking for what ended took a row per ended job, so at most
1,000 completions a call (333 a second at 20 calls a minute).

*No ranges.* The range filter's ``or`` between State terms is an assumption
(see ``OrchestratorAPI._jobs_in_range``). When the server refuses a range query
(a client error, :meth:`~PollPlanner.range_failed` with ``refused``) the folder
is watched by id lists from then on; when range queries to a folder fail
``RANGE_FAILURES_LIMIT`` times in a row otherwise, it is watched by id lists for
``RANGE_RETRY_AFTER`` seconds, then a range query is tried again. Id lists cost
a call per ~90 ids instead of one per folder, but they work.

*Outputs.* A job seen in a final state (Successful, Faulted, Stopped) gets
exactly one ``FetchOne(purpose=OUTPUTS)``, issued at once and not paced (each
job needs it once; the caller bounds concurrency). The job is done when the
caller reports the read with :meth:`~PollPlanner.observe_fetched`.

*Probes.* ``FetchOne`` with purpose ``MISSING`` or ``OVERDUE`` reads one job
by id instead of listing it; probes are paced to ``probe_rate_per_second``:

- MISSING: a list call answered without a job asked for
  (:meth:`~PollPlanner.observe_missing`), for instance because of replication
  lag. Reading it by id settles whether it exists.
- OVERDUE: list calls are blocked (budget spent or paused after a 429) and a
  job has waited ``max_interval`` past its due time. With a budget of 0 there
  is no list call to wait for, so each job is read by id as soon as it is
  due: the by-id polling UiPath recommends (orchestrator-api.md §4), at one
  request per job and check, none of them rate limited.

Since a probe returns the full record, a probe that finds the job final also
delivers its outputs: report it with ``observe_fetched``; a probe that finds it
still running is reported with ``observe``.

*Failures.* :meth:`~PollPlanner.list_failed` and :meth:`~PollPlanner.fetch_failed`
put the jobs back, not before ``min_interval * 2**(failures - 1)`` seconds
(capped at ``max_interval``), so a folder that keeps failing cannot take every
list call. Jobs are never dropped on failure; the counter resets on the next
answer.

*In flight.* A job in an issued action is not planned again until its result
is reported (an observation, a ``*_failed`` call or :meth:`~PollPlanner.remove`),
so the caller must report every action's outcome; :meth:`~PollPlanner.next_wake`
returns None while only in-flight results are awaited.

*Push.* A webhook event saying a job ended (:meth:`~PollPlanner.pushed`) queues
``FetchOne(purpose=PUSHED)``, issued at once like an outputs read; its answer is
reported as for a probe. While events arrive, :meth:`~PollPlanner.set_pace`
stretches a folder's intervals by a bounded factor; lowering it back pulls the
stretched checks in at once (rules in :mod:`async_orch._push_pace`).

*Late answers.* Answers about jobs no longer watched are ignored, and a final
state is never taken back by a later non-final answer (responses can race).

Driver sketch::

    while not planner.done:
        while (action := planner.next_action(clock())) is not None:
            start(action)               # report its outcome to the planner later
        wake = planner.next_wake(clock())
        await wait_for_report_or(None if wake is None else wake - clock())
"""

from __future__ import annotations

import collections
import enum
import itertools
import math
import operator
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeAlias, TypeVar

from async_orch._errors import ConfigurationError
from async_orch._list_budget import ListBudget
from async_orch._states import TERMINAL_STATES, JobState
from async_orch._url_lists import PAGE_SIZE, ListRoom, job_states_query

__all__ = [
    "EAGER_ROWS",
    "RANGE_FAILURES_LIMIT",
    "RANGE_PAGE",
    "RANGE_RETRY_AFTER",
    "RANGE_THRESHOLD",
    "FetchOne",
    "FetchPurpose",
    "ListBatch",
    "ListBudget",
    "ListUnfinished",
    "PlannerStats",
    "PollAction",
    "PollPlanner",
    "PollPolicy",
    "RangeFallback",
]

FolderT = TypeVar("FolderT", bound=Hashable)

_SLOW_STATES = frozenset({JobState.SUSPENDED, JobState.UNKNOWN})
# The states a range query asks for (the Jobs list's State filter names them,
# _resources._UNFINISHED_STATES): a job in any other non-final state (one added to
# the service later, parsed as UNKNOWN) never comes back as a row.
_RANGE_LISTED = frozenset(JobState) - TERMINAL_STATES - {JobState.UNKNOWN}


#: A folder watching more jobs than this is asked for its unfinished jobs in its id
#: range instead of by an id list (ListUnfinished).
RANGE_THRESHOLD = 90

#: Rows per range query: ``$top``'s maximum on Jobs_Get ("The maximum value is
#: 1000", the OpenAPI description).
RANGE_PAGE = PAGE_SIZE

#: Range queries to a folder failing this many times in a row (without being
#: refused outright) put the folder on id lists for RANGE_RETRY_AFTER seconds.
RANGE_FAILURES_LIMIT = 3

#: Seconds a folder whose range queries kept failing is watched by id lists
#: before one range query is tried again (an outage ends; a broken filter does not).
RANGE_RETRY_AFTER = 300.0

#: A list answer with this many ended jobs of a folder says jobs end in numbers:
#: list calls may then come sooner than the even pacing (eager, see ListBudget),
#: which pays for a short batch. A few ended jobs say little: completions spread
#: over minutes are better served by calls paced evenly.
EAGER_ROWS = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class PollPolicy:
    """How eagerly to poll; the defaults suit Automation Cloud.

    Attributes:
        list_budget_per_minute: list calls allowed in any 60 s window. The
            tenant's limit is 100 a minute shared with every other script, so
            keep well under it. 0 disables list calls (each job is then read by
            id whenever due). Otherwise at least 1.
        max_batch: the most job ids per list call. A call also holds no more
            ids than its URL budget (`async_orch._url_lists`): an ``in``
            list counts once toward OData's node limit, so the URL's length is
            what bounds it. The default is one page (1,000 rows).
        min_interval: never re-check a job sooner than this after an answer.
        max_interval: the longest a job waits between checks when the budget
            allows.
        interval_growth: the re-check interval as a fraction of the job's age
            (then clamped to the two bounds above).
        probe_rate_per_second: the most fallback reads by id (probes of missing
            or overdue jobs) per second. Reads of final jobs' outputs are not
            counted here.
        rate_limit_pause: how long to stop list calls after a 429 that did not
            say how long to wait (Retry-After).
        range_threshold: a folder with more watched jobs than this is asked
            for its unfinished jobs in its id range (`ListUnfinished`)
            instead of by id list; None: always by id list.
        range_page: rows per range query (``$top``, at most 1,000).
    """

    list_budget_per_minute: float = 60.0
    max_batch: int = PAGE_SIZE
    min_interval: float = 1.0
    max_interval: float = 30.0
    interval_growth: float = 0.1
    probe_rate_per_second: float = 10.0
    rate_limit_pause: float = 60.0
    range_threshold: int | None = RANGE_THRESHOLD
    range_page: int = RANGE_PAGE

    def __post_init__(self) -> None:
        budget = self.list_budget_per_minute
        if not math.isfinite(budget) or budget < 0 or 0 < budget < 1:
            raise ConfigurationError(
                f"list_budget_per_minute must be 0 (no list calls) or at least 1, got {budget}"
            )
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int):
            raise ConfigurationError(f"max_batch must be an integer, got {self.max_batch!r}")
        if self.max_batch < 1:
            raise ConfigurationError(f"max_batch must be at least 1, got {self.max_batch}")
        if not (0 < self.min_interval <= self.max_interval < math.inf):
            raise ConfigurationError(
                "need 0 < min_interval <= max_interval (finite), got "
                f"min_interval={self.min_interval}, max_interval={self.max_interval}"
            )
        if not (0 <= self.interval_growth < math.inf):
            raise ConfigurationError(f"interval_growth must be >= 0, got {self.interval_growth}")
        if not (0 < self.probe_rate_per_second < math.inf):
            raise ConfigurationError(
                f"probe_rate_per_second must be > 0, got {self.probe_rate_per_second}"
            )
        if not (0 < self.rate_limit_pause < math.inf):
            raise ConfigurationError(f"rate_limit_pause must be > 0, got {self.rate_limit_pause}")
        threshold = self.range_threshold
        if threshold is not None and (not isinstance(threshold, int) or threshold < 1):
            raise ConfigurationError(
                f"range_threshold must be None or an integer >= 1, got {threshold!r}"
            )
        if not isinstance(self.range_page, int) or not 1 <= self.range_page <= RANGE_PAGE:
            raise ConfigurationError(
                f"range_page must be an integer from 1 to {RANGE_PAGE}, got {self.range_page!r}"
            )


class FetchPurpose(enum.StrEnum):
    """Why a :class:`FetchOne` was issued."""

    OUTPUTS = "outputs"  # the job is final: read its full record (outputs)
    MISSING = "missing"  # a list call did not return it
    OVERDUE = "overdue"  # list calls are blocked and it waited too long
    PUSHED = "pushed"  # a webhook event said it ended: read it now (not paced)
    # A range answer no longer lists it among the unfinished jobs: it ended (almost
    # always), read it now (not paced); the answer is reported as for a probe.
    UNLISTED = "unlisted"


# Reads by id issued at once, not paced like probes: each job needs one at most
# (the caller bounds their concurrency).
_UNPACED = frozenset({FetchPurpose.OUTPUTS, FetchPurpose.PUSHED, FetchPurpose.UNLISTED})
# Reads by id retried as reads after a failure, not handed back to list calls:
# a list answer has already said the job is not where it was looked for.
_READ_AGAIN = frozenset({FetchPurpose.MISSING, FetchPurpose.UNLISTED})


@dataclass(frozen=True, slots=True)
class ListBatch(Generic[FolderT]):
    """Ask for the State of ``job_ids`` with one list call in ``folder``."""

    folder: FolderT
    job_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ListUnfinished(Generic[FolderT]):
    """Ask ``folder`` for its jobs with ``low <= Id <= high`` or an Id among
    ``stragglers`` (all below ``low``) in a state that is not final, ordered by
    Id, at most ``top`` rows (one list call). ``job_ids``: the watched jobs the
    answer settles (report it with :meth:`PollPlanner.observe_range`)."""

    folder: FolderT
    low: int
    high: int
    job_ids: tuple[int, ...]
    top: int = RANGE_PAGE
    stragglers: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchOne(Generic[FolderT]):
    """Read one job by id (``GET /odata/Jobs({id})``) in ``folder``."""

    job_id: int
    folder: FolderT
    purpose: FetchPurpose = FetchPurpose.OUTPUTS


@dataclass(frozen=True, slots=True, kw_only=True)
class RangeFallback(Generic[FolderT]):
    """What :meth:`PollPlanner.range_failed` decided: ``folder`` is watched by id
    lists (:class:`ListBatch`) until ``until`` (inf: for good, the server refused
    the query); ``first``: the first time for this folder (worth a warning)."""

    folder: FolderT
    refused: bool
    until: float
    first: bool


PollAction: TypeAlias = ListBatch[FolderT] | ListUnfinished[FolderT] | FetchOne[FolderT]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerStats:
    """Counts for progress displays and tests.

    ``watching``: jobs waiting for their next check; ``listing``: in an issued
    list call; ``fetch_queued``/``fetching``: waiting for or in a read by id;
    ``done``: read in full after ending; ``removed``: given up by the caller.
    ``list_calls``, ``output_fetches`` and ``probes`` count issued actions
    (``range_calls``: the list calls that were range queries; ``output_fetches``
    includes the reads of jobs a range answer no longer lists as unfinished);
    ``rate_limited`` the 429s reported.
    """

    watching: int
    listing: int
    fetch_queued: int
    fetching: int
    done: int
    removed: int
    list_calls: int
    output_fetches: int
    probes: int
    rate_limited: int
    pushed_reads: int = 0  # reads by id asked for by webhook events
    range_calls: int = 0
    # Full (or cut) range pages with no row the query asked for: no progress, so
    # their jobs were left unanswered (see PollPlanner.observe_range).
    range_stalls: int = 0


#: Watched jobs at most asked for by id in a range query, below its range, and
#: the id gap above them that makes it worth it (other callers' unfinished jobs
#: in the gap would take rows of every call).
_MAX_STRAGGLERS = 50
_STRAGGLER_GAP = 100


def _straggler_split(ids: Sequence[int], *, gap: int) -> int:
    """How many of the lowest ``ids`` (sorted) to ask for by id rather than cover
    with the range: those below the widest gap among the lowest ids, if it spans
    more than ``gap`` ids. A job that runs long (say, Suspended) would otherwise
    pin the range's low end, and every call would span the jobs other callers
    started since (their unfinished ones come back as rows)."""
    best, split = gap, 0
    for k in range(1, min(len(ids), _MAX_STRAGGLERS + 1)):
        if ids[k] - ids[k - 1] > best:
            best, split = ids[k] - ids[k - 1], k
    return split


class _Phase(enum.IntEnum):
    # IntEnum: hashed in C. Phases change a dozen times per job, each change
    # counted in a dict keyed by phase, and Enum's own __hash__ is Python code.
    WATCHING = 1
    LISTING = 2
    FETCH_QUEUED = 3
    FETCHING = 4


@dataclass(slots=True, kw_only=True)
class _Track(Generic[FolderT]):
    job_id: int
    folder: FolderT
    added_at: float
    phase: _Phase
    due_at: float  # WATCHING: when the next check is due
    not_before: float  # no action before this (backoff after failures)
    last_checked: float  # last answer about the job (or when added)
    state: JobState | None
    # Derived from the two above whenever the job enters WATCHING (_to_watching),
    # so that scans over every watched job compare one number per job:
    ready_at: float = 0.0  # when a list call may include it
    overdue_at: float = 0.0  # when it may be probed by id instead
    final: bool = False  # seen in a final state: only its outputs read remains
    purpose: FetchPurpose = FetchPurpose.OUTPUTS  # FETCH_QUEUED / FETCHING
    failures: int = 0
    # Last seen in a non-final state a range query does not ask for (not in
    # _RANGE_LISTED): a range answer's silence about it says nothing.
    hidden: bool = False
    # Read by id because a range page of this many rows, short of $top, left it
    # out above its last row (0: not so): found unfinished, it says the server
    # cuts pages at that size without saying so (PollPlanner._silent_cap).
    past_short_page: int = 0


class _DueSummary(NamedTuple):
    """The jobs of a folder that may be listed now (:meth:`_FolderWatch.due_summary`)."""

    jobs: int
    oldest: float  # the earliest due_at among them
    due_sum: float  # the sum of their due_at


class _FolderWatch(Generic[FolderT]):
    """One folder's WATCHING jobs, with the earliest ``ready_at`` and ``overdue_at``
    among them kept up to date, so that planning looks only into folders that
    have something due instead of at every job on every turn.

    Adding a job lowers the minima at once; removing the job that held a minimum
    marks it unknown, and it is recomputed (one pass over the folder) when asked.
    The same goes for :meth:`due_summary`, which planning asks of every folder
    before each list call: kept until a job comes or goes, or another becomes due.
    """

    __slots__ = ("_due", "_min_overdue", "_min_ready", "jobs")

    def __init__(self) -> None:
        self.jobs: dict[int, _Track[FolderT]] = {}
        self._min_ready: float | None = math.inf  # None: unknown
        self._min_overdue: float | None = math.inf
        # due_summary's last answer: (computed at, valid before, the summary, the
        # due jobs in the folder's order).
        self._due: tuple[float, float, _DueSummary, list[_Track[FolderT]]] | None = None

    def add(self, track: _Track[FolderT]) -> None:
        self.jobs[track.job_id] = track
        self._due = None
        if self._min_ready is not None and track.ready_at < self._min_ready:
            self._min_ready = track.ready_at
        if self._min_overdue is not None and track.overdue_at < self._min_overdue:
            self._min_overdue = track.overdue_at

    def remove(self, job_id: int) -> None:
        self.remove_many((job_id,))

    def remove_many(self, job_ids: Iterable[int]) -> None:
        """Take ``job_ids`` out (a list call's jobs, in one call); ids not here are
        ignored. The minima they held and the due summary become unknown."""
        jobs = self.jobs
        changed = False
        for job_id in job_ids:
            track = jobs.pop(job_id, None)
            if track is None:
                continue
            changed = True
            if track.ready_at == self._min_ready:
                self._min_ready = None
            if track.overdue_at == self._min_overdue:
                self._min_overdue = None
        if changed:
            self._due = None

    def take_all(self) -> list[_Track[FolderT]]:
        """Remove every job at once (a range query settles them all)."""
        tracks = list(self.jobs.values())
        self.jobs.clear()
        self._min_ready = self._min_overdue = math.inf
        self._due = None
        return tracks

    def due_summary(self, now: float) -> _DueSummary:
        """How many jobs may be listed at ``now`` (``ready_at <= now``), their
        earliest ``due_at`` and the sum of their ``due_at``: one pass over the
        folder, then kept while no job comes, goes or becomes ready."""
        cached = self._due
        if cached is not None and cached[0] <= now < cached[1]:
            return cached[2]
        due: list[_Track[FolderT]] = []
        later = math.inf  # the next job to become ready ends the summary
        first = math.inf  # the earliest ready_at of all: min_ready, from the same pass
        for track in self.jobs.values():
            ready = track.ready_at
            if ready <= now:
                due.append(track)
                if ready < first:
                    first = ready
            elif ready < later:
                later = ready
        due_times = [t.due_at for t in due]
        # min and sum as the ranking always took them (sum is compensated from
        # Python 3.12: a plain running total could break ties differently there).
        summary = _DueSummary(len(due_times), min(due_times, default=math.inf), sum(due_times))
        self._due = (now, later, summary, due)
        if self._min_ready is None:
            self._min_ready = first if first < later else later
        return summary

    def due_jobs(self, now: float) -> list[_Track[FolderT]]:
        """The jobs :meth:`due_summary` counts at ``now`` (``ready_at <= now``), in
        the folder's order: a new list, from its pass when still valid."""
        self.due_summary(now)
        assert self._due is not None  # set by due_summary
        return list(self._due[3])

    def nothing_ready(self, now: float) -> bool:
        """Whether no job of the folder may be listed at ``now``; when the earliest
        ``ready_at`` is not known, :meth:`due_summary`'s pass finds it (and is kept)."""
        if self._min_ready is None:
            self.due_summary(now)
        return self.min_ready > now

    @property
    def min_ready(self) -> float:
        """The earliest time a job of this folder may be listed (inf: none)."""
        if self._min_ready is None:
            self._min_ready = min((t.ready_at for t in self.jobs.values()), default=math.inf)
        return self._min_ready

    @property
    def min_overdue(self) -> float:
        """The earliest time a job of this folder may be probed (inf: none)."""
        if self._min_overdue is None:
            self._min_overdue = min((t.overdue_at for t in self.jobs.values()), default=math.inf)
        return self._min_overdue


@dataclass(slots=True)
class _Counters:
    done: int = 0
    removed: int = 0
    list_calls: int = 0
    range_calls: int = 0
    range_stalls: int = 0
    output_fetches: int = 0
    probes: int = 0
    rate_limited: int = 0
    pushed_reads: int = 0


class PollPlanner(Generic[FolderT]):
    """Plan list calls and reads by id for many jobs; see the module docstring.

    Usage::

        planner: PollPlanner[int] = PollPlanner(PollPolicy())
        planner.add(job.id, folder.id, now=clock())
        action = planner.next_action(clock())   # ListBatch | FetchOne | None
    """

    def __init__(
        self, policy: PollPolicy | None = None, *, budget: ListBudget | None = None
    ) -> None:
        self.policy = policy or PollPolicy()
        self._jobs: dict[int, _Track[FolderT]] = {}
        # WATCHING jobs by folder; folders keep their first-seen order for ties.
        self._watching: dict[FolderT, _FolderWatch[FolderT]] = {}
        self._fetch_queue: dict[int, _Track[FolderT]] = {}
        # Shared by every planner of a client: the tenant's limit is one for all.
        self._budget = budget or ListBudget(self.policy.list_budget_per_minute)
        self._probe_spacing = 1.0 / self.policy.probe_rate_per_second
        # How long past its due time a job waits for a list call before it is
        # probed by id; with list calls off there is nothing to wait for.
        self._probe_grace = self.policy.max_interval if self._budget.capacity else 0.0
        self._last_probe = -math.inf
        # Folders whose last range answer was a full page, and its last id: the
        # rest is asked for as soon as the window allows.
        self._continue: dict[FolderT, int] = {}
        # Folders whose range pages were cut by the server below the $top asked
        # for, and the page size it gave: their range queries ask for no more.
        self._page_size: dict[FolderT, int] = {}
        # Folders whose server cuts range pages at a size without saying so
        # (learnt from reads by id, see observe): a page of that many rows is
        # read as full. $top stays as asked, so a bigger page unlearns it.
        self._silent_cap: dict[FolderT, int] = {}
        # Folders whose last range answer made no progress (a stall): their next
        # list call asks by id list, whose answer needs no range filter honoured.
        self._by_ids_next: set[FolderT] = set()
        # Jobs of ours seen ended by list answers since each folder's last list call,
        # and the folders where that reached EAGER_ROWS: many more may be waiting,
        # so calls may be eager (ListBudget.ready_at, _eager_at).
        self._ended_since_call: dict[FolderT, int] = {}
        self._ended_lately: set[FolderT] = set()
        self._asked: set[FolderT] = set()  # folders a list call has gone to
        # Range queries failed in a row per folder, and the folders watched by id
        # lists instead until a time (inf: the server refused them), see range_failed.
        self._range_failures: dict[FolderT, int] = {}
        self._no_range_until: dict[FolderT, float] = {}
        self._count = _Counters()
        # Folders whose re-checks are stretched while webhook events arrive (set_pace).
        self._pace: dict[FolderT, float] = {}

    # -- queries ----------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True when no job is left to watch or read."""
        return not self._jobs

    @property
    def watching(self) -> frozenset[int]:
        """Ids of the jobs still planned for (every phase until done or removed)."""
        return frozenset(self._jobs)

    def page_cap(self, folder: FolderT) -> int | None:
        """The page size ``folder``'s range answers were found cut at without the
        server saying so (None: not seen), :meth:`observe_range`."""
        return self._silent_cap.get(folder)

    def state_of(self, job_id: int) -> JobState | None:
        """The last state reported for a watched job (None if unknown or not watched)."""
        track = self._jobs.get(job_id)
        return None if track is None else track.state

    @property
    def stats(self) -> PlannerStats:
        """Counts of jobs per phase and of actions issued so far."""
        c = self._count
        # Counted when asked (seldom) rather than kept up to date on each of the
        # dozen phase changes of every job.
        phases = collections.Counter(t.phase for t in self._jobs.values())
        return PlannerStats(
            watching=phases[_Phase.WATCHING],
            listing=phases[_Phase.LISTING],
            fetch_queued=phases[_Phase.FETCH_QUEUED],
            fetching=phases[_Phase.FETCHING],
            done=c.done,
            removed=c.removed,
            list_calls=c.list_calls,
            output_fetches=c.output_fetches,
            probes=c.probes,
            rate_limited=c.rate_limited,
            pushed_reads=c.pushed_reads,
            range_calls=c.range_calls,
            range_stalls=c.range_stalls,
        )

    # -- events from the caller ---------------------------------------------------

    def add(
        self, job_id: int, folder: FolderT, *, now: float, state: JobState | None = None
    ) -> None:
        """Watch a job started at ``now`` in ``folder``.

        ``state`` is what StartJobs (or a lookup) said; a final one queues the
        outputs read at once. Otherwise the first check is after ``min_interval``.

        Raises:
            ValueError: the job is already watched.
        """
        if job_id in self._jobs:
            raise ValueError(f"job {job_id} is already watched")
        track = _Track(
            job_id=job_id,
            folder=folder,
            added_at=now,
            phase=_Phase.WATCHING,
            due_at=now + self.policy.min_interval * self._pace.get(folder, 1.0),
            not_before=now,
            last_checked=now,
            state=state,
        )
        self._jobs[job_id] = track
        self._to_watching(track)
        if state in TERMINAL_STATES:
            self._mark_final(track, now)

    def observe(self, job_id: int, state: JobState, *, now: float) -> None:
        """Record a job's state from a list call or a probe.

        A final state queues the one outputs read; any other reschedules the
        next check. Ignored for jobs not watched, and a non-final state is
        ignored for a job already seen final.
        """
        track = self._jobs.get(job_id)
        if track is not None:
            self._observe(track, state, now)

    def observe_answer(
        self, job_ids: Iterable[int], states: Mapping[int, JobState], *, now: float
    ) -> None:
        """An id list call's answer: :meth:`observe` each of ``job_ids`` with its
        state in ``states``, :meth:`observe_missing` those it leaves out; in order
        (the fetches queue in that order). One call for the answer, not one a row."""
        tracks = self._jobs
        for job_id in job_ids:
            track = tracks.get(job_id)
            if track is None:
                continue
            state = states.get(job_id)
            if state is None:
                self.observe_missing(job_id, now=now)
            else:
                self._observe(track, state, now)

    def _observe(self, track: _Track[FolderT], state: JobState, now: float) -> None:
        """:meth:`observe` of a watched job."""
        if state in TERMINAL_STATES:
            if track.phase is _Phase.LISTING:
                self._count_ended(track.folder, 1)
            track.state = state
            self._mark_final(track, now)
            return
        if track.final:
            return  # a late answer from before the job ended
        if track.past_short_page:
            if state in _RANGE_LISTED:
                # Unfinished, in a state the range asked for, yet left out above a
                # short page's last row: the server cut the page there without
                # saying so (an assumption; a smaller page later is read as such
                # again).
                self._silent_cap[track.folder] = track.past_short_page
            track.past_short_page = 0
        track.state = state
        track.hidden = state not in _RANGE_LISTED
        # Not ended: checked again after its interval (here, not in a helper: every
        # row of every list answer comes this way).
        track.last_checked = track.not_before = now
        track.failures = 0
        track.due_at = now + self._interval(track, now)
        self._to_watching(track)

    def observe_range(
        self,
        job_ids: Iterable[int],
        rows: Sequence[tuple[int, JobState]],
        *,
        query: ListUnfinished[FolderT],
        now: float,
        cut: bool = False,
        received: int | None = None,
        unreadable: Collection[int] = (),
    ) -> bool:
        """The answer to ``query`` (a :class:`ListUnfinished`) about ``job_ids`` (the
        ones this planner asked about): ``rows``, the (Id, State) pairs of the
        unfinished jobs the list returned; ``cut``: the server said more rows match
        (a page cut below ``query.top``, learnt as the folder's page size);
        ``received``: the rows the server sent, unreadable ones left out of
        ``rows`` included (None: as many as ``rows``), which is what says whether
        the page was full; ``unreadable``: the Ids of the rows left out (say,
        without a State).

        A job in the rows gets its state and is checked again after its
        interval. A job not in them has left the unfinished states: it is read by
        id at once (``FetchPurpose.UNLISTED``), unless it was last seen in a state
        the query does not ask for, or its row could not be read (then it is read
        by id only when due). When the page is full (or cut, or as long as a
        page the server was found to cut silently), it answers up to its last row
        the query could return: the jobs above are due at once and the next page
        is asked for with an eager call. Rows about other jobs are ignored.

        Returns True when the answer made no progress: a full or cut page without
        one row the query asked for (ids outside its range and stragglers). Its
        jobs are then left unanswered, due again at their interval, and the
        folder's next list call goes by id list.
        """
        listed = dict(rows)
        unread = frozenset(unreadable)
        folder = query.folder
        cursor: int | None = None
        last: int | None = None  # a short page's last row
        sent = len(rows) if received is None else received
        if cut and 0 < sent < query.top:
            self._page_size[folder] = min(sent, self._page_size.get(folder, query.top))
        cap = self._silent_cap.get(folder)
        if cap is not None and sent > cap:
            del self._silent_cap[folder]  # the server gave more: not its page size
            cap = None
        if cut or sent >= query.top or sent == cap:
            # Only rows the query could return move the cursor: other rows (another
            # caller's, a server ignoring the filter) would put it anywhere. Every
            # id asked for lies above the previous page's cursor (_next_page), so
            # one such row is progress, and pages cannot repeat.
            stragglers = set(query.stragglers)
            asked = [
                i
                for i in itertools.chain(listed, unread)
                if query.low <= i <= query.high or i in stragglers
            ]
            if not asked:
                self._stalled(job_ids, folder, now)
                return True
            cursor = max(asked)
        elif sent:
            last = max(itertools.chain(listed, unread), default=None)
        for job_id in job_ids:
            track = self._jobs.get(job_id)
            if track is None:
                continue
            state = listed.get(job_id)
            if state is not None:
                self._observe(track, state, now)
            elif track.phase is not _Phase.LISTING:
                continue  # a probe of it is in flight; that one answers
            elif cursor is not None and job_id > cursor:
                if not track.hidden:
                    track.due_at = track.not_before = now
                self._to_watching(track)
                self._continue[folder] = cursor
            elif track.hidden and track.due_at > now:
                self._to_watching(track)  # silence says nothing; not due yet
            elif job_id in unread and track.last_checked + self._slow(folder) > now:
                # Listed, so not ended, in a state unknown: read by id at the pace
                # of a state that cannot be reasoned about (max_interval).
                track.due_at = track.last_checked + self._slow(folder)
                self._to_watching(track)
            else:
                # Ended (almost always); a hidden job (its state is not asked for)
                # is read at its interval instead, one whose row could not be read
                # at max_interval.
                track.last_checked = track.not_before = now
                track.failures = 0
                if last is not None and job_id > last:
                    track.past_short_page = sent  # if unfinished: a silent page cap?
                self._to_fetch_queue(track, FetchPurpose.UNLISTED)
                if not track.hidden and job_id not in unread:
                    self._count_ended(folder, 1)
        return False

    def _stalled(self, job_ids: Iterable[int], folder: FolderT, now: float) -> None:
        """A range answer made no progress: its jobs are due again at their usual
        interval (not eagerly), and the folder's next call goes by id list."""
        self._count.range_stalls += 1
        self._by_ids_next.add(folder)
        for job_id in job_ids:
            track = self._jobs.get(job_id)
            if track is None or track.phase is not _Phase.LISTING:
                continue
            track.due_at = now + self._interval(track, now)
            self._to_watching(track)

    def observe_missing(self, job_id: int, *, now: float) -> None:
        """A list call answered but did not include this job: probe it by id."""
        track = self._jobs.get(job_id)
        if track is None or track.final or track.phase is _Phase.FETCHING:
            return
        track.last_checked = now
        track.not_before = now
        self._to_fetch_queue(track, FetchPurpose.MISSING)

    def observe_fetched(self, job_id: int, *, now: float) -> None:
        """The job's full final record was read: it is done."""
        track = self._jobs.get(job_id)
        if track is None:
            return
        self._forget(track)
        self._count.done += 1

    def list_failed(self, job_ids: Iterable[int], *, now: float) -> None:
        """A list call brought no answer: its jobs are due again after a backoff."""
        for job_id in job_ids:
            track = self._jobs.get(job_id)
            if track is None or track.phase is not _Phase.LISTING:
                continue
            self._back_off(track, now)
            self._to_watching(track)

    def range_failed(
        self, folder: FolderT, *, refused: bool, now: float
    ) -> RangeFallback[FolderT] | None:
        """A :class:`ListUnfinished` to ``folder`` brought an error answer (report
        its jobs with :meth:`list_failed` too). Not for 429s, nor for refusals of
        the token or the folder: those say nothing about the query.

        ``refused``: the server refused the query itself (a client error such as
        400, "filter not supported"): the folder is watched by id lists from now
        on. Otherwise the folder falls back to id lists once RANGE_FAILURES_LIMIT
        range queries failed in a row, for RANGE_RETRY_AFTER seconds; after that
        one range query is tried again (a failure puts it back at once). Returns
        the fallback when one starts, else None.
        """
        failures = self._range_failures[folder] = self._range_failures.get(folder, 0) + 1
        if not refused and failures < RANGE_FAILURES_LIMIT:
            return None
        first = folder not in self._no_range_until
        until = math.inf if refused else now + RANGE_RETRY_AFTER
        self._no_range_until[folder] = max(until, self._no_range_until.get(folder, -math.inf))
        self._continue.pop(folder, None)
        return RangeFallback(folder=folder, refused=refused, until=until, first=first)

    def range_worked(self, folder: FolderT) -> None:
        """A :class:`ListUnfinished` to ``folder`` was answered: its failures in a
        row start again from 0."""
        self._range_failures.pop(folder, None)

    def fetch_failed(self, job_id: int, *, now: float) -> None:
        """A read by id brought no answer: retry it after a backoff.

        A job that keeps failing (say, it was deleted) stays planned, with
        retries at most every ``max_interval``, until the caller removes it.
        """
        track = self._jobs.get(job_id)
        if track is None or track.phase is not _Phase.FETCHING:
            return
        self._back_off(track, now)
        if track.final or track.purpose in _READ_AGAIN:
            self._to_fetch_queue(track, track.purpose)
        else:
            self._to_watching(track)

    def join_list(self, folder: FolderT, *, room: ListRoom, now: float) -> tuple[int, ...]:
        """Jobs of ``folder`` to add to a list call another planner sharing this
        one's :class:`ListBudget` is making (batches of one client), chosen as for
        a batch of this planner's own, while ``room`` (what the call has left,
        taken from as ids are chosen) holds them. The call costs the same with
        more ids. Report the outcome with :meth:`observe`, :meth:`observe_missing`
        or :meth:`list_failed`, as for a :class:`ListBatch`.
        """
        watch = self._watching.get(folder)
        if watch is None or room.values <= 0 or not self._budget.capacity:
            return ()
        due = [t for t in watch.jobs.values() if t.ready_at <= now]
        return self._take_for_list(folder, due, now, room)

    def pushed(self, job_id: int, *, now: float) -> bool:
        """A webhook event said the job ended: read it by id now (not paced, no
        list call). The read's answer is reported as for a probe (``observe_fetched``
        if final, ``observe`` if not): an event is a hint, the read is the fact.
        Returns False when nothing changes (not watched, already final, or its
        answer is in flight anyway)."""
        track = self._jobs.get(job_id)
        if track is None or track.final or track.phase is not _Phase.WATCHING:
            return False
        track.not_before = now
        self._to_fetch_queue(track, FetchPurpose.PUSHED)
        # Jobs end in numbers however it is learnt: the folder's next calls may be
        # eager, so that the jobs whose events are lost are found as soon as
        # polling alone would find them.
        self._count_ended(track.folder, 1)
        return True

    def recheck_soon(self, job_id: int, *, now: float) -> None:
        """Its state is about to change (a stop was just sent): check it again after
        ``min_interval``, not on its usual schedule (a Suspended job is checked
        seldom, and its stop would be seen only after the grace ran out)."""
        track = self._jobs.get(job_id)
        if track is None or track.final or track.phase is not _Phase.WATCHING:
            return
        soon = now + self.policy.min_interval
        if track.due_at > soon:
            track.due_at = soon
            self._to_watching(track)

    def set_pace(self, folder: FolderT, factor: float, *, now: float) -> None:
        """Re-check ``folder``'s jobs ``factor`` times less often (1: as usual); see
        :mod:`async_orch._push_pace`. Lowering it pulls every stretched check back
        to when it would have been due, so polling takes over at once."""
        old = self._pace.get(folder, 1.0)
        if factor == old:
            return
        if factor == 1.0:
            del self._pace[folder]
        else:
            self._pace[folder] = factor
        watch = self._watching.get(folder)
        if factor > old or watch is None:
            return  # stretched checks start with each job's next answer
        for track in list(watch.jobs.values()):
            due = track.last_checked + self._interval(track, track.last_checked)
            if due < track.due_at:
                track.due_at = due
                self._to_watching(track)

    def join_range(self, folder: FolderT, low: int, high: int) -> tuple[int, ...]:
        """This planner's watched jobs of ``folder`` with ``low <= id <= high``, to
        be settled by a :class:`ListUnfinished` another planner sharing this one's
        :class:`ListBudget` is making. Report its answer with :meth:`observe_range`
        (or :meth:`list_failed`), as for a :class:`ListUnfinished` of this planner's own.
        """
        watch = self._watching.get(folder)
        if watch is None:
            return ()
        tracks = [t for t in watch.jobs.values() if low <= t.job_id <= high]
        for track in tracks:
            track.phase = _Phase.LISTING
            watch.remove(track.job_id)
        return tuple(t.job_id for t in tracks)

    def rate_limited(self, *, retry_after: float | None, now: float) -> None:
        """A list call got 429: no list calls until ``retry_after`` seconds pass.

        Without a usable Retry-After the pause is ``rate_limit_pause``. Report the
        refused call's jobs with :meth:`list_failed` as well.
        """
        pause = self.policy.rate_limit_pause
        if retry_after is not None and math.isfinite(retry_after):
            pause = max(0.0, retry_after)
        self._budget.throttled(retry_after=pause, now=now)
        self._count.rate_limited += 1

    def remove(self, job_id: int) -> None:
        """Stop planning for a job (the caller gave up on it). Unknown ids are ignored."""
        track = self._jobs.get(job_id)
        if track is None:
            return
        self._forget(track)
        self._count.removed += 1

    # -- decisions -------------------------------------------------------------------

    def next_action(self, now: float) -> PollAction[FolderT] | None:
        """The next request to make now, or None if nothing is due yet.

        Call it repeatedly until None: several actions may be due at once, and
        each returned action is in flight until its outcome is reported.
        """
        fetch = self._next_fetch(now)
        if fetch is not None:
            return fetch
        eager_ready = self._budget.ready_at(eager=True)
        if self._continue and eager_ready <= now:
            more = self._next_page(now)
            if more is not None:
                return more
        if self._list_ready_at() <= now:
            batch = self._next_batch(now)
            if batch is not None:
                return batch
            return None
        if eager_ready <= now:
            batch = self._next_batch(now, eager_only=True)
            if batch is not None:
                return batch
        if self._last_probe + self._probe_spacing <= now:
            overdue = self._most_overdue(now)
            if overdue is not None:
                return self._issue_fetch(overdue, FetchPurpose.OVERDUE, now)
        return None

    def next_wake(self, now: float) -> float | None:
        """When :meth:`next_action` will next have something, barring new reports.

        The result is never earlier than ``now`` and is exactly a time at which
        :meth:`next_action` returns an action (unless a report arrives first, which
        can only bring it forward). None means nothing will become due without
        a report: everything left is in flight, or nothing is left.
        """
        probe_ready = self._last_probe + self._probe_spacing
        candidates: list[float] = []
        for track in self._fetch_queue.values():
            if track.purpose in _UNPACED:
                candidates.append(track.not_before)
            else:
                candidates.append(max(track.not_before, probe_ready))
        due = min((w.min_ready for w in self._watching.values()), default=math.inf)
        overdue = min((w.min_overdue for w in self._watching.values()), default=math.inf)
        if due < math.inf:
            candidates.append(max(due, self._list_ready_at()))
            candidates.append(max(overdue, probe_ready))
            if self._ended_lately:  # (else no folder is worth an eager call: _eager_at)
                eager = min(self._eager_at(f, w) for f, w in self._watching.items())
                candidates.append(max(eager, self._budget.ready_at(eager=True)))
        if any(self._page_left(folder, cursor) for folder, cursor in self._continue.items()):
            candidates.append(self._budget.ready_at(eager=True))
        wake = min(candidates, default=math.inf)
        if wake == math.inf:
            return None
        return max(wake, now)

    # -- internals -----------------------------------------------------------------------

    def _interval(self, track: _Track[FolderT], now: float) -> float:
        # Runs for every row of every list answer: comparisons, not min/max calls.
        policy = self.policy
        pace = self._pace.get(track.folder, 1.0)
        if track.state in _SLOW_STATES:
            return policy.max_interval * pace  # as _slow
        interval = policy.interval_growth * (now - track.added_at)
        if interval < policy.min_interval:  # a negative age too
            interval = policy.min_interval
        elif interval > policy.max_interval:
            interval = policy.max_interval
        return interval * pace

    def _slow(self, folder: FolderT) -> float:
        """The interval of a job in a state that cannot be reasoned about."""
        return self.policy.max_interval * self._pace.get(folder, 1.0)

    def _back_off(self, track: _Track[FolderT], now: float) -> None:
        track.failures += 1
        delay = self.policy.min_interval * 2.0 ** min(track.failures - 1, 30)
        track.not_before = now + min(self.policy.max_interval, delay)

    def _list_ready_at(self) -> float:
        """The earliest time a list call is allowed (inf when list calls are off)."""
        return self._budget.ready_at()

    def _next_fetch(self, now: float) -> FetchOne[FolderT] | None:
        probe_ok = self._last_probe + self._probe_spacing <= now
        for track in self._fetch_queue.values():
            if track.not_before > now:
                continue
            if track.purpose in _UNPACED or probe_ok:
                return self._issue_fetch(track, track.purpose, now)
        return None

    def _issue_fetch(
        self, track: _Track[FolderT], purpose: FetchPurpose, now: float
    ) -> FetchOne[FolderT]:
        self._leave_phase(track)
        track.phase = _Phase.FETCHING
        track.purpose = purpose
        if purpose is FetchPurpose.OUTPUTS or purpose is FetchPurpose.UNLISTED:
            self._count.output_fetches += 1
        elif purpose is FetchPurpose.PUSHED:
            self._count.pushed_reads += 1
        else:
            self._count.probes += 1
            self._last_probe = now
        return FetchOne(track.job_id, track.folder, purpose)

    def _eager_at(self, folder: FolderT, watch: _FolderWatch[FolderT]) -> float:
        """When a call to ``folder`` is worth making sooner than the even pacing
        (inf: not now). Only while jobs end in numbers (a folder's last answer
        had EAGER_ROWS ended jobs): such a folder, and a folder not asked yet (its
        jobs likely end alike), as soon as a job of it is due; the others, whose
        last answer had few ended jobs, once a job of theirs has been due for a
        list interval."""
        if folder in self._ended_lately or (self._ended_lately and folder not in self._asked):
            return watch.min_ready
        if self._ended_lately:
            return watch.min_ready + self._budget.spacing
        return math.inf

    def _next_batch(
        self, now: float, *, eager_only: bool = False
    ) -> ListBatch[FolderT] | ListUnfinished[FolderT] | None:
        """A list call to the folder that needs one most (``eager_only``: among
        the folders worth an eager call, :meth:`_eager_at`)."""
        # Half of max_interval: a starving folder is served by a list call before
        # its jobs become overdue enough for probes by id.
        starving_limit = now - self.policy.max_interval / 2
        best: tuple[tuple[int, float, float], FolderT] | None = None
        for folder, watch in self._watching.items():
            if watch.nothing_ready(now):
                continue  # nothing due in this folder
            if eager_only and self._eager_at(folder, watch) > now:
                continue
            # ready_at, as in next_wake: a wake time computed there is exact here.
            # Summarised per folder and kept while nothing changes: this would
            # otherwise run over every watched job on each list call.
            count, oldest, due_sum = watch.due_summary(now)
            if not count:
                continue
            # Lower ranks first: starving folders (oldest first), then the most due
            # jobs, then the most unchecked time (summed over due jobs). Ranking by
            # unchecked time first checked a 1,000-job batch's last jobs later
            # (bench_dispatch: wall 1.099x the last end, against 1.064x).
            starving = oldest < starving_limit
            unchecked = count * now - due_sum
            rank = (0, oldest, 0.0) if starving else (1, -float(count), -unchecked)
            if best is None or rank < best[0]:
                best = (rank, folder)
        if best is None:
            return None
        folder = best[1]
        self._called(folder)
        threshold = self.policy.range_threshold
        watch = self._watching[folder]
        if (
            threshold is not None
            and len(watch.jobs) > threshold
            and self._no_range_until.get(folder, -math.inf) <= now
        ):
            if folder not in self._by_ids_next:
                return self._issue_range(folder, watch.take_all(), now)
            self._by_ids_next.discard(folder)
        room = ListRoom.of(job_states_query, max_values=self.policy.max_batch)
        chosen = self._take_for_list(folder, watch.due_jobs(now), now, room)
        self._budget.spend(now)
        self._count.list_calls += 1
        return ListBatch(folder, chosen)

    def _count_ended(self, folder: FolderT, count: int) -> None:
        """A list answer says ``count`` more jobs of ``folder`` ended: past
        EAGER_ROWS since its last call, calls may be eager (:meth:`_eager_at`)."""
        seen = self._ended_since_call[folder] = self._ended_since_call.get(folder, 0) + count
        if seen >= EAGER_ROWS:
            self._ended_lately.add(folder)

    def _called(self, folder: FolderT) -> None:
        """A list call to ``folder`` is issued: its next answer decides anew."""
        self._ended_lately.discard(folder)
        self._ended_since_call.pop(folder, None)
        self._asked.add(folder)

    def _page_left(self, folder: FolderT, cursor: int) -> list[_Track[FolderT]]:
        """The watched jobs of ``folder`` above a full page's last id."""
        watch = self._watching.get(folder)
        return [] if watch is None else [t for t in watch.jobs.values() if t.job_id > cursor]

    def _next_page(self, now: float) -> ListUnfinished[FolderT] | None:
        """The next page of a range whose last answer was a full page."""
        while self._continue:
            folder, cursor = next(iter(self._continue.items()))
            del self._continue[folder]
            left = self._page_left(folder, cursor)
            if left:
                return self._issue_range(folder, left, now)
        return None

    def _issue_range(
        self, folder: FolderT, tracks: list[_Track[FolderT]], now: float
    ) -> ListUnfinished[FolderT]:
        """One range query settling ``tracks`` (watched jobs of ``folder``), now LISTING."""
        self._continue.pop(folder, None)
        self._called(folder)
        job_ids = [t.job_id for t in tracks]
        for track in tracks:
            track.phase = _Phase.LISTING
        self._watching[folder].remove_many(job_ids)  # nothing to do when taken out already
        ids = tuple(sorted(job_ids))
        split = _straggler_split(ids, gap=_STRAGGLER_GAP)
        self._budget.spend(now)
        self._count.list_calls += 1
        self._count.range_calls += 1
        top = self._page_size.get(folder, self.policy.range_page)
        return ListUnfinished(folder, ids[split], ids[-1], ids, top, stragglers=ids[:split])

    def _take_for_list(
        self, folder: FolderT, due: list[_Track[FolderT]], now: float, room: ListRoom
    ) -> tuple[int, ...]:
        """Jobs of ``folder`` for one list call while ``room`` holds them, now
        LISTING: the due ones first, then the others not checked in
        ``min_interval`` or never listed (free riders)."""
        due.sort(key=_DUE_AT)
        chosen = _fill(room, due)
        watch = self._watching[folder]
        if len(chosen) == len(due):
            # Every due job is chosen: the others are those not ready yet.
            recent = now - self.policy.min_interval
            extra = [
                t
                for t in watch.jobs.values()
                if t.ready_at > now
                and t.not_before <= now
                and (t.last_checked <= recent or t.last_checked == t.added_at)
            ]
            extra.sort(key=_DUE_AT)
            chosen.extend(_fill(room, extra))
        job_ids = tuple([t.job_id for t in chosen])
        for track in chosen:
            track.phase = _Phase.LISTING
        watch.remove_many(job_ids)
        return job_ids

    def _most_overdue(self, now: float) -> _Track[FolderT] | None:
        # overdue_at, as in next_wake: a wake time computed there is exact here.
        found: _Track[FolderT] | None = None
        for watch in self._watching.values():
            if watch.min_overdue > now:
                continue  # usually no job is overdue
            for track in watch.jobs.values():
                if track.overdue_at <= now and (found is None or track.due_at < found.due_at):
                    found = track
        return found

    def _mark_final(self, track: _Track[FolderT], now: float) -> None:
        if track.final:
            return
        track.final = True
        track.failures = 0
        if track.phase is _Phase.FETCHING:
            # A probe in flight returns the full record; it becomes the outputs read.
            track.purpose = FetchPurpose.OUTPUTS
            return
        track.not_before = now
        self._to_fetch_queue(track, FetchPurpose.OUTPUTS)

    def _watching_of(self, track: _Track[FolderT]) -> _FolderWatch[FolderT]:
        watch = self._watching.get(track.folder)
        if watch is None:
            watch = self._watching[track.folder] = _FolderWatch()
        return watch

    def _leave_phase(self, track: _Track[FolderT]) -> None:
        """Take ``track`` out of what holds it in its phase: a WATCHING job is in
        its folder's watch, a FETCH_QUEUED one in the fetch queue, a LISTING or
        FETCHING one in neither (its call is in flight). Only these phase
        changes move a job between them."""
        if track.phase is _Phase.WATCHING:
            self._watching_of(track).remove(track.job_id)  # out with its old times
        elif track.phase is _Phase.FETCH_QUEUED:
            self._fetch_queue.pop(track.job_id, None)

    def _to_watching(self, track: _Track[FolderT]) -> None:
        # Runs for every row of every list answer (a job LISTING is in nothing to
        # leave): comparisons and lookups, not min/max and helper calls.
        if track.phase is _Phase.WATCHING or track.phase is _Phase.FETCH_QUEUED:
            self._leave_phase(track)
        track.phase = _Phase.WATCHING
        due, not_before = track.due_at, track.not_before
        track.ready_at = due if due > not_before else not_before
        overdue = due + self._probe_grace
        track.overdue_at = overdue if overdue > not_before else not_before
        watch = self._watching.get(track.folder)
        if watch is None:
            watch = self._watching[track.folder] = _FolderWatch()
        watch.add(track)

    def _to_fetch_queue(self, track: _Track[FolderT], purpose: FetchPurpose) -> None:
        if track.phase is _Phase.WATCHING:
            self._watching_of(track).remove(track.job_id)
        # Already queued: it keeps its place in the queue.
        track.phase = _Phase.FETCH_QUEUED
        track.purpose = purpose
        self._fetch_queue[track.job_id] = track

    def _forget(self, track: _Track[FolderT]) -> None:
        del self._jobs[track.job_id]
        self._leave_phase(track)


_DUE_AT = operator.attrgetter("due_at")  # a sort key, without a Python call per job


def _fill(room: ListRoom, tracks: list[_Track[FolderT]]) -> list[_Track[FolderT]]:
    """The first ``tracks`` whose ids ``room`` holds, in order (taken from it)."""
    return tracks[: room.take_ids([t.job_id for t in tracks])]
