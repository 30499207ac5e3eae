"""What a load test records, and the numbers made from it (pure).

The runner feeds a :class:`Recording` with three kinds of observations, all timed
in seconds since the run began (its clock, injected):

* every HTTP request the client sent (:class:`HttpSample`: route, status or
  ``"error"`` when no answer came, latency to the response headers);
* every job's life as the client saw it (:class:`JobRecord`: planned, StartJobs
  sent, started, result in hand) plus, from the job itself, its queue time
  (CreationTime to StartTime) and run time (StartTime to EndTime) in the tenant's
  seconds;
* the number of jobs in each state, sampled over time (:class:`StateSample`).

:func:`summarize` turns it into one JSON-ready dict: totals, rates, percentiles
and per-interval series, the input of the HTML report.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "PERCENTILES",
    "START_JOBS",
    "HttpSample",
    "JobRecord",
    "Recording",
    "StateSample",
    "bucket_width",
    "percentile",
    "percentiles",
    "route_label",
    "summarize",
]

PERCENTILES = (50, 90, 95, 99)
START_JOBS = "StartJobs"
JOBS_LIST = "Jobs list"
NO_ANSWER = "error"  # the request got no HTTP answer (connection dropped, timeout)

# (pattern on the path's tail, label). The tail is what follows the tenant's base
# (``/{org}/{tenant}/orchestrator_``), so the same labels fit the simulator's stats
# templates (``GET /odata/Jobs({key})``) and real request paths (``.../Jobs(42)``).
_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern + r"$"), label)
    for pattern, label in (
        (r"/identity_/connect/token", "Token"),
        (r"/oauth/token", "Token"),
        (r"/api/Account/Authenticate", "Token"),
        (r"/odata/Jobs/UiPath\.Server\.Configuration\.OData\.StartJobs", START_JOBS),
        (r"/odata/Jobs/UiPath\.Server\.Configuration\.OData\.StopJobs", "StopJobs"),
        (r"/odata/Jobs\([^)/]*\)/UiPath\.Server\.Configuration\.OData\.StopJob", "StopJob"),
        (r"/odata/Jobs/UiPath\.Server\.Configuration\.OData\.GetByKey\(.*\)", "Job by key"),
        (r"/odata/Jobs\([^)/]*\)", "Job by id"),
        (r"/odata/Jobs", JOBS_LIST),
        (r"/odata/Folders", "Folders"),
        (r"/odata/Releases", "Releases"),
    )
)

# States in the order the charts stack them (others follow, sorted).
_STATE_ORDER = (
    "queued", "Pending", "Running", "Suspended", "Resumed", "Stopping", "Terminating",
    "successful", "faulted", "stopped", "timed_out", "not_started", "uncertain", "unknown",
)  # fmt: skip


_FINAL_STATES = {"Successful": "successful", "Faulted": "faulted", "Stopped": "stopped"}


def route_label(method: str, path: str) -> str:
    """A short name for an Orchestrator endpoint: ``"StartJobs"``, ``"Jobs list"``, ..."""
    path = path.split("?", 1)[0].rstrip("/")
    for pattern, label in _ROUTES:
        if pattern.search(path):
            return label
    return f"{method.upper()} other"


@dataclass(frozen=True, slots=True)
class HttpSample:
    """One HTTP request: when it was sent, where, how it ended and how long it took."""

    at: float
    route: str
    outcome: str  # the status as text ("201", "429"), or "error" for no answer
    latency: float

    @property
    def failed(self) -> bool:
        """No answer, or an error status (429 included)."""
        return self.outcome == NO_ANSWER or int(self.outcome) >= 400


@dataclass(slots=True)
class JobRecord:
    """One planned job, as the client saw it (times in seconds since the run began)."""

    index: int
    reference: str
    folder: str
    planned_at: float
    sent_at: float | None = None  # the first StartJobs carrying its Reference
    started_at: float | None = None  # the client knew the job's Id
    job_id: int | None = None
    finished_at: float | None = None  # the result was in hand
    outcome: str | None = None
    state: str | None = None
    timed_out: bool = False  # its result came from the deadline, not from its end
    queue_seconds: float | None = None  # tenant time: CreationTime -> StartTime
    run_seconds: float | None = None  # tenant time: StartTime -> EndTime

    @property
    def end_to_end(self) -> float | None:
        """From asking for the job to holding its result (client seconds); started jobs only."""
        asked = self.sent_at if self.sent_at is not None else self.started_at
        if asked is None or self.finished_at is None or self.job_id is None:
            return None
        return self.finished_at - asked


@dataclass(frozen=True, slots=True)
class StateSample:
    """How many jobs were in each state at one moment."""

    at: float
    counts: Mapping[str, int]


def _seconds_between(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return (b - a).total_seconds()


@dataclass(slots=True)
class Recording:
    """Everything observed during one run; see the module docstring."""

    http: list[HttpSample] = field(default_factory=list)
    jobs: dict[int, JobRecord] = field(default_factory=dict)
    states: list[StateSample] = field(default_factory=list)
    #: route -> tries cancelled on the wire (an interrupt): the server may have
    #: received and answered them, or not; they are kept out of ``http``.
    cancelled: Counter[str] = field(default_factory=Counter)
    _by_reference: dict[str, int] = field(default_factory=dict)

    def plan(self, index: int, reference: str, folder: str, at: float) -> None:
        self.jobs[index] = JobRecord(index, reference, folder, at)
        self._by_reference[reference] = index

    def note_http(self, sample: HttpSample) -> None:
        self.http.append(sample)

    def note_sent(self, reference: str, at: float) -> None:
        """A StartJobs carrying ``reference`` was sent (only the first one counts)."""
        index = self._by_reference.get(reference)
        if index is not None and self.jobs[index].sent_at is None:
            self.jobs[index].sent_at = at

    def note_started(self, index: int, job_id: int, at: float) -> None:
        record = self.jobs[index]
        record.job_id = job_id
        if record.started_at is None:
            record.started_at = at

    def note_finished(
        self,
        index: int,
        *,
        outcome: str,
        state: str | None,
        at: float,
        created: datetime | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        timed_out: bool = False,
    ) -> None:
        """The job's result is in hand; ``timed_out``: the batch's deadline (the profile's
        end plus the drain timeout) passed first, and the job was left running or stopped."""
        record = self.jobs[index]
        record.finished_at = at
        record.outcome = outcome
        record.state = state
        record.timed_out = timed_out
        record.queue_seconds = _seconds_between(created, start)
        record.run_seconds = _seconds_between(start, end)

    def note_states(self, at: float, counts: Mapping[str, int]) -> None:
        """Record state counts; a final job state whose outputs are still being read
        ("Successful") is counted with its outcome ("successful")."""
        folded: Counter[str] = Counter()
        for state, n in counts.items():
            folded[_FINAL_STATES.get(state, state)] += n
        self.states.append(StateSample(at, {k: v for k, v in folded.items() if v}))

    @property
    def start_jobs(self) -> list[HttpSample]:
        return [s for s in self.http if s.route == START_JOBS]


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted values, interpolating between ranks."""
    if not ordered:
        raise ValueError("percentile of no values")
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def percentiles(values: Iterable[float]) -> dict[str, float] | None:
    """count, mean, min, p50/p90/p95/p99 and max; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    result: dict[str, float] = {
        "count": len(ordered),
        "mean": sum(ordered) / len(ordered),
        "min": ordered[0],
    }
    for q in PERCENTILES:
        result[f"p{q}"] = percentile(ordered, q)
    result["max"] = ordered[-1]
    return result


def bucket_width(duration: float, *, max_buckets: int = 120) -> float:
    """Seconds per interval of the series: 1 s, or more so there are at most max_buckets."""
    return float(max(1, math.ceil(duration / max_buckets)))


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _http_totals(samples: Sequence[HttpSample]) -> dict[str, Any]:
    by_route: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for s in samples:
        by_route[s.route][s.outcome] += 1
    failed = sum(1 for s in samples if s.failed)
    throttled = sum(1 for s in samples if s.outcome == "429")
    return {
        "requests": len(samples),
        "by_route": {r: dict(sorted(c.items())) for r, c in sorted(by_route.items())},
        "failed": failed,
        "http_429": throttled,
        "no_answer": sum(1 for s in samples if s.outcome == NO_ANSWER),
        "error_rate": _rate(failed, len(samples)),
        "rate_429": _rate(throttled, len(samples)),
    }


def _series(
    recording: Recording, *, width: float, duration: float, target: Sequence[float]
) -> dict[str, Any]:
    count = max(1, math.ceil(duration / width))
    latencies: list[list[float]] = [[] for _ in range(count)]
    sent, created, throttled, failed, completed = ([0] * count for _ in range(5))

    def slot(at: float) -> int:
        return min(count - 1, max(0, int(at // width)))

    for s in recording.http:
        i = slot(s.at)
        throttled[i] += s.outcome == "429"
        failed[i] += s.failed
        if s.route == START_JOBS:
            sent[i] += 1
            if s.outcome != NO_ANSWER:
                latencies[i].append(s.latency)
    for job in recording.jobs.values():
        if job.started_at is not None:
            created[slot(job.started_at)] += 1
        if job.finished_at is not None and job.job_id is not None:
            completed[slot(job.finished_at)] += 1

    def stat(values: list[float], q: float | None) -> float | None:
        if not values:
            return None
        ordered = sorted(values)
        return ordered[-1] if q is None else percentile(ordered, q)

    return {
        "bucket_seconds": width,
        "t": [i * width for i in range(count)],
        "target_rate": list(target),
        "start_rate": [n / width for n in created],
        "completion_rate": [n / width for n in completed],
        "start_jobs_requests": sent,
        "jobs_started": created,
        "jobs_completed": completed,
        "latency_p50": [stat(v, 50) for v in latencies],
        "latency_p95": [stat(v, 95) for v in latencies],
        "latency_max": [stat(v, None) for v in latencies],
        "http_429": throttled,
        "failed_requests": failed,
    }


def _state_series(samples: Sequence[StateSample]) -> dict[str, Any]:
    seen = {state for s in samples for state in s.counts}
    order = [s for s in _STATE_ORDER if s in seen] + sorted(seen.difference(_STATE_ORDER))
    return {
        "t": [s.at for s in samples],
        "series": {state: [s.counts.get(state, 0) for s in samples] for state in order},
    }


def summarize(
    recording: Recording,
    *,
    duration: float,
    target_rate: Sequence[float] | None = None,
    bucket: float | None = None,
) -> dict[str, Any]:
    """Totals, rates, percentiles and series of a run lasting ``duration`` seconds.

    ``target_rate`` (jobs/s per interval of ``bucket`` seconds) is carried into
    the series for the charts; by default intervals follow :func:`bucket_width`.
    """
    width = bucket or bucket_width(duration)
    jobs = sorted(recording.jobs.values(), key=lambda j: j.index)
    started = [j for j in jobs if j.job_id is not None]
    outcomes = Counter(j.outcome for j in jobs if j.outcome is not None)
    unfinished = [j for j in started if j.finished_at is None]
    finished = len(started) - len(unfinished)
    start_jobs = recording.start_jobs
    answered = [s.latency for s in start_jobs if s.outcome != NO_ANSWER]
    count = max(1, math.ceil(duration / width))
    target = list(target_rate or [])[:count]
    target += [0.0] * (count - len(target))
    return {
        "duration_seconds": duration,
        "jobs": {
            "planned": len(jobs),
            "asked": sum(1 for j in jobs if j.sent_at is not None),
            "started": len(started),
            "finished": finished,
            "unfinished": len(unfinished),
            # Started, but the deadline came before their end (left running or stopped).
            "timed_out": sum(1 for j in started if j.timed_out),
            "by_outcome": dict(sorted(outcomes.items())),
        },
        "throughput": {
            "started_per_second": len(started) / duration if duration else 0.0,
            "completed_per_second": finished / duration if duration else 0.0,
        },
        "http": {**_http_totals(recording.http), "cancelled": dict(recording.cancelled)},
        "start_jobs": {
            **_http_totals(start_jobs),
            "latency_seconds": percentiles(answered),
        },
        "times": {
            "queue_seconds": percentiles(
                j.queue_seconds for j in jobs if j.queue_seconds is not None
            ),
            "run_seconds": percentiles(j.run_seconds for j in jobs if j.run_seconds is not None),
            "end_to_end_seconds": percentiles(e for j in jobs if (e := j.end_to_end) is not None),
        },
        "series": _series(recording, width=width, duration=duration, target=target),
        "states": _state_series(recording.states),
        "unfinished_jobs": [
            {"job_id": j.job_id, "reference": j.reference, "folder": j.folder}
            for j in unfinished[:1000]
        ],
    }
