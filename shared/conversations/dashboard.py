"""The realtime state dashboard clients read with Firestore listeners.

PostgreSQL is the record; Firestore is a projection of it, written after each change:
`tenants/{tenant}/conversations/{conversation}` with a summary, and its `messages`
subcollection. Writes are idempotent (whole documents keyed by our ids), so a redelivered
event simply writes the same documents again. terraform/firestore.rules lets a staff member
read their own tenant only.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.cloud import firestore
from shared.db.models import Conversation, Customer, Message
from shared.db.tenancy import tenant_session
from shared.whatsapp.window import SERVICE_WINDOW


def conversation_path(tenant_id: object, conversation_id: object) -> str:
    return f"tenants/{tenant_id}/conversations/{conversation_id}"


def _commit(
    tenant_id: object, conversation_id: object, summary: dict[str, Any] | None, messages: Sequence[dict[str, Any]]
) -> None:
    """One batch: the conversation summary (when given) and the messages. Each is a whole
    document from PostgreSQL, so a plain set (cheaper than a merge) loses nothing."""
    client = firestore.client()
    batch = client.batch()
    conversation = client.document(conversation_path(tenant_id, conversation_id))
    if summary is not None:
        batch.set(conversation, firestore.as_document(summary))
    for message in messages:
        batch.set(conversation.collection("messages").document(str(message["id"])), firestore.as_document(message))
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
    client = firestore.client()
    batch = client.batch()
    for conversation_id, message_id in messages:
        batch.delete(client.document(f"{conversation_path(tenant_id, conversation_id)}/messages/{message_id}"))
    batch.commit()


_SUMMARY = (
    select(Conversation, Customer)
    .join(Customer, Customer.id == Conversation.customer_id)
    .where(Conversation.id == bindparam("conversation_id"))
)


_NEWEST_FIRST = (
    select(Message).where(Message.conversation_id == bindparam("conversation_id")).order_by(Message.created_at.desc())
)


_NEWEST, _LATEST_FEW = _NEWEST_FIRST.limit(1), _NEWEST_FIRST.limit(5)


def mirror(tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
    """Write the conversation summary and its latest messages to Firestore."""
    with tenant_session(tenant_id) as session:
        conversation, messages = snapshot(session, tenant_id, conversation_id)
    write(conversation, messages)


def snapshot(
    session: Session, tenant_id: uuid.UUID, conversation_id: uuid.UUID, touched: list[Message] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The dashboard's view of a conversation: its summary, and the messages this transaction
    wrote (`touched`, newest first) or else the latest few."""
    key = {"conversation_id": conversation_id}
    row = session.execute(_SUMMARY, key).one()
    conversation, customer = row.Conversation, row.Customer
    if touched is not None:
        messages = touched
        # The newest message is nearly always one this transaction wrote: no extra query then.
        last = messages[0] if messages else session.scalars(_NEWEST, key).first()
    else:
        messages = list(session.scalars(_LATEST_FEW, key))
        last = messages[0] if messages else None
    summary = conversation_document(tenant_id, conversation, customer, last.body if last else None)
    return summary, [message_document(tenant_id, m) for m in messages]


def conversation_document(
    tenant_id: uuid.UUID, conversation: Conversation, customer: Customer, last_message: str | None
) -> dict[str, Any]:
    """A conversation as dashboards see it: in Firestore, and from the staff API."""
    return {
        "id": str(conversation.id),
        "tenant_id": str(tenant_id),
        "outlet_id": str(conversation.outlet_id),
        "status": conversation.status,
        "handoff_reason": conversation.handoff_reason,
        "customer": {
            "id": str(customer.id),
            "name": customer.profile_name,
            "username": customer.username,
            "phone": customer.phone_number,
            "bsuid": customer.bsuid,
        },
        "last_message": last_message,
        "last_message_at": conversation.last_message_at,
        "window_expires_at": (
            conversation.last_customer_message_at + SERVICE_WINDOW if conversation.last_customer_message_at else None
        ),
        "updated_at": conversation.updated_at,
    }


def message_document(tenant_id: uuid.UUID, message: Message) -> dict[str, Any]:
    """A message as dashboards see it: in Firestore, and from the staff API."""
    return {
        "id": str(message.id),
        "tenant_id": str(tenant_id),
        "outlet_id": str(message.outlet_id),
        "conversation_id": str(message.conversation_id),
        "direction": message.direction,
        "sender_type": message.sender_type,
        "type": message.type,
        "body": message.body,
        "template": (message.payload or {}).get("template") if message.type == "template" else None,
        "status": message.status,
        "error_code": message.error_code,
        "error_title": message.error_title,
        "created_at": message.created_at,
        "sent_at": message.sent_at,
        "delivered_at": message.delivered_at,
        "read_at": message.read_at,
    }
