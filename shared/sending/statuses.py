"""Status webhooks move our outbound messages through sent, delivered, read and failed.

Statuses only move forward (a late `delivered` never undoes `read`); `failed` is final.
A status can arrive before the sender committed the WhatsApp id it refers to: we ask for a
redelivery then, for a while, and drop it after that (it was a message sent by another tool).
A send whose answer never came back is known by its `biz_opaque_callback_data` (our message
id): the status tells us it went out, and under which WhatsApp id.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from shared.cloud import logs, pubsub
from shared.conversations import customers, dashboard, intake
from shared.db.models import Conversation, Customer, Message
from shared.db.tenancy import tenant_session
from shared.whatsapp.updates import StatusUpdate

log = logging.getLogger(__name__)

RANK = {"queued": 0, "sending": 0, "sent": 1, "delivered": 2, "read": 3}
UNKNOWN_MESSAGE_PATIENCE = timedelta(minutes=5)
# Built once: a constant statement costs SQLAlchemy no rebuilding or re-keying per status.
_OUTBOUND_OF_OUTLET = (
    select(Message, Customer)
    .join(Conversation, Conversation.id == Message.conversation_id)
    .join(Customer, Customer.id == Conversation.customer_id)
    .where(Message.outlet_id == bindparam("outlet_id"), Message.direction == "outbound")
)
_STATUS_TARGET = _OUTBOUND_OF_OUTLET.where(Message.wa_message_id == bindparam("wa_message_id")).with_for_update(
    of=Message
)
_UNCONFIRMED_TARGET = (  # a send without an answer; its sender may hold the row right now
    _OUTBOUND_OF_OUTLET.where(Message.id == bindparam("message_id"), Message.wa_message_id.is_(None)).with_for_update(
        of=Message, skip_locked=True
    )
)


class StatusForUnknownMessage(RuntimeError):
    """No outbound message has this WhatsApp id yet: raise so Pub/Sub delivers again later."""


def handle_status(envelope: dict[str, Any]) -> str:
    tenant_id, outlet_id, status = intake.routed_event(envelope)
    if not isinstance(status, StatusUpdate):
        raise pubsub.MalformedEvent(f"unexpected event kind on the statuses topic: {type(status).__name__}")
    with logs.tenant_scope(tenant_id), tenant_session(tenant_id) as session:
        row = session.execute(_STATUS_TARGET, {"outlet_id": outlet_id, "wa_message_id": status.id}).first()
        if row is None:
            row = _unconfirmed_send(session, outlet_id, status)
        if row is None:
            if datetime.now(UTC) - status.timestamp < UNKNOWN_MESSAGE_PATIENCE:
                raise StatusForUnknownMessage(f"no outbound message {status.id} yet")
            log.info("status for a message we did not send; dropped", extra={"wa_message_id": status.id})
            return "unknown message"
        message, customer = row
        outcome = _apply(message, status)
        _learn_identifiers(session, tenant_id, customer, status)
        snapshot = dashboard.message_document(tenant_id, message)
        closed = customers.closed_by_merge(session)
    # Also when unchanged: a redelivered status may be repairing a dashboard write that failed.
    dashboard.write_messages(tenant_id, message.conversation_id, [snapshot])
    for conversation_id in closed:
        dashboard.mirror(tenant_id, conversation_id)
    return outcome


def _unconfirmed_send(session: Session, outlet_id: uuid.UUID, status: StatusUpdate) -> Row[Message, Customer] | None:
    """The send this status names in `biz_opaque_callback_data`, if it never learned its
    WhatsApp id: it went out after all, under this one."""
    try:
        message_id = uuid.UUID(status.biz_opaque_callback_data or "")
    except ValueError:
        return None
    row = session.execute(_UNCONFIRMED_TARGET, {"outlet_id": outlet_id, "message_id": message_id}).first()
    if row is not None:
        message = row.Message
        log.info("a send without an answer went out after all", extra={"message_id": str(message.id)})
        message.wa_message_id = status.id
        message.status, message.sent_at = "sent", message.sent_at or status.timestamp
        message.error_code = message.error_title = message.failed_at = None
    return row


def _learn_identifiers(session: Session, tenant_id: uuid.UUID, customer: Customer, status: StatusUpdate) -> None:
    """A status may be the first payload that pairs the customer's phone with their BSUID."""
    recipient = status.recipient
    new_bsuid = recipient.bsuid is not None and recipient.bsuid != customer.bsuid
    new_phone = recipient.phone is not None and recipient.phone != customer.phone_number
    if new_bsuid or new_phone:
        customers.resolve(session, tenant_id, recipient, customer.last_seen_at or status.timestamp)


def _apply(message: Message, status: StatusUpdate) -> str:
    if message.status == "failed":
        return "unchanged"
    if status.status == "failed":
        message.status = "failed"
        message.error_code = status.error_code
        message.error_title = status.error_title
        message.failed_at = status.timestamp
        return "failed"
    rank = RANK.get(status.status)
    if rank is None:
        log.info("unknown status value kept in payload", extra={"status": status.status})
        message.payload = {**(message.payload or {}), "last_unknown_status": status.status}
        return "unchanged"
    stamp = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at"}[status.status]
    if getattr(message, stamp) is None:
        setattr(message, stamp, status.timestamp)
    if rank > RANK.get(message.status, 0):
        message.status = status.status
        return status.status
    return "unchanged"
