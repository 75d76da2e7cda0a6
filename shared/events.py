"""Publishing to the declared Pub/Sub topics, and reading what a push delivery carries.

One publisher per instance, with message ordering on: events for one ordering key (an
outlet and a customer) reach subscribers in the order this instance published them.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.cloud.pubsub_v1.types import BatchSettings, PublisherOptions

from shared.config import settings
from shared.deployment import declaration
from shared.whatsapp.updates import event_from_json_dict

log = logging.getLogger(__name__)

INCOMING_MESSAGES = "whatsapp.incoming.messages"
MESSAGE_STATUSES = "whatsapp.message.statuses"
OUTGOING_MESSAGES = "whatsapp.outgoing.messages"
DOCUMENT_UPLOADED = "knowledge.document.uploaded"
CONVERSATION_HANDED_OFF = "conversation.handed_off"
CONVERSATION_COMPLETED = "conversation.completed"


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    data: Mapping[str, Any]
    ordering_key: str = ""
    attributes: Mapping[str, str] | None = None


@cache
def _publisher() -> pubsub_v1.PublisherClient:
    # A webhook must answer Meta fast: flush batches after 2 ms instead of the default 10 ms.
    return pubsub_v1.PublisherClient(
        batch_settings=BatchSettings(max_latency=0.002),
        publisher_options=PublisherOptions(enable_message_ordering=True),
    )


def topic_path(topic: str) -> str:
    if topic not in declaration().topics:
        raise ValueError(f"topic {topic!r} is not declared in functions/functions.yaml")
    return f"projects/{settings().google_cloud_project}/topics/{topic}"


def publish(events: Iterable[Outgoing], timeout: float = 10.0) -> list[str]:
    """Publish all events and wait until Pub/Sub has every one: only then may a caller
    acknowledge its own trigger. On failure, paused ordering keys are resumed and the error
    raised, so the caller's retry publishes again (subscribers are idempotent)."""
    publisher = _publisher()
    pending = []
    for event in events:
        body = json.dumps(event.data, separators=(",", ":"), default=str).encode()
        future = publisher.publish(
            topic_path(event.topic), body, ordering_key=event.ordering_key, **dict(event.attributes or {})
        )
        pending.append((event, future))
    ids = []
    for event, future in pending:
        try:
            ids.append(future.result(timeout=timeout))
        except Exception:
            if event.ordering_key:
                publisher.resume_publish(topic_path(event.topic), event.ordering_key)
            raise
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


def routed_event(envelope: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID, Any]:
    """(tenant id, outlet id, WhatsApp event) of an envelope the webhook published."""
    try:
        return (
            uuid.UUID(envelope["tenant_id"]),
            uuid.UUID(envelope["outlet_id"]),
            event_from_json_dict(envelope["event"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEvent(f"not a routed WhatsApp event: {exc}") from exc
