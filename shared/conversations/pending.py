"""What a committed conversation transaction leaves to do: mark the customer's message read,
queue the sends it created on Cloud Tasks, and show the new state on the dashboard.

Each send task is named after its message, so queueing it again (after a failure, or from a
redelivered event) never sends twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from shared.cloud import tasks
from shared.conversations import customers, dashboard
from shared.db.models import Message, Tenant

SEND_QUEUE = "whatsapp-send"
_TOUCHED = Message.updated_at >= func.now()  # written by this transaction
_PENDING = (
    select(Message, _TOUCHED.label("touched"))
    .where(
        Message.conversation_id == bindparam("conversation_id"),
        or_(_TOUCHED, and_(Message.direction == "outbound", Message.status == "queued")),
    )
    .order_by(Message.created_at.desc())
)


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """Blue ticks on a customer's message we answer, and "typing..." while the AI prepares the
    answer. The task is named after the message: it is marked read once, however often queued."""

    tenant_id: uuid.UUID
    message_id: uuid.UUID
    typing_indicator: bool

    def enqueue(self) -> None:
        tasks.enqueue(
            SEND_QUEUE,
            f"read-{self.message_id}",
            {
                "tenant_id": str(self.tenant_id),
                "kind": "read",
                "message_id": str(self.message_id),
                "typing_indicator": self.typing_indicator,
            },
        )


def read_receipt(tenant: Tenant, message_id: uuid.UUID, *, typing: bool) -> ReadReceipt | None:
    """The read receipt the tenant's settings ask for (`read_receipts`, `typing_indicator`)."""
    if not tenant.settings.get("read_receipts", True):
        return None
    return ReadReceipt(tenant.id, message_id, typing and bool(tenant.settings.get("typing_indicator", True)))


@dataclass(frozen=True, slots=True)
class Pending:
    """What a committed transaction leaves to do: mark the customer's message read, queue the
    sends it created (again, after a failure: task names make that harmless) and show the new
    state on the dashboard. The read receipt waits for the commit when the message it marks is
    written by the same transaction; the sender would not find it before."""

    tenant_id: uuid.UUID
    queued: list[uuid.UUID]
    conversation: dict[str, Any]
    messages: list[dict[str, Any]]
    read: ReadReceipt | None = None
    closed_by_merge: list[uuid.UUID] = field(default_factory=list)  # other conversations to show resolved


def pending_after(session: Session, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> Pending:
    """Read, inside the transaction, what `settle` must do once it commits: every outbound
    message still queued (also those an earlier, failed attempt left) and the dashboard view
    of what this transaction wrote (`updated_at` is the transaction's now()). One query."""
    rows = session.execute(_PENDING, {"conversation_id": conversation_id}).all()
    queued = [m.id for m, _ in reversed(rows) if m.direction == "outbound" and m.status == "queued"]
    conversation, messages = dashboard.snapshot(
        session, tenant_id, conversation_id, [r.Message for r in rows if r.touched]
    )
    return Pending(tenant_id, queued, conversation, messages, closed_by_merge=customers.closed_by_merge(session))


def settle(pending: Pending) -> None:
    """After the commit: mark the customer's message read, queue each waiting send (named after
    its message, so queueing it again never sends twice) and update the dashboard."""
    if pending.read is not None:
        pending.read.enqueue()
    for message_id in pending.queued:
        queue_send(pending.tenant_id, message_id)
    dashboard.write(pending.conversation, pending.messages)
    for conversation_id in pending.closed_by_merge:
        dashboard.mirror(pending.tenant_id, conversation_id)


def queue_send(tenant_id: uuid.UUID, message_id: uuid.UUID, round_: str = "") -> bool:
    """A message-sender task for this message, named after it (and the recovery `round_`, as
    Cloud Tasks keeps a used name for about an hour): queueing it twice sends it once."""
    name = f"send-{message_id}{f'-{round_}' if round_ else ''}"
    return tasks.enqueue(SEND_QUEUE, name, {"tenant_id": str(tenant_id), "kind": "send", "message_id": str(message_id)})
