"""OrchestratorClient: one object wiring settings, token, transport and dispatcher.

Usage::

    async with OrchestratorClient(Settings.from_env()) as orch:
        results = await orch.run_jobs(
            [JobRequest(process="Echo", folder=f, inputs={"n": i}) for i, f in ...]
        )

A client holds no global state: two clients for two tenants never share a
token, a cache or a connection pool (unless you inject one session into both).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any

import aiohttp

from async_orch.batch import JobHandle, JobRequest, JobResult
from async_orch.config import Settings
from async_orch.dispatcher import (
    Dispatcher,
    DispatchLimits,
    ProgressCallback,
    Started,
    StartFailure,
)
from async_orch.planner import PollPolicy
from async_orch.poller import StopPolicy
from async_orch.resources import OrchestratorAPI
from async_orch.transport import Transport

__all__ = ["OrchestratorClient"]


class OrchestratorClient:
    """The async-orch client: resource calls (``.api``) and bulk dispatch.

    Args:
        settings: where and how to connect (see :class:`~async_orch.config.Settings`).
        session: an aiohttp session to use instead of creating (and closing) one.
        limits: limits on starting jobs (resizable later with :meth:`set_limits`).
        poll: how to watch jobs (list-call budget, intervals).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        limits: DispatchLimits | None = None,
        poll: PollPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.transport = Transport(settings, session=session)
        self.api = OrchestratorAPI(self.transport)
        self.dispatcher = Dispatcher(self.api, limits=limits, poll=poll, retry=settings.retry)

    async def __aenter__(self) -> OrchestratorClient:
        await self.transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session if this client created it."""
        await self.transport.aclose()

    # -- bulk dispatch ---------------------------------------------------------------

    async def run_jobs(
        self,
        requests: Sequence[JobRequest],
        *,
        timeout: float | None = None,
        stop_on_timeout: bool = False,
        stop_grace: float = 30.0,
        on_progress: ProgressCallback | None = None,
        on_started: Callable[[int, JobHandle], None] | None = None,
    ) -> list[JobResult]:
        """Start every request and wait for every job; results in request order.

        Failed jobs do not raise: look at each result's ``outcome``. A request with
        ``jobs_count`` N gives N consecutive results.
        """
        results = [
            r
            async for r in self.iter_jobs(
                requests,
                timeout=timeout,
                stop_on_timeout=stop_on_timeout,
                stop_grace=stop_grace,
                on_progress=on_progress,
                on_started=on_started,
            )
        ]
        results.sort(key=lambda r: (r.index, r.job_id or 0))
        return results

    async def iter_jobs(
        self,
        requests: Sequence[JobRequest],
        *,
        timeout: float | None = None,
        stop_on_timeout: bool = False,
        stop_grace: float = 30.0,
        on_progress: ProgressCallback | None = None,
        on_started: Callable[[int, JobHandle], None] | None = None,
    ) -> AsyncIterator[JobResult]:
        """Like :meth:`run_jobs`, yielding each result as soon as its job ends."""
        async for result in self.dispatcher.iter_results(
            requests,
            timeout=timeout,
            stop_on_timeout=StopPolicy(stop=stop_on_timeout, grace=stop_grace),
            on_progress=on_progress,
            on_started=on_started,
        ):
            yield result

    async def start_jobs(self, requests: Sequence[JobRequest]) -> list[Started | StartFailure]:
        """Start only: per request, what it started (handles to persist) or why not."""
        return await self.dispatcher.start(requests)

    async def wait_jobs(
        self,
        handles: Sequence[JobHandle],
        *,
        timeout: float | None = None,
        stop_on_timeout: bool = False,
        stop_grace: float = 30.0,
        on_progress: ProgressCallback | None = None,
    ) -> list[JobResult]:
        """Wait only: watch jobs started earlier (maybe elsewhere) until they end.

        Results come in the order of ``handles``.
        """
        results = [
            r
            async for r in self.dispatcher.iter_results(
                handles=handles,
                timeout=timeout,
                stop_on_timeout=StopPolicy(stop=stop_on_timeout, grace=stop_grace),
                on_progress=on_progress,
            )
        ]
        results.sort(key=lambda r: r.index)
        return results

    def set_limits(self, **limits: Any) -> None:
        """Resize dispatch limits while jobs run (see :meth:`Dispatcher.set_limits`)."""
        self.dispatcher.set_limits(**limits)
