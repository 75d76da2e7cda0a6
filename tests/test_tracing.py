"""shared/cloud/tracing.py: a span continues the trace its trigger carries, starts one when the
carrier holds none or garbage, and hands its own traceparent on."""

from __future__ import annotations

import re

from shared.cloud import logs, tracing

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_span_continues_a_w3c_traceparent_and_hands_it_on() -> None:
    with tracing.span("conversation", {"traceparent": PARENT}) as trace_id:
        assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert logs.trace_id.get() == trace_id  # every log line of the block carries it
        handed_on = tracing.outgoing()["traceparent"]
    version, trace, span, flags = handed_on.split("-")
    assert (version, trace, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
    assert span != "00f067aa0ba902b7"  # a child span of its own
    assert logs.trace_id.get() is None


def test_googles_header_is_continued_when_there_is_no_traceparent() -> None:
    with tracing.span(
        "message-sender", {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}
    ) as trace_id:
        assert trace_id == "105445aa7843bc8bf206b12000100000"


def test_garbage_or_nothing_starts_a_trace_of_its_own() -> None:
    seen = set()
    for carrier in ({}, {"traceparent": "not-a-trace"}, {"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"}):
        with tracing.span("whatsapp-webhook", carrier) as trace_id:
            assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
            assert trace_id != "0" * 32
            seen.add(trace_id)
    assert len(seen) == 3


def test_nothing_is_handed_on_outside_a_span() -> None:
    assert tracing.outgoing() == {}
