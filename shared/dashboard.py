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

from shared.cloud.settings import settings


@cache
def _client() -> firestore.Client:
    return firestore.Client(project=settings().google_cloud_project)


def _document(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


def conversation_path(tenant_id: object, conversation_id: object) -> str:
    return f"tenants/{tenant_id}/conversations/{conversation_id}"


def _commit(
    tenant_id: object, conversation_id: object, summary: dict[str, Any] | None, messages: Sequence[dict[str, Any]]
) -> None:
    """One batch: the conversation summary (when given) and the messages. Each is a whole
    document from PostgreSQL, so a plain set (cheaper than a merge) loses nothing."""
    client = _client()
    batch = client.batch()
    conversation = client.document(conversation_path(tenant_id, conversation_id))
    if summary is not None:
        batch.set(conversation, _document(summary))
    for message in messages:
        batch.set(conversation.collection("messages").document(str(message["id"])), _document(message))
    batch.commit()


def write(conversation: dict[str, Any], messages: Sequence[dict[str, Any]]) -> None:
    """Write one conversation summary and any of its messages in one batch."""
    _commit(conversation["tenant_id"], conversation["id"], conversation, messages)


def write_messages(tenant_id: object, conversation_id: object, messages: Sequence[dict[str, Any]]) -> None:
    """Update messages whose status changed, leaving the conversation summary as it is."""
    _commit(tenant_id, conversation_id, None, messages)


def delete_messages(tenant_id: object, messages: Sequence[tuple[object, object]]) -> None:
    """Remove purged messages (conversation id, message id) from the dashboard."""
    if not messages:
        return
    client = _client()
    batch = client.batch()
    for conversation_id, message_id in messages:
        batch.delete(client.document(f"{conversation_path(tenant_id, conversation_id)}/messages/{message_id}"))
    batch.commit()
