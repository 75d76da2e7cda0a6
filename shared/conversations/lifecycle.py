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

from sqlalchemy import delete, func, select, update

from shared.cloud import logs, pubsub
from shared.conversations import dashboard
from shared.db import platform
from shared.db.models import Conversation, Message
from shared.db.tenancy import tenant_session
from shared.whatsapp.window import SERVICE_WINDOW

log = logging.getLogger(__name__)

RETENTION = timedelta(days=90)


def expire_conversations(now: datetime | None = None) -> int:
    """Active conversations whose 24-hour window closed become `expired`."""
    cutoff = (now or datetime.now(UTC)) - SERVICE_WINDOW
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
            active = session.scalar(select(func.count()).where(Conversation.status == "active"))
            # Every five minutes, per tenant: the dashboard's "active conversations" (monitoring.tf).
            log.info("active conversations", extra={"active_conversations": active})
        for conversation_id in expired:
            dashboard.mirror(tenant_id, conversation_id)
        total += len(expired)
    log.info("expired conversations", extra={"count": total})
    return total


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
