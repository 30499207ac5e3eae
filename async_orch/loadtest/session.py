"""One load test from start to report: names checked, counters before, the run,
counters after."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from async_orch._client import OrchestratorClient
from async_orch._config import Settings
from async_orch.loadtest.measure import bucket_width, summarize
from async_orch.loadtest.profile import LoadProfile
from async_orch.loadtest.report import build_report, server_counters
from async_orch.loadtest.runner import LoadTest
from async_orch.loadtest.target import Target
from async_orch.loadtest.template import JobTemplate

__all__ = ["check_names", "run_and_report", "target_rates"]


async def check_names(settings: Settings, template: JobTemplate) -> None:
    """Resolve every folder of ``template`` and its process there, before any load.

    A typo raises [`FolderNotFoundError`][async_orch.FolderNotFoundError] or
    [`ProcessNotFoundError`][async_orch.ProcessNotFoundError] (the messages ``dispatch``
    gives), an unreachable URL [`TransportError`][async_orch.TransportError], refused
    credentials [`AuthenticationError`][async_orch.AuthenticationError]: one clear error
    before any job starts, instead of a run whose every job is "not started".

    It uses a client of its own, so its requests are not part of the measurements
    (call it before [`run_and_report`][async_orch.loadtest.run_and_report], which reads the
    simulator's counters first).
    """
    async with OrchestratorClient(settings) as orch:
        for folder in dict.fromkeys(template.folders):  # in the order given, once each
            await orch.api.resolve_release(folder, template.process)


def target_rates(profile: LoadProfile, *, width: float, duration: float) -> list[float]:
    """The profile's rate at the middle of each interval of ``width`` seconds."""
    count = max(1, math.ceil(duration / width))
    return [profile.rate_at((i + 0.5) * width) for i in range(count)]


async def run_and_report(
    target: Target, test: LoadTest, *, extra_meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run ``test`` against ``target``; return the report (see report.build_report)."""
    before = await target.simulator_stats() if target.simulator_stats else None
    started_at = datetime.now(UTC)
    recording = await test.run()
    after = await target.simulator_stats() if target.simulator_stats else None
    width = bucket_width(test.duration)
    summary = summarize(
        recording,
        duration=test.duration,
        target_rate=target_rates(test.plan.profile, width=width, duration=test.duration),
        bucket=width,
    )
    plan = test.plan
    meta: dict[str, Any] = {
        "target": target.description,
        "simulator": target.is_simulator,
        "time_scale": target.time_scale,
        "faults": dict(target.faults or {}),
        "started_at": started_at.isoformat(timespec="seconds"),
        "interrupted": test.interrupted,
        "profile": plan.profile.to_dict(),
        "template": plan.template.to_dict(),
        "max_jobs": plan.max_jobs,
        "max_in_flight": plan.max_in_flight,
        "drain_timeout": plan.drain_timeout,
        "stop_jobs": plan.stop_jobs,
        **(extra_meta or {}),
    }
    server = server_counters(before, after) if after is not None else None
    return build_report(summary, meta=meta, server=server)
