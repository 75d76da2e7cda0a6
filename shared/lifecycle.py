"""Scheduled housekeeping across tenants: closing conversations whose customer-service
window has passed, recovering sends whose task was lost, and purging message content past
the retention period.

Each loops over tenants through the narrow platform path (the list of tenant ids) and does
the work inside each tenant's own session, so row-level security applies as everywhere.
Each is idempotent: running twice does nothing more than running once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, delete, select, update

from shared import conversations, dashboard, sending
from shared.cloud import logs, pubsub
from shared.db import platform
from shared.db.models import Conversation, Message
from shared.db.tenancy import tenant_session

log = logging.getLogger(__name__)

RETENTION = timedelta(days=90)
# Longer than the whatsapp-send queue's whole retry schedule (10 attempts, about 9 minutes):
# a message still queued after this has no live task. Its last attempt failed on something
# that was not WhatsApp's answer (a database or KMS outage), or the task was never created.
STUCK_AFTER = timedelta(minutes=15)
_STUCK = (
    select(Message)
    .where(
        Message.direction == "outbound",
        Message.status == "queued",
        Message.created_at < bindparam("stuck_before"),
    )
    .order_by(Message.created_at)
    .with_for_update(skip_locked=True)  # a sender holding one is sending it right now
)


def expire_conversations(now: datetime | None = None) -> int:
    """Active conversations whose 24-hour window closed become `expired`."""
    cutoff = (now or datetime.now(UTC)) - conversations.SERVICE_WINDOW
    total = 0
    for tenant_id in platform.tenant_ids():
        with logs.tenant_scope(tenant_id), tenant_session(tenant_id) as session:
            expired = list(
                session.scalars(
                    update(Conversation)
                    .where(Conversation.status == "active", Conversation.last_customer_message_at < cutoff)
                    .values(status="expired")
                    .returning(Conversation.id)
                )
            )
            if expired:
                pubsub.publish(
                    [
                        pubsub.Outgoing(
                            pubsub.CONVERSATION_COMPLETED,
                            {"tenant_id": str(tenant_id), "conversation_id": str(cid), "status": "expired"},
                            attributes={"tenant_id": str(tenant_id)},
                        )
                        for cid in expired
                    ]
                )
        for conversation_id in expired:
            conversations.mirror(tenant_id, conversation_id)
        total += len(expired)
    log.info("expired conversations", extra={"count": total})
    return total


def recover_stuck_sends(now: datetime | None = None) -> dict[str, int]:
    """Outbound messages still queued long after their task ended are queued again, oldest
    first; the sender still sends only what is queued, so nothing goes out twice. Given up
    instead: an AI answer that would now arrive too late to help, and anything not sent
    within the 24-hour window."""
    now = now or datetime.now(UTC)
    requeued: list[tuple[uuid.UUID, uuid.UUID]] = []
    given_up = 0
    round_ = now.strftime("r%Y%m%d%H%M")  # one name per sweep: a repeated sweep queues nothing more
    for tenant_id in platform.tenant_ids():
        with logs.tenant_scope(tenant_id), tenant_session(tenant_id) as session:
            failed = []
            for message in session.scalars(_STUCK, {"stuck_before": now - STUCK_AFTER}):
                age = now - message.created_at
                if age > conversations.SERVICE_WINDOW or (
                    message.sender_type != "agent" and age > conversations.STALE_AFTER
                ):
                    sending.mark_failed(message, None, "Not sent: given up after its send task was lost")
                    failed.append(conversations.message_document(tenant_id, message))
                else:
                    requeued.append((tenant_id, message.id))
        for document in failed:
            dashboard.write_messages(tenant_id, document["conversation_id"], [document])
        given_up += len(failed)
    for tenant_id, message_id in requeued:
        conversations.queue_send(tenant_id, message_id, round_)
    log.info("recovered stuck sends", extra={"requeued": len(requeued), "given_up": given_up})
    return {"requeued": len(requeued), "given_up": given_up}


def purge_old_messages(now: datetime | None = None) -> int:
    """Delete messages older than the retention period, in the database and the dashboard."""
    cutoff = (now or datetime.now(UTC)) - RETENTION
    total = 0
    for tenant_id in platform.tenant_ids():
        with logs.tenant_scope(tenant_id), tenant_session(tenant_id) as session:
            rows = session.execute(
                delete(Message).where(Message.created_at < cutoff).returning(Message.id, Message.conversation_id)
            ).all()
        _forget(tenant_id, [(r.conversation_id, r.id) for r in rows])
        total += len(rows)
    log.info("purged messages past retention", extra={"count": total})
    return total


def _forget(tenant_id: uuid.UUID, messages: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
    for start in range(0, len(messages), 400):
        dashboard.delete_messages(tenant_id, messages[start : start + 400])
