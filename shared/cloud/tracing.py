"""One trace per customer message, across every hop: webhook, Pub/Sub, conversation, Cloud
Tasks, sender.

Each function invocation is an OpenTelemetry span that continues the trace its trigger carries
(W3C `traceparent` in request headers, Pub/Sub message attributes or CloudEvent extensions; or
Google's `X-Cloud-Trace-Context`), and everything it publishes or queues carries the span on
as `traceparent`. The trace id is on every log line of the invocation (shared/cloud/logs.py),
locally too; in staging and production the spans go to Cloud Trace as well.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from opentelemetry import trace
from opentelemetry.propagators.cloud_trace_propagator import CloudTraceFormatPropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.cloud import logs
from shared.cloud.settings import settings

TRACEPARENT = "traceparent"

_w3c = TraceContextTextMapPropagator()
# Later propagators win: a W3C traceparent over Google's header when a request has both.
_incoming = CompositePropagator([CloudTraceFormatPropagator(), _w3c])


@cache
def _tracer() -> trace.Tracer:
    config = settings()
    provider = TracerProvider(resource=Resource.create({"service.name": "whatsapp-crm"}))
    if config.environment in ("staging", "production"):
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = CloudTraceSpanExporter(project_id=config.google_cloud_project)  # type: ignore[no-untyped-call]
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider.get_tracer("shared.cloud.tracing")


@contextlib.contextmanager
def span(name: str, carrier: Mapping[str, Any] | Any) -> Iterator[str]:
    """Run the block as span `name`, continuing the trace in `carrier` (headers, attributes)
    or starting one; yields the trace id, which every log line inside the block carries."""
    parent = _incoming.extract(carrier=carrier)
    with _tracer().start_as_current_span(name, context=parent, kind=trace.SpanKind.SERVER) as current:
        trace_id = trace.format_trace_id(current.get_span_context().trace_id)
        token = logs.trace_id.set(trace_id)
        try:
            yield trace_id
        finally:
            logs.trace_id.reset(token)


def outgoing() -> dict[str, str]:
    """`traceparent` of the current span, for the attributes or headers of what it sends on."""
    carrier: dict[str, str] = {}
    _w3c.inject(carrier)
    return carrier
