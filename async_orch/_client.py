"""OrchestratorClient: one object wiring settings, token, transport and dispatcher.

Usage::

    async with OrchestratorClient(Settings.from_env()) as orch:
        results = await orch.run_jobs(
            [JobRequest(process="Echo", folder=f, inputs={"n": i}) for i, f in ...]
        )

Calls made outside the ``async with`` block (or after closing a session passed
in with ``session=``) raise :class:`~async_orch._errors.ClientClosedError`.

A client holds no global state: two clients for two tenants never share a
token, a cache or a connection pool (unless you inject one session into both).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from types import TracebackType

import aiohttp

from async_orch._config import Settings
from async_orch._dispatcher import Dispatcher, DispatchLimits, Started, StartFailure
from async_orch._errors import ConfigurationError, InvalidRequestError
from async_orch._fatal import upload_scope_missing
from async_orch._jobs import (
    JobHandle,
    JobRequest,
    JobResult,
    checked_requests,
    with_default_folder,
)
from async_orch._journaled import JournalArg, resume_with_journal, run_with_journal
from async_orch._options import Hooks, StartedCallback, StopPolicy
from async_orch._planner import PollPolicy
from async_orch._resources import OrchestratorAPI
from async_orch._shared_budget import SharedListBudget
from async_orch._transport import Transport
from async_orch._transport_hooks import TransportHooks
from async_orch._validation import Validation, validate_requests
from async_orch._webhooks import WebhookReceiver

__all__ = ["OrchestratorClient"]


class OrchestratorClient:
    """The async-orch client: resource calls (``.api``) and bulk dispatch.

    Args:
        settings: where and how to connect (see [`Settings`][async_orch.Settings]).
        session: an aiohttp session to use instead of creating (and closing) one.
        limits: limits on starting jobs (resizable later with
            [`set_limits`][async_orch.OrchestratorClient.set_limits]).
        poll: how to watch jobs (list-call budget, intervals).
        hooks: told of every HTTP try, answer and retry (see
            `async_orch._transport_hooks`).
        webhooks: a [`WebhookReceiver`][async_orch.WebhookReceiver] whose job
            events speed up detection (polling goes on; see the library guide, "Webhooks").
        list_budget: a list budget shared with other clients of the tenant
            ([`InProcessListBudget`][async_orch.InProcessListBudget] for clients of one
            process, [`RedisListBudget`][async_orch.RedisListBudget] for a fleet); each
            list call also takes a slot of it. By default the client has one of its own. Closing the
            client does not close it: its owner does.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        limits: DispatchLimits | None = None,
        poll: PollPolicy | None = None,
        hooks: Sequence[TransportHooks] = (),
        webhooks: WebhookReceiver | None = None,
        list_budget: SharedListBudget | None = None,
    ) -> None:
        _check_arguments(settings, session, limits, poll, hooks, webhooks, list_budget)
        self.settings = settings
        self.transport = Transport(settings, session=session, hooks=hooks)
        self.api: OrchestratorAPI = OrchestratorAPI(self.transport)
        """Typed resource calls (folders, releases, jobs) for what the batch calls do not cover."""
        # The reconcile window's default follows the request timeout.
        retry = replace(
            settings.retry, reconcile_window=settings.retry.window_after(settings.timeout.total)
        )
        self.dispatcher = Dispatcher(
            self.api,
            limits=limits,
            poll=poll,
            retry=retry,
            webhooks=webhooks,
            list_budget=list_budget,
            server_now=self.transport.server_now,
        )
        # Every GET Jobs answer's remaining count steers the adaptive list budget.
        self.api.on_list_answer = self.dispatcher.observe_list_answer

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
        requests: Sequence[JobRequest] = (),
        *,
        handles: Sequence[JobHandle] = (),
        timeout: float | None = None,
        stop: StopPolicy | None = None,
        hooks: Hooks | None = None,
        journal: JournalArg | None = None,
    ) -> list[JobResult]:
        """Start every request and wait for every job; results in request order.

        Failed jobs do not raise: look at each result's ``outcome``. A request with
        ``jobs_count`` N gives N consecutive results.

        Args:
            handles: jobs started earlier (say, by a run that was interrupted) to
                wait for as well, never started again; their results come after
                the requests', with ``index`` = ``len(requests)`` + position.
            timeout: seconds for the whole batch. Requests not started by then are
                NOT_STARTED; jobs still running are TIMED_OUT (or stopped).
            stop: whether to stop jobs past a deadline (the batch timeout or a
                request's ``timeout``) and those of a cancelled batch, and how long
                a job may stay Pending before it is reported STUCK_PENDING
                ([`StopPolicy`][async_orch.StopPolicy]); by default jobs are left
                running and reported, and may stay Pending for ever.
            hooks: functions told of progress, of each job created, of each
                state seen and of jobs left behind by a cancelled batch
                ([`Hooks`][async_orch.Hooks]).
            journal: a path for a new SQLite journal (refused if the file
                exists), or a [`JobStore`][async_orch.JobStore]: every
                request (with its Reference), job and result is written there as
                it happens, so a batch cut short (a crash, a cancellation) is
                finished with [`resume_jobs`][async_orch.OrchestratorClient.resume_jobs],
                nothing started twice. A journaled request keeps process, folder, inputs,
                reference and timeout only; ``handles`` cannot be journaled.

        Raises:
            ClientClosedError: called outside ``async with``, or the session given
                was closed; nothing was started.
            InvalidRequestError: a request, handle or option is malformed;
                nothing was started.
            ConfigurationError: the journal cannot be created; nothing was started.
            JournalWriteError: a journal write failed; the batch ended there.
        """
        # Checked up front: nothing is resolved or spawned for a client that cannot send.
        self.transport.ensure_open()
        if journal is not None:
            if handles:
                raise InvalidRequestError(
                    "handles cannot be journaled (a journal holds the requests it "
                    "starts); wait for them with a second run_jobs without journal"
                )
            return await run_with_journal(
                self,
                self._with_default_folder(requests),
                journal,
                timeout=timeout,
                stop=stop,
                hooks=hooks,
            )
        return await self.dispatcher.run(
            self._with_default_folder(requests),
            handles=handles,
            timeout=timeout,
            stop=stop,
            hooks=hooks,
        )

    async def resume_jobs(
        self,
        journal: JournalArg,
        *,
        timeout: float | None = None,
        stop: StopPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> list[JobResult]:
        """Finish a batch started with ``run_jobs(..., journal=...)`` that was cut short.

        Jobs the journal has as started are watched again, never started again;
        requests with no job recorded are looked up by their Reference first (the
        run may have died right after StartJobs) and started only if nothing has
        it; if that run did not end by itself, this waits out the reconcile window
        before starting them. Jobs a run ended ``unknown`` because calls about
        them were refused (their folder's access lost mid-run) are watched again
        too, by id: their real outcome replaces that one. Returns the results of
        the jobs that were not final in the journal, or ended by such a refusal,
        in request order (``index`` is the request's in the journaled batch);
        the journal then holds every result. Other arguments
        are those of [`run_jobs`][async_orch.OrchestratorClient.run_jobs].

        Raises:
            ConfigurationError: no journal there, it belongs to another tenant, or
                another batch of this process is writing it.
            JournalInUseError: another process is writing the journal.
        """
        self.transport.ensure_open()
        return await resume_with_journal(self, journal, timeout=timeout, stop=stop, hooks=hooks)

    def stream_jobs(
        self,
        requests: Sequence[JobRequest] = (),
        *,
        handles: Sequence[JobHandle] = (),
        timeout: float | None = None,
        stop: StopPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> AbstractAsyncContextManager[AsyncIterator[JobResult]]:
        """Like [`run_jobs`][async_orch.OrchestratorClient.run_jobs], giving each result as soon as
        its job ends:

            async with orch.stream_jobs(requests) as results:
                async for result in results:
                    ...

        The batch runs in a task group owned by the ``async with`` block. Leaving
        the block before the last result (``break``, an exception, a
        cancellation) ends the batch there like a cancellation: the jobs it
        started are stopped if ``stop`` says so, and reported to
        ``hooks.on_abandoned`` (or logged) before the block is left. An exception
        of the block, or of a callback, comes out as it is.
        """
        self.transport.ensure_open()
        return self.dispatcher.stream_results(
            self._with_default_folder(requests),
            handles=handles,
            timeout=timeout,
            stop=stop,
            hooks=hooks,
        )

    def iter_jobs(
        self,
        requests: Sequence[JobRequest] = (),
        *,
        handles: Sequence[JobHandle] = (),
        timeout: float | None = None,
        stop: StopPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> AsyncGenerator[JobResult, None]:
        """[`stream_jobs`][async_orch.OrchestratorClient.stream_jobs] as an async generator, for
        older callers; prefer [`stream_jobs`][async_orch.OrchestratorClient.stream_jobs]. Close it
        in the task that iterates it:

            async with aclosing(orch.iter_jobs(requests)) as results:
                async for result in results:
                    ...
        """
        return _iterate(
            self.stream_jobs(requests, handles=handles, timeout=timeout, stop=stop, hooks=hooks)
        )

    async def start_jobs(
        self,
        requests: Sequence[JobRequest],
        *,
        on_started: StartedCallback | None = None,
    ) -> list[Started | StartFailure]:
        """Start only: per request, what it started (handles to persist) or why not.

        Wait for the jobs later, from here or elsewhere, with
        [`wait_jobs`][async_orch.OrchestratorClient.wait_jobs]
        (``JobHandle.to_dict``/``from_dict`` carry handles across processes).
        """
        self.transport.ensure_open()
        return await self.dispatcher.start(
            self._with_default_folder(requests), on_started=on_started
        )

    async def wait_jobs(
        self,
        handles: Sequence[JobHandle],
        *,
        timeout: float | None = None,
        stop: StopPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> list[JobResult]:
        """Wait only: watch jobs started earlier (maybe elsewhere) until they end.

        Results come in the order of ``handles`` (``index`` is the position there);
        the arguments are those of [`run_jobs`][async_orch.OrchestratorClient.run_jobs].
        """
        return await self.run_jobs(handles=handles, timeout=timeout, stop=stop, hooks=hooks)

    def _with_default_folder(self, requests: Sequence[JobRequest]) -> Sequence[JobRequest]:
        """``requests`` with the settings' default folder where they name none,
        checked (:func:`~async_orch._jobs.checked_requests`: their inputs are
        encoded there, once a batch).

        Raises:
            InvalidRequestError: a request is malformed.
            ConfigurationError: inputs that need an upload, and no scope for it.
        """
        if requests is None:  # a typed caller cannot, an untyped one may
            raise InvalidRequestError(
                "requests is None: give a list of JobRequest (an empty list, with "
                "handles=..., to only wait for jobs started before)"
            )
        if not requests:
            return ()  # none: only handles to wait for
        checked = checked_requests(with_default_folder(requests, self.settings.folder))
        if (missing := upload_scope_missing(self.settings, checked)) is not None:
            raise missing
        return checked

    async def validate(self, requests: Sequence[JobRequest]) -> list[Validation]:
        """A dry run: ask Orchestrator (ValidateDynamicJob) whether each distinct
        (folder, process) of ``requests`` could start a job now. Nothing is started.

        Returns one [`Validation`][async_orch.Validation] per pair, in the order
        the pairs first appear: ``is_valid``, and each problem's code, Orchestrator's
        text and the fix.

        Raises:
            InvalidRequestError: a request is malformed.
            NotFoundByNameError: a folder or process name is unknown (with the names
                that are close).
        """
        self.transport.ensure_open()
        return await validate_requests(self.api, self._with_default_folder(requests))

    def set_limits(
        self,
        *,
        max_in_flight: int | None = None,
        per_folder: int | None = None,
        starts_per_second: float | None = None,
    ) -> None:
        """Resize dispatch limits while jobs run (a value left as None is unchanged)."""
        self.dispatcher.set_limits(
            max_in_flight=max_in_flight,
            per_folder=per_folder,
            starts_per_second=starts_per_second,
        )


async def _iterate(
    stream: AbstractAsyncContextManager[AsyncIterator[JobResult]],
) -> AsyncGenerator[JobResult, None]:
    async with stream as results:
        async for result in results:
            yield result


def _check_arguments(
    settings: object,
    session: object,
    limits: object,
    poll: object,
    hooks: object,
    webhooks: object,
    list_budget: object,
) -> None:
    """Refuse an argument of the wrong kind with a line naming it and the fix, before
    anything is built (it failed later as an AttributeError deep inside)."""
    expected: list[tuple[str, object, type, str]] = [
        ("settings", settings, Settings, "Settings.from_env()"),
        ("session", session, aiohttp.ClientSession, "aiohttp.ClientSession()"),
        ("limits", limits, DispatchLimits, "DispatchLimits(max_in_flight=16)"),
        ("poll", poll, PollPolicy, "PollPolicy(list_budget_per_minute=60)"),
        ("webhooks", webhooks, WebhookReceiver, "WebhookReceiver(secret)"),
    ]
    for name, value, kind, example in expected:
        if (value is not None or name == "settings") and not isinstance(value, kind):
            raise _wrong(name, value, f"a {kind.__name__} (e.g. {name}={example})")
    if not isinstance(hooks, list | tuple) or not all(
        isinstance(hook, TransportHooks) for hook in hooks
    ):
        raise _wrong("hooks", hooks, "a list of TransportHooks (e.g. hooks=[MyHooks()])")
    methods = ("acquire", "throttled", "aclose")
    if list_budget is not None and not all(
        callable(getattr(list_budget, method, None)) for method in methods
    ):
        raise _wrong(
            "list_budget",
            list_budget,
            "a shared list budget with acquire, throttled and aclose "
            "(e.g. list_budget=RedisListBudget(...))",
        )


def _wrong(name: str, value: object, expected: str) -> ConfigurationError:
    text = repr(value)
    short = text if len(text) <= 60 else text[:57] + "..."  # it may be huge
    return ConfigurationError(f"{name} must be {expected}, got {type(value).__name__} {short}")
