"""The conversation between a customer and an outlet: storing what the customer sent,
deciding whether the AI answers or a human takes over, and queueing the reply.

Exactly once: an inbound message is stored under a unique (outlet, WhatsApp message id), so
a redelivered webhook or Pub/Sub message finds it already there. The dedupe is tied to
success: a message stays `received` until a reply (or a decision not to reply) is committed
with it, so a delivery that failed half-way is answered on the next attempt, not skipped.

In order: replies are produced under a per-conversation lock (serialize), and each reply
answers every message still waiting when the lock is taken (coalesce). A burst of three
messages therefore gets replies in the order the customer wrote, and messages that arrived
while an earlier reply was being prepared are answered together by the next one.
"""

from __future__ import annotations

import logging
import uuid
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared import customers, dashboard, handoff, replies
from shared.cloud import logs, pubsub, tasks
from shared.db.models import (
    OPEN_CONVERSATION_PREDICATE,
    OPEN_CONVERSATION_STATUSES,
    AuditLogEntry,
    Conversation,
    Customer,
    Message,
    Tenant,
)
from shared.db.tenancy import tenant_session
from shared.whatsapp.updates import IdentityChange, InboundMessage

log = logging.getLogger(__name__)

SERVICE_WINDOW = timedelta(hours=24)  # WhatsApp's customer-service window
STALE_AFTER = timedelta(hours=1)  # an AI answer this late would confuse more than help
OPEN = OPEN_CONVERSATION_STATUSES
NOT_ANSWERED = frozenset({"reaction"})  # a thumbs-up on our reply is not a question
HANDOFF_NOTICE = {
    "en": "Got it — I'm connecting you with our team. A staff member will reply here shortly.",
    "id": "Baik, kami hubungkan dengan tim kami. Staf kami akan segera membalas di sini.",
}

# The statements of the per-message path, built once: SQLAlchemy memoizes a statement's cache
# key on the object, so a constant statement skips both building and keying on every message
# (measured: a fifth of the conversation handler's CPU). Values come as bound parameters.
_STORED_MESSAGE = select(Message).where(
    Message.outlet_id == bindparam("outlet_id"), Message.wa_message_id == bindparam("wa_message_id")
)
_INSERT_ONCE = (
    insert(Message)
    .on_conflict_do_nothing(index_elements=[Message.outlet_id, Message.wa_message_id])
    .returning(Message.id)
)
_INSERT_OPEN_CONVERSATION = insert(Conversation).on_conflict_do_nothing(
    index_elements=[Conversation.outlet_id, Conversation.customer_id],
    index_where=text(OPEN_CONVERSATION_PREDICATE),
)
_OPEN_CONVERSATION = (
    select(Conversation)
    .where(
        Conversation.outlet_id == bindparam("outlet_id"),
        Conversation.customer_id == bindparam("customer_id"),
        Conversation.status.in_(OPEN),
    )
    .with_for_update()
)
_MARK_PROCESSED = (
    update(Message)
    .where(Message.id == bindparam("message_id"))
    .values(status="processed")
    .execution_options(synchronize_session=False)  # the message is not loaded in this session
)
_CONVERSATION_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_WAITING = (
    select(Message)
    .where(
        Message.conversation_id == bindparam("conversation_id"),
        Message.direction == "inbound",
        Message.status == "received",
    )
    .order_by(Message.customer_sent_at, Message.created_at)
)
_RECENT = (
    select(Message.sender_type, Message.confidence, Message.payload["event"].astext.label("event"))
    .where(Message.conversation_id == bindparam("conversation_id"))
    .order_by(Message.created_at.desc())
    .limit(handoff.LOOKBACK)
)
_TOUCHED = Message.updated_at >= func.now()  # written by this transaction
_PENDING = (
    select(Message, _TOUCHED.label("touched"))
    .where(
        Message.conversation_id == bindparam("conversation_id"),
        or_(_TOUCHED, and_(Message.direction == "outbound", Message.status == "queued")),
    )
    .order_by(Message.created_at.desc())
)
_SUMMARY = (
    select(Conversation, Customer)
    .join(Customer, Customer.id == Conversation.customer_id)
    .where(Conversation.id == bindparam("conversation_id"))
)
_NEWEST_FIRST = (
    select(Message).where(Message.conversation_id == bindparam("conversation_id")).order_by(Message.created_at.desc())
)
_NEWEST, _LATEST_FEW = _NEWEST_FIRST.limit(1), _NEWEST_FIRST.limit(5)
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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What handling one inbound event did; tests and logs read it."""

    conversation_id: uuid.UUID | None
    message_id: uuid.UUID | None
    duplicate: bool = False
    handed_off: bool = False
    reply_id: uuid.UUID | None = None


def handle_incoming(envelope: dict[str, Any]) -> Outcome:
    """Handle one event from whatsapp.incoming.messages (idempotent)."""
    tenant_id, outlet_id, event = pubsub.routed_event(envelope)
    with logs.tenant_scope(tenant_id):
        return _handle(tenant_id, outlet_id, event)


def _handle(tenant_id: uuid.UUID, outlet_id: uuid.UUID, event: object) -> Outcome:
    if isinstance(event, IdentityChange):
        return change_identity(tenant_id, outlet_id, event)
    if not isinstance(event, InboundMessage):
        raise pubsub.MalformedEvent(f"unexpected event kind on the incoming topic: {type(event).__name__}")
    stored = store_inbound(tenant_id, outlet_id, event)
    reply_id, pending = None, stored.pending
    if not stored.handed_off:
        reply_id, pending = answer_waiting(tenant_id, stored.conversation_id)
    settle(pending)
    log.info(
        "inbound message handled",
        extra={
            "conversation_id": str(stored.conversation_id),
            "wa_message_id": event.id,
            "duplicate": stored.duplicate,
            "handed_off": stored.handed_off,
            "replied": reply_id is not None,
        },
    )
    return Outcome(stored.conversation_id, stored.message_id, stored.duplicate, stored.handed_off, reply_id)


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """Blue ticks on a customer's message we answer, and "typing..." while the AI prepares the
    answer. The task is named after the message: it is marked read once, however often queued."""

    tenant_id: uuid.UUID
    message_id: uuid.UUID
    typing_indicator: bool

    def enqueue(self) -> None:
        tasks.enqueue(
            f"read-{self.message_id}",
            {
                "tenant_id": str(self.tenant_id),
                "kind": "read",
                "message_id": str(self.message_id),
                "typing_indicator": self.typing_indicator,
            },
        )


def _read_receipt(tenant: Tenant, message_id: uuid.UUID, *, typing: bool) -> ReadReceipt | None:
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


@dataclass(frozen=True, slots=True)
class _Stored:
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    duplicate: bool
    handed_off: bool
    pending: Pending


def store_inbound(tenant_id: uuid.UUID, outlet_id: uuid.UUID, event: InboundMessage) -> _Stored:
    """Transaction 1: the customer, their open conversation and the message; a handoff the
    message asks for is decided here, atomically with storing it."""
    with tenant_session(tenant_id) as session:
        existing = _stored_message(session, outlet_id, event.id)
        if existing is not None:
            return _duplicate(session, tenant_id, existing)
        customer = customers.resolve(session, tenant_id, event.customer, event.timestamp)
        conversation = open_conversation(session, tenant_id, outlet_id, customer.id)
        message_id = _insert_once(
            session,
            tenant_id=tenant_id,
            conversation_id=conversation.id,
            outlet_id=outlet_id,
            direction="inbound",
            sender_type="customer",
            wa_message_id=event.id,
            type=event.type,
            body=event.text_for_ai,
            payload=_payload_of(event),
            status="received",
            customer_sent_at=event.timestamp,
        )
        if message_id is None:  # a concurrent worker stored it first
            stored = _stored_message(session, outlet_id, event.id)
            assert stored is not None
            return _duplicate(session, tenant_id, stored)
        if conversation.last_customer_message_at is None or event.timestamp > conversation.last_customer_message_at:
            conversation.last_customer_message_at = event.timestamp
        conversation.last_message_at = func.now()
        tenant = session.get_one(Tenant, tenant_id)
        reason = _asks_for_a_person(event, tenant.settings)
        read = None
        if conversation.status == "active" and reason:
            hand_off(session, tenant, conversation, reason, language_hint=[event.text_for_ai or ""])
            read = _read_receipt(tenant, message_id, typing=False)  # the notice answers it
        handed_off = conversation.status == "handed_off"
        if handed_off or event.type in NOT_ANSWERED:
            session.execute(_MARK_PROCESSED, {"message_id": message_id})
        pending = replace(pending_after(session, tenant_id, conversation.id), read=read)
        return _Stored(conversation.id, message_id, False, handed_off, pending)


def _insert_once(session: Session, **values: Any) -> uuid.UUID | None:
    """Insert a message unless its (outlet, WhatsApp id) is stored already: its id, or None."""
    return session.scalar(_INSERT_ONCE, values)


def _stored_message(session: Session, outlet_id: uuid.UUID, wa_message_id: str) -> Message | None:
    return session.scalars(_STORED_MESSAGE, {"outlet_id": outlet_id, "wa_message_id": wa_message_id}).first()


def _duplicate(session: Session, tenant_id: uuid.UUID, message: Message) -> _Stored:
    """A redelivery: nothing new to store. It is still answered if the first delivery failed
    before its reply was committed (the message is still `received`)."""
    log.info("duplicate delivery of a stored message", extra={"wa_message_id": message.wa_message_id})
    conversation = session.get_one(Conversation, message.conversation_id)
    if conversation.status != "active" and message.status == "received":
        # An agent took over between the first delivery and this one: the message is theirs
        # now, and must not wait to be answered by the AI once it is back.
        session.execute(_MARK_PROCESSED, {"message_id": message.id})
    return _Stored(
        conversation.id,
        message.id,
        True,
        conversation.status != "active",
        pending_after(session, tenant_id, conversation.id),
    )


def open_conversation(
    session: Session, tenant_id: uuid.UUID, outlet_id: uuid.UUID, customer_id: uuid.UUID
) -> Conversation:
    """The one open conversation of this customer at this outlet, created if needed, locked."""
    keys = {"outlet_id": outlet_id, "customer_id": customer_id}
    session.execute(_INSERT_OPEN_CONVERSATION, {**keys, "tenant_id": tenant_id, "status": "active"})
    return session.scalars(_OPEN_CONVERSATION, keys).one()


def _asks_for_a_person(event: InboundMessage, tenant_settings: dict[str, Any]) -> str | None:
    if event.interactive is not None and handoff.button_requested(event.interactive.id):
        return "requested:button"
    if event.button is not None and handoff.button_requested(event.button.payload):
        return "requested:button"
    extra = tenant_settings.get("handoff_keywords") or []
    keyword = handoff.keyword_requested(event.text_for_ai, extra)
    return f"keyword:{keyword}" if keyword else None


def hand_off(
    session: Session, tenant: Tenant, conversation: Conversation, reason: str, language_hint: list[str]
) -> None:
    """Give the conversation to the agents: the AI stays silent until they return it. The
    customer is told, and conversation.handed_off is published inside the transaction (a
    failed commit may publish twice; subscribers key on conversation and time)."""
    conversation.status = "handed_off"
    conversation.handoff_reason = reason
    conversation.handed_off_at = func.now()
    language = replies.detect_language(language_hint, tenant.default_language)
    notice = (tenant.settings.get("handoff_notice") or {}).get(language) or HANDOFF_NOTICE[language]
    session.add(
        Message(
            tenant_id=tenant.id,
            conversation_id=conversation.id,
            outlet_id=conversation.outlet_id,
            direction="outbound",
            sender_type="system",
            type="text",
            body=notice,
            status="queued",
            created_at=func.clock_timestamp(),  # sent in this order: see _answer
            payload={"reason": "handoff_notice"},
        )
    )
    session.flush()
    pubsub.publish([_handed_off_event(tenant.id, conversation, reason)])
    log.info("conversation handed off", extra={"conversation_id": str(conversation.id), "reason": reason})


def _handed_off_event(tenant_id: uuid.UUID, conversation: Conversation, reason: str) -> pubsub.Outgoing:
    return pubsub.Outgoing(
        pubsub.CONVERSATION_HANDED_OFF,
        {
            "tenant_id": str(tenant_id),
            "conversation_id": str(conversation.id),
            "outlet_id": str(conversation.outlet_id),
            "reason": reason,
            "at": datetime.now(UTC).isoformat(),
        },
        attributes={"tenant_id": str(tenant_id)},
    )


def answer_waiting(tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> tuple[uuid.UUID | None, Pending]:
    """Transaction 2: under the conversation's lock, one reply to every waiting message.

    The lock is an advisory lock, not the conversation row, so that new messages can be
    stored (transaction 1) while a reply is being generated; they wait for the next reply."""
    with tenant_session(tenant_id) as session:
        reply_id = _answer(session, tenant_id, conversation_id)
        return reply_id, pending_after(session, tenant_id, conversation_id)


def _answer(session: Session, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> uuid.UUID | None:
    session.execute(_CONVERSATION_LOCK, {"key": zlib.crc32(conversation_id.bytes) - 2**31})
    waiting = list(session.scalars(_WAITING, {"conversation_id": conversation_id}))
    if not waiting:
        return None  # answered together with an earlier message
    for message in waiting:
        message.status = "processed"
    conversation = session.get_one(Conversation, conversation_id)
    tenant = session.get_one(Tenant, tenant_id)
    texts = [m.body for m in waiting if m.body]
    if not _should_answer(session, tenant, conversation, waiting[-1], texts):
        return None
    newest = waiting[-1]
    if (read := _read_receipt(tenant, newest.id, typing=True)) is not None:
        read.enqueue()  # now, before the answer is generated: "typing..." shows meanwhile
    reply = replies.generate_reply(tenant.settings, texts, tenant.default_language)
    session.refresh(conversation, with_for_update=True)
    if conversation.status != "active":
        return None  # handed off while the reply was being prepared
    outbound = Message(
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        outlet_id=conversation.outlet_id,
        direction="outbound",
        sender_type="llm",
        type="text",
        body=reply.text,
        status="queued",
        # When it was written, under the lock, not when its transaction began: replies are
        # sent in this order, and a transaction that waited for the lock began earlier.
        created_at=func.clock_timestamp(),
        confidence=reply.confidence,
        answers_up_to_message_id=newest.id,
        payload={"answers": [str(m.id) for m in waiting], "language": reply.language},
    )
    session.add(outbound)
    conversation.last_message_at = func.now()
    session.flush()
    return outbound.id


def _should_answer(
    session: Session, tenant: Tenant, conversation: Conversation, newest: Message, texts: list[str]
) -> bool:
    if conversation.status != "active":
        return False
    if newest.customer_sent_at is not None and datetime.now(UTC) - newest.customer_sent_at > STALE_AFTER:
        log.warning(
            "not answering messages this old; an agent will see them",
            extra={"conversation_id": str(conversation.id)},
        )
        return False
    decision = replies.may_send(tenant.status)
    if not decision.allowed:
        log.info("billing does not allow a reply: %s", decision.reason)
        return False
    if handoff.too_many_low_confidence(_recent(session, conversation.id)):
        session.refresh(conversation, with_for_update=True)
        if conversation.status == "active":
            hand_off(session, tenant, conversation, "low_confidence", texts)
        return False
    return True


def _recent(session: Session, conversation_id: uuid.UUID) -> list[handoff.RecentMessage]:
    """The last messages the low-confidence rule looks at (it never looks further back)."""
    rows = session.execute(_RECENT, {"conversation_id": conversation_id}).all()
    return [handoff.RecentMessage(r.sender_type, r.confidence, r.event == "ai_resumed") for r in reversed(rows)]


def pending_after(session: Session, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> Pending:
    """Read, inside the transaction, what `settle` must do once it commits: every outbound
    message still queued (also those an earlier, failed attempt left) and the dashboard view
    of what this transaction wrote (`updated_at` is the transaction's now()). One query."""
    rows = session.execute(_PENDING, {"conversation_id": conversation_id}).all()
    queued = [m.id for m, _ in reversed(rows) if m.direction == "outbound" and m.status == "queued"]
    conversation, messages = _snapshot(session, tenant_id, conversation_id, [r.Message for r in rows if r.touched])
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
        mirror(pending.tenant_id, conversation_id)


def queue_send(tenant_id: uuid.UUID, message_id: uuid.UUID, round_: str = "") -> bool:
    """A message-sender task for this message, named after it (and the recovery `round_`, as
    Cloud Tasks keeps a used name for about an hour): queueing it twice sends it once."""
    name = f"send-{message_id}{f'-{round_}' if round_ else ''}"
    return tasks.enqueue(name, {"tenant_id": str(tenant_id), "kind": "send", "message_id": str(message_id)})


def change_identity(tenant_id: uuid.UUID, outlet_id: uuid.UUID, event: IdentityChange) -> Outcome:
    """A customer changed number or BSUID: re-key them; their conversation goes on."""
    with tenant_session(tenant_id) as session:
        customer = customers.rekey(session, tenant_id, event.old, event.new, event.timestamp)
        conversation = session.scalars(
            select(Conversation).where(
                Conversation.outlet_id == outlet_id,
                Conversation.customer_id == customer.id,
                Conversation.status.in_(OPEN),
            )
        ).first()
        message_id = None
        if conversation is not None:
            message_id = _insert_once(
                session,
                tenant_id=tenant_id,
                conversation_id=conversation.id,
                outlet_id=outlet_id,
                direction="outbound",
                sender_type="system",
                wa_message_id=event.id,
                type="system",
                body=event.body,
                status="processed",
                payload={"event": event.kind, "new_phone": event.new_phone, "new_bsuid": event.new_bsuid},
            )
        conversation_id = conversation.id if conversation else None
        closed = customers.closed_by_merge(session)
    for changed in [*closed, *([conversation_id] if conversation_id else [])]:
        mirror(tenant_id, changed)
    return Outcome(conversation_id, message_id, duplicate=message_id is None and conversation_id is not None)


def window_open(conversation: Conversation, now: datetime | None = None) -> bool:
    """Free-form messages may be sent only within 24 hours of the customer's last message."""
    last = conversation.last_customer_message_at
    return last is not None and (now or datetime.now(UTC)) - last < SERVICE_WINDOW


def mirror(tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
    """Write the conversation summary and its latest messages to Firestore."""
    with tenant_session(tenant_id) as session:
        conversation, messages = _snapshot(session, tenant_id, conversation_id)
    dashboard.write(conversation, messages)


def _snapshot(
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
    summary = {
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
        "last_message": last.body if last else None,
        "last_message_at": conversation.last_message_at,
        "window_expires_at": (
            conversation.last_customer_message_at + SERVICE_WINDOW if conversation.last_customer_message_at else None
        ),
        "updated_at": conversation.updated_at,
    }
    return summary, [message_document(tenant_id, m) for m in messages]


def message_document(tenant_id: uuid.UUID, message: Message) -> dict[str, Any]:
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


def _payload_of(event: InboundMessage) -> dict[str, Any]:
    """What the database keeps of a message beyond its text: the parsed event itself."""
    data: dict[str, Any] = dict(event.to_json_dict()["data"])
    data.pop("raw", None) if event.supported else None
    if not event.supported:
        data["unsupported"] = True
    return data


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
        pubsub.publish([_handed_off_event(tenant_id, conversation, "agent:take_over")])
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
    session.add(
        AuditLogEntry(
            tenant_id=tenant_id,
            actor_type="user" if user_id else "system",
            actor_id=str(user_id) if user_id else None,
            action=action,
            target_type="conversation",
            target_id=str(conversation_id),
            details=details or {},
        )
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
            read = _read_receipt(session.get_one(Tenant, tenant_id), customer_wrote, typing=False)
        pending = replace(pending_after(session, tenant_id, conversation_id), read=read)
    settle(pending)
    return message_id
