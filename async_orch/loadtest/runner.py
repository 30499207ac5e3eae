"""Drive a tenant with a load profile and record what happens (the I/O shell).

Theory of operation:

* Jobs are started by :meth:`OrchestratorClient.iter_jobs`, the same code users
  run, with the dispatcher's start rate (a token bucket) following the profile:
  a pacer task sets ``starts_per_second`` to the profile's rate four times a
  second. After the profile's end the last rate is kept until every planned job
  has been asked for.
* Every HTTP try (retries and token requests included) is timed by a
  transport hook (:class:`_HttpRecorder`), so the report counts each try as the
  server sees it; the first StartJobs carrying a job's Reference marks when that
  job was asked for.
* A ticker samples the jobs' states every ``status_interval`` seconds for the
  charts and the live progress line.
* :meth:`LoadTest.interrupt` (Ctrl-C) stops asking for jobs at once and, if the
  plan says ``stop_jobs``, stops the jobs already started (SoftStop, then Kill);
  otherwise they are left running and listed in the report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio

from async_orch._client import OrchestratorClient
from async_orch._config import Settings
from async_orch._dispatcher import DispatchLimits
from async_orch._errors import ConfigurationError
from async_orch._jobs import JobHandle, JobResult, Progress
from async_orch._logs import get_logger
from async_orch._options import Hooks, StopPolicy
from async_orch._planner import PollPolicy
from async_orch._transport_hooks import RequestSent, ResponseReceived, TransportHooks
from async_orch.loadtest.measure import (
    NO_ANSWER,
    START_JOBS,
    HttpSample,
    Recording,
    route_label,
)
from async_orch.loadtest.profile import LoadProfile
from async_orch.loadtest.template import JobTemplate

__all__ = ["LiveStatus", "LoadPlan", "LoadTest", "live_line"]

log = get_logger("async_orch.loadtest")

_PACE_EVERY = 0.25  # seconds between start-rate updates
_PAUSED_RATE = 1e-3  # jobs/s standing for "none now": the dispatcher wants a positive rate


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadPlan:
    """What to run.

    Attributes:
        profile: start rate over time.
        template: what each job is.
        max_jobs: a hard cap on the jobs asked for (None: what the profile plans).
        max_in_flight: StartJobs calls at once (high enough not to hold the rate back).
        poll: how to watch the jobs (the client's default when None).
        drain_timeout: seconds after the profile's end to wait for jobs to end.
        stop_jobs: stop the jobs still running when interrupted or at the drain
            timeout; otherwise they are left running and listed in the report.
    """

    profile: LoadProfile
    template: JobTemplate
    max_jobs: int | None = None
    max_in_flight: int = 64
    poll: PollPolicy | None = None
    drain_timeout: float = 300.0
    stop_jobs: bool = False

    def __post_init__(self) -> None:
        problem = self.profile.too_many_jobs(self.max_jobs, bound_with="max_jobs")
        if problem is not None:
            raise ConfigurationError(problem)

    def start_times(self) -> list[float]:
        return self.profile.start_times(limit=self.max_jobs)


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """A snapshot for the live progress line."""

    elapsed: float
    target_rate: float
    planned: int
    asked: int
    by_state: dict[str, int]
    requests: int
    http_429: int
    failed: int
    start_jobs_p95: float | None  # seconds, over the last status interval


def live_line(status: LiveStatus) -> str:
    """One line: time, target rate, jobs asked and by state, requests and errors."""
    merged: dict[str, int] = {}
    for state, n in status.by_state.items():
        if n and state != "queued":
            merged[state.lower()] = merged.get(state.lower(), 0) + n
    states = ", ".join(f"{state} {n}" for state, n in merged.items())
    p95 = "-" if status.start_jobs_p95 is None else f"{status.start_jobs_p95 * 1000:.0f} ms"
    return (
        f"{status.elapsed:6.1f}s target {status.target_rate:.1f}/s | asked "
        f"{status.asked}/{status.planned} | {states or 'no jobs yet'} | StartJobs p95 {p95} | "
        f"requests {status.requests}, 429 {status.http_429}, failed {status.failed}"
    )


class LoadTest:
    """One load-test run; [`run`][async_orch.loadtest.LoadTest.run] returns the `Recording`.

    Args:
        settings: the tenant (or simulator) to drive.
        plan: profile, jobs, caps.
        on_status: called with a [`LiveStatus`][async_orch.loadtest.LiveStatus] every
            ``status_interval`` seconds.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        settings: Settings,
        plan: LoadPlan,
        *,
        on_status: Callable[[LiveStatus], None] | None = None,
        status_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.recording = Recording()
        self.duration = 0.0
        self.interrupted = False
        self._on_status = on_status
        self._status_interval = status_interval
        self._clock = clock
        self._t0 = clock()
        self._progress = Progress()
        self._scope: anyio.CancelScope | None = None
        self._last_status_http = 0

    def now(self) -> float:
        """Seconds since the run began."""
        return self._clock() - self._t0

    def interrupt(self) -> None:
        """Stop asking for jobs; stop started ones if the plan says so (see module doc)."""
        self.interrupted = True
        if self._scope is not None:
            self._scope.cancel()

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> Recording:
        """Run the plan to its end (or to [`interrupt`][async_orch.loadtest.LoadTest.interrupt]);
        return what was recorded."""
        plan = self.plan
        times = plan.start_times()
        requests = [plan.template.request(n) for n in range(len(times))]
        for n, at in enumerate(times):
            self.recording.plan(n, plan.template.reference(n), plan.template.folder(n), at)
        self._progress = Progress(total=len(requests))
        self._t0 = self._clock()
        log.info(
            "async_orch.loadtest.started",
            jobs=len(requests),
            profile=plan.profile.describe(),
            url=self.settings.url,
        )
        first_rate = max(plan.profile.rate_at(0.0), _PAUSED_RATE)
        limits_now = DispatchLimits(max_in_flight=plan.max_in_flight, starts_per_second=first_rate)
        async with (
            OrchestratorClient(
                self.settings,
                limits=limits_now,
                poll=plan.poll,
                hooks=[_HttpRecorder(self.recording, self.now)],
            ) as orch,
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(self._pace, orch)
            tasks.start_soon(self._tick)
            with anyio.CancelScope() as self._scope:
                await self._consume(orch, requests)
            tasks.cancel_scope.cancel()
        self.duration = self.now()
        self.recording.note_states(self.duration, self._progress.by_state)
        log.info(
            "async_orch.loadtest.finished",
            seconds=round(self.duration, 1),
            interrupted=self.interrupted,
            requests=len(self.recording.http),
        )
        return self.recording

    async def _consume(self, orch: OrchestratorClient, requests: list[Any]) -> None:
        def started(index: int, handle: JobHandle) -> None:
            self.recording.note_started(index, handle.job_id, self.now())

        def progress(snapshot: Progress) -> None:
            self._progress = snapshot

        results = orch.iter_jobs(
            requests,
            timeout=self.plan.profile.duration + self.plan.drain_timeout,
            stop=StopPolicy(on_timeout=self.plan.stop_jobs, on_cancel=self.plan.stop_jobs),
            hooks=Hooks(on_progress=progress, on_started=started),
        )
        async with aclosing(results) as stream:
            async for result in stream:
                self._finished(result)

    def _finished(self, result: JobResult) -> None:
        job = result.job
        self.recording.note_finished(
            result.index,
            outcome=result.outcome.value,
            state=None if result.state is None else str(result.state),
            at=self.now(),
            created=job.creation_time if job else None,
            start=job.start_time if job else None,
            end=job.end_time if job else None,
            timed_out=result.timed_out,
        )

    async def _pace(self, orch: OrchestratorClient) -> None:
        profile = self.plan.profile
        rate = max(profile.rate_at(0.0), _PAUSED_RATE)
        while True:
            await anyio.sleep(_PACE_EVERY)
            t = self.now()
            if t < profile.duration:
                rate = max(profile.rate_at(t), _PAUSED_RATE)
            elif rate <= _PAUSED_RATE:
                # The profile ended on a zero rate with jobs left: let them go at 1/s.
                rate = 1.0
            orch.set_limits(starts_per_second=rate)

    async def _tick(self) -> None:
        while True:
            await anyio.sleep(self._status_interval)
            at = self.now()
            self.recording.note_states(at, self._progress.by_state)
            if self._on_status is not None:
                self._on_status(self._status(at))

    def _status(self, at: float) -> LiveStatus:
        http = self.recording.http
        recent = sorted(
            s.latency
            for s in http[self._last_status_http :]
            if s.route == START_JOBS and s.outcome != NO_ANSWER
        )
        self._last_status_http = len(http)
        p95 = recent[min(len(recent) - 1, math.ceil(0.95 * len(recent)) - 1)] if recent else None
        return LiveStatus(
            elapsed=at,
            target_rate=self.plan.profile.rate_at(at),
            planned=len(self.recording.jobs),
            asked=sum(1 for j in self.recording.jobs.values() if j.sent_at is not None),
            by_state=dict(self._progress.by_state),
            requests=len(http),
            http_429=sum(1 for s in http if s.outcome == "429"),
            failed=sum(1 for s in http if s.failed),
            start_jobs_p95=p95,
        )


class _HttpRecorder(TransportHooks):
    """Records every try and when each job was first asked for."""

    def __init__(self, recording: Recording, now: Callable[[], float]) -> None:
        self._recording = recording
        self._now = now  # seconds since the run began

    def on_request(self, event: RequestSent) -> None:
        if route_label(event.method, urlsplit(event.url).path) == START_JOBS:
            reference = _reference_of(event.json)
            if reference is not None:
                self._recording.note_sent(reference, self._now())

    def on_response(self, event: ResponseReceived) -> None:
        sent = event.request
        route = route_label(sent.method, urlsplit(sent.url).path)
        if event.cancelled:
            self._recording.cancelled[route] += 1
            return
        outcome = NO_ANSWER if event.status is None else str(event.status)
        self._recording.note_http(
            HttpSample(self._now() - event.seconds, route, outcome, event.seconds)
        )


def _reference_of(body: Any) -> str | None:
    """The Reference in a StartJobs body."""
    info = body.get("startInfo") if isinstance(body, dict) else None
    reference = info.get("Reference") if isinstance(info, dict) else None
    return reference if isinstance(reference, str) else None
