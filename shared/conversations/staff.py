"""What staff do to a conversation: take it over from the AI, write to the customer, hand it
back to the AI, resolve it. Every action is written to the audit log in the same transaction
as the change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from shared.cloud import pubsub
from shared.conversations.dashboard import mirror
from shared.conversations.handoff import handed_off_event
from shared.conversations.pending import pending_after, read_receipt, settle
from shared.db import audit
from shared.db.models import OPEN_CONVERSATION_STATUSES as OPEN
from shared.db.models import Conversation, Message, Tenant
from shared.db.tenancy import tenant_session

_NEWEST_FROM_CUSTOMER = (
    select(Message.id)
    .where(Message.conversation_id == bindparam("conversation_id"), Message.direction == "inbound")
    .order_by(Message.created_at.desc())
    .limit(1)
)


_AGENT_MESSAGE_BY_KEY = select(Message.id, Message.status).where(
    Message.conversation_id == bindparam("conversation_id"),
    Message.sender_type == "agent",
    Message.payload["idempotency_key"].astext == bindparam("key"),
)


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """What staff send: text, media already uploaded to WhatsApp (by id), or an approved
    template, the one kind WhatsApp delivers outside the 24-hour window."""

    type: str  # "text", "template", or a media type
    body: str | None = None  # the text, or a media caption
    payload: dict[str, Any] = field(default_factory=dict)  # media_id, filename; template, language, components

    @property
    def needs_window(self) -> bool:
        return self.type != "template"


def resolve(tenant_id: uuid.UUID, conversation_id: uuid.UUID, user_id: uuid.UUID | None = None) -> bool:
    """An agent closes the conversation; the customer's next message opens a fresh one, with
    the AI answering again and the low-confidence count starting from zero."""
    with tenant_session(tenant_id) as session:
        conversation = session.get(Conversation, conversation_id, with_for_update=True)
        if conversation is None or conversation.status not in OPEN:
            return False
        conversation.status = "resolved"
        conversation.resolved_at = func.now()
        conversation.assigned_user_id = user_id or conversation.assigned_user_id
        _audit(session, tenant_id, user_id, "conversation.resolve", conversation_id)
        pubsub.publish(
            [
                pubsub.Outgoing(
                    pubsub.CONVERSATION_COMPLETED,
                    {
                        "tenant_id": str(tenant_id),
                        "conversation_id": str(conversation_id),
                        "status": "resolved",
                    },
                    attributes={"tenant_id": str(tenant_id)},
                )
            ]
        )
    mirror(tenant_id, conversation_id)
    return True


def take_over(tenant_id: uuid.UUID, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """An agent takes an active conversation from the AI (the customer is not told: the agent
    writes next)."""
    with tenant_session(tenant_id) as session:
        conversation = session.get(Conversation, conversation_id, with_for_update=True)
        if conversation is None or conversation.status != "active":
            return False
        conversation.status = "handed_off"
        conversation.handoff_reason = "agent:take_over"
        conversation.handed_off_at = func.now()
        conversation.assigned_user_id = user_id
        _audit(session, tenant_id, user_id, "conversation.take_over", conversation_id)
        pubsub.publish([handed_off_event(tenant_id, conversation, "agent:take_over")])
    mirror(tenant_id, conversation_id)
    return True


def _audit(
    session: Session,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    action: str,
    conversation_id: uuid.UUID,
    details: dict[str, Any] | None = None,
) -> None:
    """Who did what to a conversation, in the same transaction as the change."""
    audit.record(
        session,
        tenant_id,
        action,
        actor_type="user" if user_id else "system",
        actor_id=str(user_id) if user_id else None,
        target_type="conversation",
        target_id=conversation_id,
        details=details,
    )


def return_to_ai(tenant_id: uuid.UUID, conversation_id: uuid.UUID, user_id: uuid.UUID | None = None) -> bool:
    """An agent hands a handed-off conversation back to the AI. A system marker restarts the
    low-confidence count, so the conversation does not bounce straight back to the agents."""
    with tenant_session(tenant_id) as session:
        conversation = session.get(Conversation, conversation_id, with_for_update=True)
        if conversation is None or conversation.status != "handed_off":
            return False
        conversation.status = "active"
        _audit(session, tenant_id, user_id, "conversation.return_to_ai", conversation_id)
        session.add(
            Message(
                tenant_id=tenant_id,
                conversation_id=conversation_id,
                outlet_id=conversation.outlet_id,
                direction="outbound",
                sender_type="system",
                type="system",
                body=None,
                status="processed",
                payload={"event": "ai_resumed", "by": str(user_id) if user_id else None},
            )
        )
    mirror(tenant_id, conversation_id)
    return True


def queue_agent_message(
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    content: AgentMessage,
    user_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
) -> uuid.UUID:
    """An agent writes to the customer; the sender delivers it (and refuses free-form messages
    outside the window, which may close between this and the send). A retry with the same
    idempotency key finds the message already queued: the conversation's row lock orders
    concurrent retries, so the second sees the first."""
    with tenant_session(tenant_id) as session:
        conversation = session.get_one(Conversation, conversation_id, with_for_update=True)
        if idempotency_key is not None:
            earlier = session.execute(
                _AGENT_MESSAGE_BY_KEY, {"conversation_id": conversation_id, "key": idempotency_key}
            ).first()
            if earlier is not None:
                earlier_id: uuid.UUID = earlier.id
                if earlier.status == "queued":
                    # The first request may have failed after its commit, before its send was
                    # queued. Queueing it again is harmless: the task is named after it.
                    settle(pending_after(session, tenant_id, conversation_id))
                return earlier_id
        message = Message(
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            outlet_id=conversation.outlet_id,
            direction="outbound",
            sender_type="agent",
            type=content.type,
            body=content.body,
            status="queued",
            created_at=func.clock_timestamp(),  # sent in this order: see _answer
            payload={**content.payload, "by": str(user_id) if user_id else None, "idempotency_key": idempotency_key},
        )
        session.add(message)
        conversation.last_message_at = func.now()
        session.flush()
        message_id = message.id
        _audit(
            session,
            tenant_id,
            user_id,
            "conversation.agent_message",
            conversation_id,
            {"message_id": str(message_id), "type": content.type},
        )
        customer_wrote = session.scalar(_NEWEST_FROM_CUSTOMER, {"conversation_id": conversation_id})
        read = None  # the agent answers the customer's newest message: it shows as read
        if customer_wrote is not None:
            read = read_receipt(session.get_one(Tenant, tenant_id), customer_wrote, typing=False)
        pending = replace(pending_after(session, tenant_id, conversation_id), read=read)
    settle(pending)
    return message_id
