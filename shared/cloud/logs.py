"""Structured JSON logs that Cloud Logging understands.

One JSON object per line on stdout, with `severity`, `message`, the trace when the request
carried one, and the function name and tenant on every line (from context variables, so a
handler sets them once and every library log line inherits them).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from shared.cloud.settings import settings

function_name: ContextVar[str | None] = ContextVar("function_name", default=None)
tenant_id: ContextVar[str | None] = ContextVar("tenant_id", default=None)
trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)

_TRACE_KEY = "logging.googleapis.com/trace"


class _CloudLoggingContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.function = function_name.get()
        if getattr(record, "tenant_id", None) is None:  # a line may name its tenant itself (extra=)
            record.tenant_id = tenant_id.get()
        trace = trace_id.get()
        if trace:
            setattr(record, _TRACE_KEY, f"projects/{settings().google_cloud_project}/traces/{trace}")
        return True


class _Formatter(JsonFormatter):
    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["severity"] = record.levelname
        log_data.pop("levelname", None)


def configure(function: str | None = None) -> None:
    """Route the root logger to stdout as JSON lines. Safe to call more than once."""
    if function:
        function_name.set(function)
    root = logging.getLogger()
    if any(isinstance(h.formatter, _Formatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Formatter("%(levelname)s %(message)s %(name)s %(function)s %(tenant_id)s", timestamp="time"))
    handler.addFilter(_CloudLoggingContext())
    root.handlers = [handler]
    root.setLevel(settings().log_level.upper())
    for noisy in ("urllib3", "google", "grpc", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def tenant_scope(tenant: object) -> Iterator[None]:
    """Tag every log line inside the block with the tenant it serves."""
    token = tenant_id.set(str(tenant))
    try:
        yield
    finally:
        tenant_id.reset(token)
