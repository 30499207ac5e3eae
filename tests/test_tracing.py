"""OpenTelemetry tracing (the ``otel`` extra) against the simulator, over real sockets."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

pytest.importorskip(
    "opentelemetry.sdk", reason="the otel extra is not installed: pip install -e '.[otel]'"
)

from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from test_dispatcher_support import fast_poll, fast_settings, scenario
from test_integration_auth import demo_credentials
from test_transport_hooks import server_headers

from async_orch._client import OrchestratorClient
from async_orch._config import Settings
from async_orch._errors import BadRequestError
from async_orch._jobs import JobRequest, Outcome
from async_orch._transport import Transport
from async_orch.tracing import OtelTracing

__all__ = ["server_headers"]  # a fixture, used by name

Headers = list[tuple[str, Mapping[str, str]]]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _traceparent_ids(value: str) -> tuple[int, int]:
    """(trace id, span id) of a W3C traceparent header."""
    version, trace_id, span_id, _flags = value.split("-")
    assert version == "00"
    return int(trace_id, 16), int(span_id, 16)


def _attrs(item: ReadableSpan | Event) -> dict[str, Any]:
    return dict(item.attributes or {})


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_batch_is_a_tree_of_batch_job_and_request_spans_joined_by_the_server(
    start_simulator: Callable[..., Any],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    server_headers: Headers,
) -> None:
    sim = await start_simulator(scenario(), time_scale=50.0)
    requests = [
        JobRequest(process="Echo", folder="Finance", inputs={"n": 1}, jobs_count=2),
        JobRequest(process="Echo", folder="HR", inputs={"n": 2}, reference="hr-1"),
    ]
    tracing = OtelTracing(tracer_provider=provider)
    async with OrchestratorClient(fast_settings(sim), poll=fast_poll(), hooks=[tracing]) as orch:
        with tracing.batch("nightly", requests) as batch:
            results = await orch.run_jobs(requests, hooks=batch.hooks())
    assert [r.outcome for r in results] == [Outcome.SUCCESSFUL] * 3
    spans = exporter.get_finished_spans()

    (root,) = [s for s in spans if s.name == "nightly"]
    assert root.parent is None and root.context is not None
    trace_id, root_id = root.context.trace_id, root.context.span_id
    assert _attrs(root)["async_orch.batch.requests"] == 2
    assert _attrs(root)["async_orch.batch.total"] == 3
    assert _attrs(root)["async_orch.batch.successful"] == 3

    jobs = [s for s in spans if s.name == "async_orch.job"]
    assert {_parent_id(s) for s in jobs} == {root_id}
    by_id = {r.job_id: r for r in results}
    assert sorted(_attrs(s)["async_orch.job.id"] for s in jobs) == sorted(
        r.job_id or 0 for r in results
    )
    for span in jobs:
        attributes = _attrs(span)
        result = by_id[attributes["async_orch.job.id"]]
        assert result.handle is not None
        assert attributes["async_orch.job.folder"] == result.handle.folder_path
        assert attributes["async_orch.job.process"] == "Echo"
        assert attributes["async_orch.job.state"] == "Successful"
        assert attributes["async_orch.job.finished"] is True
        # One event per state seen, from StartJobs' answer to the final one.
        states = [_attrs(e)["new"] for e in span.events]
        assert states[0] == "Pending" and states[-1] == "Successful"
    assert sum(1 for s in jobs if _attrs(s).get("async_orch.job.reference") == "hr-1")

    calls = [s for s in spans if s.kind is SpanKind.CLIENT]
    names = {s.name for s in calls}
    assert {"POST token", "GET Folders", "POST StartJobs", "GET Jobs"} <= names
    assert {s.context.trace_id for s in calls if s.context} == {trace_id}
    assert {_parent_id(s) for s in calls} == {root_id}
    for span in calls:
        attributes = _attrs(span)
        assert attributes["http.response.status_code"] in (200, 201)
        assert attributes["server.address"] == "127.0.0.1"
        assert span.status.status_code is StatusCode.UNSET
        # Low cardinality and nothing secret: no URL, query, id or header in any value.
        assert not any(c.isdigit() for c in str(attributes["async_orch.endpoint"]))
        assert not any(
            word in str(v) for v in attributes.values() for word in ("://", "?", "Bearer")
        )

    # The server saw each API try's own span as its parent; the token request went bare.
    api = [(p, h) for p, h in server_headers if "/orchestrator_/" in p]
    assert api and all("traceparent" in h for _, h in api)
    seen = {_traceparent_ids(h["traceparent"]) for _, h in api}
    api_spans = {
        (trace_id, s.context.span_id) for s in calls if s.name != "POST token" and s.context
    }
    assert seen == api_spans
    assert all("traceparent" not in h for p, h in server_headers if p.endswith("/connect/token"))


async def test_a_retried_request_is_two_spans_and_a_retry_event(
    start_simulator: Callable[..., Any],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    sim = await start_simulator()
    settings = Settings(url=sim.url, credentials=demo_credentials(sim))
    tracer = provider.get_tracer("test")

    async def sleep(seconds: float) -> None:
        sim.simulator.set_faults({}, clear=True)  # answers again after the pause

    async with Transport(settings, hooks=[OtelTracing(tracer_provider=provider)], sleep=sleep) as t:
        await t.request("GET", "odata/Folders")  # the token first, without faults
        sim.simulator.set_faults({"server_error_rate": 1.0, "server_error_statuses": [503]})
        with tracer.start_as_current_span("outer"), pytest.raises(BadRequestError):
            # No folder header: a 400 once the 503 is retried.
            await t.request("GET", "odata/Jobs(42)", params={"$select": "Id"})

    spans = exporter.get_finished_spans()
    (outer,) = [s for s in spans if s.name == "outer"]
    assert outer.context is not None
    tries = [s for s in spans if s.name == "GET odata/Jobs({id})"]
    assert [_attrs(s).get("http.response.status_code") for s in tries] == [503, 400]
    assert [_attrs(s).get("http.request.resend_count") for s in tries] == [None, 1]
    assert [s.status.status_code for s in tries] == [StatusCode.ERROR] * 2
    assert _attrs(tries[0])["error.type"] == "503"
    assert {_parent_id(s) for s in tries} == {outer.context.span_id}
    (retry,) = outer.events
    assert retry.name == "async_orch.retry"
    attributes = _attrs(retry)
    assert attributes.pop("async_orch.retry.delay") > 0
    assert attributes == {
        "http.request.method": "GET",
        "async_orch.endpoint": "odata/Jobs({id})",
        "async_orch.retry.attempt": 2,
        "async_orch.retry.reason": "503",
    }


async def test_jobs_not_finished_when_the_batch_ends_are_ended_with_it(
    start_simulator: Callable[..., Any],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    sim = await start_simulator(scenario())
    requests = [JobRequest(process="Slow", folder="Shared")]
    tracing = OtelTracing(tracer_provider=provider)
    async with OrchestratorClient(fast_settings(sim), hooks=[tracing]) as orch:
        with (
            pytest.raises(RuntimeError, match="after starting"),
            tracing.batch(requests=requests) as batch,
        ):
            await orch.start_jobs(requests, on_started=batch.on_started)
            raise RuntimeError("after starting")

    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.name == "async_orch.batch"]
    assert root.status.status_code is StatusCode.ERROR
    assert [e.name for e in root.events] == ["exception"]
    (job,) = [s for s in spans if s.name == "async_orch.job"]
    assert _attrs(job)["async_orch.job.finished"] is False
    assert _attrs(job)["async_orch.job.process"] == "Slow"
    assert trace.get_current_span() is trace.INVALID_SPAN  # the batch span is no longer current


@pytest.mark.slow
def test_without_tracing_opentelemetry_is_never_imported() -> None:
    # Every module but the tracing one, in a fresh interpreter.
    code = (
        "import importlib, pkgutil, sys, async_orch\n"
        "for m in pkgutil.walk_packages(async_orch.__path__, 'async_orch.'):\n"
        "    if m.name != 'async_orch.tracing' and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('opentelemetry')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
