"""Recovering sends whose Cloud Tasks task was lost: queued again, or given up when they
would arrive too late to help.

Loops over tenants through the narrow platform path and works inside each tenant's own
session, so row-level security applies as everywhere. Idempotent: a repeated sweep queues
nothing more.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, select

from shared.cloud import logs
from shared.conversations import dashboard
from shared.conversations.inbound import STALE_AFTER
from shared.conversations.pending import queue_send
from shared.db import platform
from shared.db.models import Message
from shared.db.tenancy import tenant_session
from shared.sending.sender import mark_failed
from shared.whatsapp.window import SERVICE_WINDOW

log = logging.getLogger(__name__)


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
                if age > SERVICE_WINDOW or (message.sender_type != "agent" and age > STALE_AFTER):
                    mark_failed(message, None, "Not sent: given up after its send task was lost")
                    failed.append(dashboard.message_document(tenant_id, message))
                else:
                    requeued.append((tenant_id, message.id))
        for document in failed:
            dashboard.write_messages(tenant_id, document["conversation_id"], [document])
        given_up += len(failed)
    for tenant_id, message_id in requeued:
        queue_send(tenant_id, message_id, round_)
    log.info("recovered stuck sends", extra={"requeued": len(requeued), "given_up": given_up})
    return {"requeued": len(requeued), "given_up": given_up}
