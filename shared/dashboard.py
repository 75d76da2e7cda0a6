"""The realtime state dashboard clients read with Firestore listeners.

PostgreSQL is the record; Firestore is a projection of it, written after each change:
`tenants/{tenant}/conversations/{conversation}` with a summary, and its `messages`
subcollection. Writes are idempotent (whole documents keyed by our ids), so a redelivered
event simply writes the same documents again. terraform/firestore.rules lets a staff member
read their own tenant only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from google.cloud import firestore

from shared.config import settings


@cache
def _client() -> firestore.Client:
    return firestore.Client(project=settings().google_cloud_project)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def conversation_path(tenant_id: object, conversation_id: object) -> str:
    return f"tenants/{tenant_id}/conversations/{conversation_id}"


def write(conversation: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    """Write one conversation summary and any of its messages in one batch."""
    client = _client()
    batch = client.batch()
    conv_ref = client.document(conversation_path(conversation["tenant_id"], conversation["id"]))
    batch.set(conv_ref, {k: _iso(v) if isinstance(v, datetime) else v for k, v in conversation.items()}, merge=True)
    for message in messages:
        ref = conv_ref.collection("messages").document(str(message["id"]))
        batch.set(ref, {k: _iso(v) if isinstance(v, datetime) else v for k, v in message.items()}, merge=True)
    batch.commit()


def write_messages(tenant_id: object, conversation_id: object, messages: Sequence[dict[str, Any]]) -> None:
    """Update messages whose status changed, leaving the conversation summary as it is."""
    client = _client()
    batch = client.batch()
    base = conversation_path(tenant_id, conversation_id)
    for message in messages:
        ref = client.document(f"{base}/messages/{message['id']}")
        batch.set(ref, {k: _iso(v) if isinstance(v, datetime) else v for k, v in message.items()}, merge=True)
    batch.commit()


def delete_messages(tenant_id: object, messages: Sequence[tuple[object, object]]) -> None:
    """Remove purged messages (conversation id, message id) from the dashboard."""
    if not messages:
        return
    client = _client()
    batch = client.batch()
    for conversation_id, message_id in messages:
        batch.delete(client.document(f"{conversation_path(tenant_id, conversation_id)}/messages/{message_id}"))
    batch.commit()
