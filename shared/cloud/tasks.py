"""Queueing WhatsApp sends on Cloud Tasks, which retries them with backoff.

Each task is named after what it does (send message X, mark message Y read), so queueing
the same work twice, as a redelivered event will, is refused by Cloud Tasks as a duplicate
instead of sending twice.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from typing import Any

import grpc
from google.api_core.exceptions import Aborted, Conflict
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from shared.cloud import tracing
from shared.cloud.declaration import declaration
from shared.cloud.settings import settings

log = logging.getLogger(__name__)


@cache
def _client() -> tasks_v2.CloudTasksClient:
    """gRPC, as in production; locally over an insecure channel to the emulator (host:port)."""
    emulator = settings().cloud_tasks_emulator_host
    if emulator:
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(emulator)))
    return tasks_v2.CloudTasksClient()


def queue_path(queue: str) -> str:
    config = settings()
    return _client().queue_path(config.google_cloud_project, config.region, queue)


def enqueue(queue: str, task_id: str, payload: dict[str, Any], delay_seconds: float = 0) -> bool:
    """Queue `payload` for the function that serves `queue`. False when it was already queued."""
    config = settings()
    target = declaration().function_for_queue(queue)
    http_request: dict[str, Any] = {
        "http_method": tasks_v2.HttpMethod.POST,
        "url": f"{config.functions_base_url.rstrip('/')}/{target}",
        "headers": {"Content-Type": "application/json", **tracing.outgoing()},  # the sender continues the trace
        "body": json.dumps(payload, separators=(",", ":")).encode(),
    }
    if config.tasks_service_account:
        http_request["oidc_token"] = {"service_account_email": config.tasks_service_account}
    task: dict[str, Any] = {"name": f"{queue_path(queue)}/tasks/{task_id}", "http_request": http_request}
    if delay_seconds:
        from datetime import UTC, datetime, timedelta

        task["schedule_time"] = datetime.now(UTC) + timedelta(seconds=delay_seconds)
    try:
        _client().create_task(parent=queue_path(queue), task=tasks_v2.Task(task))
    except Aborted:
        raise  # a concurrency hiccup, not a duplicate: let the caller's retry try again
    except Conflict:  # ALREADY_EXISTS: this work is already queued
        log.info("task already queued", extra={"task_id": task_id})
        return False
    return True
