"""Publishing to the declared Pub/Sub topics, and reading what a push delivery carries.

One Pub/Sub API client per instance. Events for one ordering key (an outlet and a customer)
reach subscribers in the order they were published.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from google import pubsub_v1
from google.api_core.exceptions import (
    Aborted,
    Cancelled,
    DeadlineExceeded,
    InternalServerError,
    ResourceExhausted,
    ServiceUnavailable,
)
from google.api_core.retry import Retry, if_exception_type
from google.pubsub_v1 import PubsubMessage

from shared.cloud import tracing
from shared.cloud.declaration import declaration
from shared.cloud.settings import settings

log = logging.getLogger(__name__)

INCOMING_MESSAGES = "whatsapp.incoming.messages"
MESSAGE_STATUSES = "whatsapp.message.statuses"
OUTGOING_MESSAGES = "whatsapp.outgoing.messages"
DOCUMENT_UPLOADED = "knowledge.document.uploaded"
CONVERSATION_HANDED_OFF = "conversation.handed_off"
CONVERSATION_COMPLETED = "conversation.completed"
QUOTA_WARNING = "billing.quota.warning"
SERVICE_SUSPENDED = "billing.service.suspended"


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    data: Mapping[str, Any]
    ordering_key: str = ""
    attributes: Mapping[str, str] | None = None


@cache
def _publisher() -> pubsub_v1.PublisherClient:
    # The API client itself, not the batching wrapper around it: a publish is one Publish call
    # made by the calling thread, with no batching timer or hand-off to a commit thread between
    # a webhook and its answer to Meta. (It reads PUBSUB_EMULATOR_HOST itself.)
    return pubsub_v1.PublisherClient()


@cache
def _retry(timeout: float) -> Retry:
    """Transient Pub/Sub errors are retried, within the caller's time budget (one per budget)."""
    transient = (Aborted, Cancelled, DeadlineExceeded, InternalServerError, ResourceExhausted, ServiceUnavailable)
    return Retry(initial=0.05, maximum=1.0, multiplier=2, predicate=if_exception_type(*transient), timeout=timeout)


def topic_path(topic: str) -> str:
    if topic not in declaration().topics:
        raise ValueError(f"topic {topic!r} is not declared in functions/functions.yaml")
    return f"projects/{settings().google_cloud_project}/topics/{topic}"


def publish(events: Iterable[Outgoing], timeout: float = 10.0) -> list[str]:
    """Publish all events and return once Pub/Sub holds every one: only then may a caller
    acknowledge its own trigger. One Publish call per topic; its messages keep their order
    within an ordering key, and a call that returned is ordered before any later one. On
    failure the error is raised and the caller's retry publishes again (subscribers are
    idempotent)."""
    by_topic: dict[str, list[PubsubMessage]] = {}
    trace = tracing.outgoing()  # the trace travels with every message
    for event in events:
        body = json.dumps(event.data, separators=(",", ":"), default=str).encode()
        attributes = {**trace, **(event.attributes or {})}
        message = PubsubMessage(data=body, ordering_key=event.ordering_key, attributes=attributes)
        by_topic.setdefault(topic_path(event.topic), []).append(message)
    ids: list[str] = []
    for topic, messages in by_topic.items():
        response = _publisher().publish(topic=topic, messages=messages, retry=_retry(timeout), timeout=timeout)
        ids += response.message_ids
    return ids


class MalformedEvent(ValueError):
    """An event no retry can fix (not our JSON, missing fields): acknowledged and logged,
    never redelivered for days."""


def decode_push(cloud_event: Any) -> tuple[dict[str, Any], dict[str, str], str]:
    """(payload, attributes, message id) of a Pub/Sub message delivered as a CloudEvent."""
    try:
        message = cloud_event.data["message"]
        payload = json.loads(base64.b64decode(message.get("data", "")) or b"{}")
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEvent(f"not a Pub/Sub message of ours: {exc}") from exc
    if not isinstance(payload, dict):
        raise MalformedEvent("Pub/Sub message data is not a JSON object")
    return payload, dict(message.get("attributes") or {}), str(message.get("messageId", cloud_event["id"]))
