"""What every function entry point shares: JSON logs tagged with the function and trace,
a health path on HTTP functions, and the retry contract of event functions.

Retry contract (as in Cloud Run functions): an event handler that raises asks for a
redelivery; one that returns acknowledges, including when it decides to drop the event.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from shared.cloud import logs, tracing
from shared.cloud.pubsub import MalformedEvent

log = logging.getLogger(__name__)

HEALTH_PATH = "/health"  # Cloud Run reserves paths ending in "z" such as /healthz
# Young objects collected every 10,000 net allocations instead of Python's 700: a request
# allocates thousands, nearly all gone by its end, so most collections found little to free.
YOUNG_GENERATION_THRESHOLD = 10_000

R = TypeVar("R")


class _Heap:
    """Once per instance, after its first invocation, everything it keeps for its lifetime
    exists: modules, clients, pools, caches. gc.freeze() takes those out of the collector's
    generations, so a full collection no longer walks them all (measured: some 160,000 objects
    in a function host worker; such a collection took tens of milliseconds, during which every
    request of the instance stood still)."""

    def __init__(self) -> None:
        self._settled = False
        self._lock = threading.Lock()

    def settle(self) -> None:
        if self._settled:
            return
        with self._lock:
            if not self._settled:
                gc.freeze()
                gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
                self._settled = True


heap = _Heap()


def http_function(
    name: str, methods: tuple[str, ...] | None = None
) -> Callable[[Callable[[Any], R]], Callable[[Any], R | tuple[dict[str, str], int]]]:
    """Wrap an HTTP entry point: GET /health answers without touching anything else, and
    a method outside `methods` (when given) is refused before the handler runs."""

    def wrap(handler: Callable[[Any], R]) -> Callable[[Any], R | tuple[dict[str, str], int]]:
        logs.configure(name)

        @functools.wraps(handler)
        def entry(request: Any) -> R | tuple[dict[str, str], int]:
            if request.method == "GET" and request.path == HEALTH_PATH:
                return {"status": "ok", "function": name}, 200
            fn_token = logs.function_name.set(name)
            try:
                if methods is not None and request.method not in methods:
                    return {"error": f"method {request.method} not allowed"}, 405
                with tracing.span(name, request.headers):
                    return handler(request)
            finally:
                logs.function_name.reset(fn_token)
                heap.settle()

        return entry

    return wrap


def event_function(
    name: str, max_age: timedelta | None = None
) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Wrap a CloudEvent entry point. Events older than `max_age` are acknowledged and dropped:
    a retry storm must not answer a customer hours late."""

    def wrap(handler: Callable[[Any], None]) -> Callable[[Any], None]:
        logs.configure(name)

        @functools.wraps(handler)
        def entry(cloud_event: Any) -> None:
            fn_token = logs.function_name.set(name)
            try:
                with tracing.span(name, _trace_carrier(cloud_event)):
                    _handle(handler, cloud_event, max_age)
            finally:
                logs.function_name.reset(fn_token)
                heap.settle()

        return entry

    return wrap


def _handle(handler: Callable[[Any], None], cloud_event: Any, max_age: timedelta | None) -> None:
    age = _age(cloud_event)
    if max_age is not None and age is not None and age > max_age:
        log.warning(
            "dropping event older than %s",
            max_age,
            extra={"event_id": cloud_event["id"], "age_seconds": age.total_seconds()},
        )
        return
    try:
        handler(cloud_event)
    except MalformedEvent as exc:
        log.error("acknowledging an event no retry can fix: %s", exc, extra={"event_id": cloud_event["id"]})
    except Exception:
        log.exception("event handling failed; asking for a redelivery", extra={"event_id": cloud_event["id"]})
        raise


def _age(cloud_event: Any) -> timedelta | None:
    raw = cloud_event.get("time") if hasattr(cloud_event, "get") else None
    if not raw:
        return None
    try:
        sent = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    return datetime.now(UTC) - sent


def _trace_carrier(cloud_event: Any) -> dict[str, str]:
    """Where an event's trace travels: the Pub/Sub message's attributes (a push delivery), or
    the CloudEvent's `traceparent` extension (Eventarc)."""
    carrier: dict[str, str] = {}
    parent = cloud_event.get("traceparent") if hasattr(cloud_event, "get") else None
    if parent:
        carrier[tracing.TRACEPARENT] = str(parent)
    data = getattr(cloud_event, "data", None)
    message = data.get("message") if isinstance(data, dict) else None
    attributes = message.get("attributes") if isinstance(message, dict) else None
    if isinstance(attributes, dict) and isinstance(attributes.get(tracing.TRACEPARENT), str):
        carrier[tracing.TRACEPARENT] = attributes[tracing.TRACEPARENT]
    return carrier
