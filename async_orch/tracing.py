"""OpenTelemetry spans for batches, jobs and HTTP requests (the ``otel`` extra).

Install with ``pip install 'async-orch[otel]'`` (and an OpenTelemetry SDK to
export spans). Nothing else in async-orch imports this module, so without it
OpenTelemetry is never imported and tracing costs nothing. With it:

    tracing = OtelTracing()  # the global tracer provider, or tracer_provider=...
    async with OrchestratorClient(settings, hooks=[tracing]) as orch:
        with tracing.batch("nightly", requests) as batch:
            await orch.run_jobs(requests, hooks=batch.hooks())

gives one span per batch, one per job (from the moment it exists to its final
state) and one per HTTP try, each try carrying the W3C ``traceparent`` of its
span (through the configured propagator) so the server side can join the trace.

What goes into spans is chosen to be safe and low-cardinality: the endpoint
label (``GET Jobs``, ``odata/Jobs({id})``), never a URL with ids or a query;
never a header, a body or a token. Span names and attributes are listed in
docs/tracing.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import Token
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from async_orch._jobs import JobHandle, JobRequest, Outcome, Progress
from async_orch._options import Hooks
from async_orch._states import JobState
from async_orch._transport_hooks import (
    RequestSent,
    ResponseReceived,
    RetryScheduled,
    TransportHooks,
)

__all__ = ["BatchTrace", "OtelTracing"]

_TRACER_NAME = "async_orch"


class OtelTracing(TransportHooks):
    """Transport hooks making a span per HTTP try; [`batch`][async_orch.tracing.OtelTracing.batch]
    traces a batch.

    Args:
        tracer_provider: where spans go (default: OpenTelemetry's global provider).
    """

    def __init__(self, *, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
        # Tries on the wire: id(event) -> (event, span). Holding the event keeps its id unique.
        self._open: dict[int, tuple[RequestSent, Span]] = {}

    def batch(
        self, name: str = "async_orch.batch", requests: Sequence[JobRequest] = ()
    ) -> BatchTrace:
        """A span for one batch, current inside ``with`` (so its HTTP tries are its
        children); pass its ``on_*`` methods to ``run_jobs`` for the job spans.
        ``requests`` (those given to ``run_jobs``) name each job's process."""
        return BatchTrace(self._tracer, name, requests)

    # -- transport hooks ----------------------------------------------------------------

    def on_request(self, event: RequestSent) -> dict[str, str]:
        attributes: dict[str, AttributeValue] = {
            "http.request.method": event.method,
            "async_orch.endpoint": event.endpoint,
        }
        where = urlsplit(event.url)
        if where.hostname:
            attributes["server.address"] = where.hostname
        if where.port:
            attributes["server.port"] = where.port
        if event.attempt > 1:
            attributes["http.request.resend_count"] = event.attempt - 1
        span = self._tracer.start_span(
            _request_span_name(event), kind=SpanKind.CLIENT, attributes=attributes
        )
        self._open[id(event)] = (event, span)
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(span))
        return headers

    def on_response(self, event: ResponseReceived) -> None:
        entry = self._open.pop(id(event.request), None)
        if entry is None or entry[0] is not event.request:
            return  # a try this object did not see start (added as a hook later)
        span = entry[1]
        if event.cancelled:
            span.set_attribute("async_orch.cancelled", True)
        elif event.status is None:
            span.set_attribute("error.type", "no_response")
            span.set_status(Status(StatusCode.ERROR, event.error))
        else:
            span.set_attribute("http.response.status_code", event.status)
            if event.status >= 400:
                span.set_attribute("error.type", str(event.status))
                span.set_status(Status(StatusCode.ERROR))
        span.end()

    def on_retry(self, event: RetryScheduled) -> None:
        # The failed try's span has ended; the wait is an event of the span around it.
        trace.get_current_span().add_event(
            "async_orch.retry",
            {
                "http.request.method": event.method,
                "async_orch.endpoint": event.endpoint,
                "async_orch.retry.attempt": event.attempt,
                "async_orch.retry.delay": event.delay,
                "async_orch.retry.reason": event.reason,
            },
        )


def _request_span_name(event: RequestSent) -> str:
    # Resource labels already start with the method ("GET Jobs"); path labels do not.
    if event.endpoint.startswith(event.method + " "):
        return event.endpoint
    return f"{event.method} {event.endpoint}"


class BatchTrace:
    """The span of one batch and those of its jobs (see
    [`OtelTracing.batch`][async_orch.tracing.OtelTracing.batch]).

    Jobs still open when the ``with`` block ends (timed out and left running,
    or only started) end with it, ``async_orch.job.finished`` False.
    """

    def __init__(self, tracer: trace.Tracer, name: str, requests: Sequence[JobRequest]) -> None:
        self._tracer = tracer
        self._name = name
        self._requests = requests
        self._jobs: dict[int, Span] = {}
        self._progress: Progress | None = None
        self._span: Span | None = None
        self._token: Token[Context] | None = None

    def __enter__(self) -> Self:
        self._span = self._tracer.start_span(
            self._name, attributes={"async_orch.batch.requests": len(self._requests)}
        )
        self._token = context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        assert span is not None, "BatchTrace is used as a context manager"
        for job in self._jobs.values():
            job.set_attribute("async_orch.job.finished", False)
            job.end()
        self._jobs.clear()
        if self._progress is not None:
            span.set_attribute("async_orch.batch.total", self._progress.total)
            for outcome in Outcome:
                count = self._progress.by_state[outcome.value]
                if count:
                    span.set_attribute(f"async_orch.batch.{outcome.value}", count)
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        if self._token is not None:
            context.detach(self._token)
        span.end()

    # -- batch callbacks (pass them to run_jobs / stream_jobs) ----------------------------

    def hooks(self) -> Hooks:
        """The batch hooks that feed this trace: ``run_jobs(..., hooks=batch.hooks())``."""
        return Hooks(
            on_started=self.on_started, on_state=self.on_state, on_progress=self.on_progress
        )

    def on_started(self, index: int, handle: JobHandle) -> None:
        """A job exists: its span starts."""
        process = self._requests[index].process if index < len(self._requests) else None
        self._job_span(handle, process)

    def on_state(self, handle: JobHandle, old: JobState | None, new: JobState) -> None:
        """A job was seen in a new state: an event; a final state ends its span."""
        span = self._jobs.get(handle.job_id)
        if span is None:  # a job of `handles`, seen for the first time
            span = self._job_span(handle, None)
        span.set_attribute("async_orch.job.state", new.value)
        span.add_event("async_orch.job.state", {"old": old.value if old else "", "new": new.value})
        if new.is_terminal:
            if new is JobState.FAULTED:
                span.set_status(Status(StatusCode.ERROR, "Faulted"))
            span.set_attribute("async_orch.job.finished", True)
            span.end()
            del self._jobs[handle.job_id]

    def on_progress(self, progress: Progress) -> None:
        """Keep the counts; they go on the batch span when it ends."""
        self._progress = progress

    def _job_span(self, handle: JobHandle, process: str | None) -> Span:
        assert self._span is not None, "BatchTrace callbacks run inside its with block"
        attributes: dict[str, AttributeValue] = {
            "async_orch.job.id": handle.job_id,
            "async_orch.job.folder": handle.folder_path,
        }
        if handle.job_key:
            attributes["async_orch.job.key"] = handle.job_key
        if process is not None:
            attributes["async_orch.job.process"] = process
        if handle.reference:
            attributes["async_orch.job.reference"] = handle.reference
        span = self._tracer.start_span(
            "async_orch.job",
            context=trace.set_span_in_context(self._span),
            attributes=attributes,
        )
        self._jobs[handle.job_id] = span
        return span
