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
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.assistant import context, replies
from shared.billing import quota
from shared.cloud import logs, pubsub
from shared.cloud.settings import settings
from shared.conversations import customers, dashboard, handoff, intake
from shared.conversations.pending import Pending, pending_after, read_receipt, settle
from shared.db.models import (
    OPEN_CONVERSATION_PREDICATE,
    OPEN_CONVERSATION_STATUSES,
    Conversation,
    Message,
    Tenant,
)
from shared.db.tenancy import tenant_session
from shared.whatsapp.updates import IdentityChange, InboundMessage

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(hours=1)  # an AI answer this late would confuse more than help
OPEN = OPEN_CONVERSATION_STATUSES
SUSPENDED = "service_suspended"  # the handoff reason when billing stopped the AI
NOT_ANSWERED = frozenset({"reaction"})
# How long a claim on writing a reply holds: the reply's whole deadline, and some margin.
CLAIM_LEASE = timedelta(seconds=settings().reply_deadline_seconds + 15)  # a thumbs-up on our reply is not a question

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
# Waiting: not answered yet, or claimed by a reply whose claim lapsed (taken over).
_WAITING = (
    select(Message)
    .where(
        Message.conversation_id == bindparam("conversation_id"),
        Message.direction == "inbound",
        Message.status.in_(("received", "processing")),
    )
    .order_by(Message.customer_sent_at, Message.created_at)
)
_ANY_WAITING = select(
    select(Message.id)
    .where(
        Message.conversation_id == bindparam("conversation_id"),
        Message.direction == "inbound",
        Message.status == "received",
    )
    .exists()
)
_MARK_ALL_PROCESSED = (
    update(Message)
    .where(Message.id.in_(bindparam("message_ids", expanding=True)), Message.status != "processed")
    .values(status="processed")
    .execution_options(synchronize_session=False)
)

_RECENT = (
    select(Message.sender_type, Message.confidence, Message.payload["event"].astext.label("event"))
    .where(Message.conversation_id == bindparam("conversation_id"))
    .order_by(Message.created_at.desc())
    .limit(handoff.LOOKBACK)
)


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
    tenant_id, outlet_id, event = intake.routed_event(envelope)
    with logs.tenant_scope(tenant_id):
        return _handle(tenant_id, outlet_id, event)


def _handle(tenant_id: uuid.UUID, outlet_id: uuid.UUID, event: object) -> Outcome:
    if isinstance(event, IdentityChange):
        return change_identity(tenant_id, outlet_id, event)
    if not isinstance(event, InboundMessage):
        raise pubsub.MalformedEvent(f"unexpected event kind on the incoming topic: {type(event).__name__}")
    stored = store_inbound(tenant_id, outlet_id, event)
    reply_id = None
    if stored.handed_off:
        settle(stored.pending)
    else:
        reply_id = answer_waiting(tenant_id, stored.conversation_id, stored.message_id, stored.pending)
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
        reason = handoff.asks_for_a_person(event, tenant.settings)
        read = None
        if conversation.status == "active" and reason:
            handoff.hand_off(session, tenant, conversation, reason, language_hint=[event.text_for_ai or ""])
            read = read_receipt(tenant, message_id, typing=False)  # the notice answers it
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


class ReplyInProgress(Exception):
    """Another delivery is writing the reply to this message: raise so Pub/Sub comes back
    later, when the reply is sent (then this is a duplicate) or its claim has lapsed."""


def answer_waiting(
    tenant_id: uuid.UUID, conversation_id: uuid.UUID, message_id: uuid.UUID, stored: Pending
) -> uuid.UUID | None:
    """One reply to every waiting message, then to whatever arrived meanwhile; what each
    transaction leaves to do is settled after its commit (`stored`: what storing left).

    The model is asked with no transaction or lock open: a claim on the conversation (a
    token and a lease, written under the conversation's advisory lock) is what makes one
    delivery at a time write its reply, in order. A delivery that finds the claim held
    leaves its message to the holder, which answers what is still waiting before letting
    go. A holder that dies loses its claim when the lease runs out; its own redelivery, or
    the next message, then takes over, and a reply the late holder still produces is
    discarded, so no message is answered twice."""
    reply_id: uuid.UUID | None = None
    for _ in range(MAX_DRAINS):
        claim = _claim(tenant_id, conversation_id, message_id)
        settle(claim.pending if claim.pending is not None else stored)
        if claim.question is None:
            break
        answer = replies.answer(claim.question)
        written, more, after = _write_reply(tenant_id, conversation_id, claim, answer)
        settle(after)
        reply_id = written or reply_id
        if not more:
            break
    return reply_id


MAX_DRAINS = 5  # bursts beyond this wait for their own deliveries


@dataclass(frozen=True, slots=True)
class _Claim:
    token: uuid.UUID | None
    message_ids: tuple[uuid.UUID, ...]
    newest_id: uuid.UUID | None
    question: replies.Question | None
    pending: Pending | None


def _lock(session: Session, conversation_id: uuid.UUID) -> None:
    session.execute(_CONVERSATION_LOCK, {"key": zlib.crc32(conversation_id.bytes) - 2**31})


def _claim(tenant_id: uuid.UUID, conversation_id: uuid.UUID, message_id: uuid.UUID) -> _Claim:
    """Transaction A: take the claim and the waiting messages, and read what the reply needs."""
    with tenant_session(tenant_id) as session:
        _lock(session, conversation_id)
        conversation = session.get_one(Conversation, conversation_id)
        now = session.scalar(select(func.now()))
        assert now is not None
        held = conversation.reply_claim is not None and (conversation.reply_claim_until or now) > now
        waiting = list(session.scalars(_WAITING, {"conversation_id": conversation_id}))
        if held:
            if any(m.id == message_id and m.status == "processing" for m in waiting):
                raise ReplyInProgress(f"conversation {conversation_id} is being answered")
            return _Claim(None, (), None, None, None)  # the holder answers these when it is done
        if not waiting:
            conversation.reply_claim = conversation.reply_claim_until = None
            return _Claim(None, (), None, None, pending_after(session, tenant_id, conversation_id))
        tenant = session.get_one(Tenant, tenant_id)
        texts = [m.body for m in waiting if m.body]
        if not _should_answer(session, tenant, conversation, waiting[-1], texts):
            for message in waiting:
                message.status = "processed"
            conversation.reply_claim = conversation.reply_claim_until = None
            return _Claim(None, (), None, None, pending_after(session, tenant_id, conversation_id))
        for message in waiting:
            message.status = "processing"
        token = uuid.uuid4()
        conversation.reply_claim = token
        conversation.reply_claim_until = now + CLAIM_LEASE
        question = context.question(session, tenant, conversation, texts, waiting[0].created_at)
        read = read_receipt(tenant, waiting[-1].id, typing=True)
        if read is not None:
            read.enqueue()  # now, before the answer is generated: "typing..." shows meanwhile
        return _Claim(token, tuple(m.id for m in waiting), waiting[-1].id, question, None)


def _write_reply(
    tenant_id: uuid.UUID, conversation_id: uuid.UUID, claim: _Claim, answer: replies.Answer
) -> tuple[uuid.UUID | None, bool, Pending]:
    """Transaction B: the reply, if the claim is still ours; then whether more is waiting."""
    with tenant_session(tenant_id) as session:
        _lock(session, conversation_id)
        conversation = session.get_one(Conversation, conversation_id)
        session.refresh(conversation, with_for_update=True)
        if conversation.reply_claim != claim.token:
            log.warning(
                "reply discarded: the claim lapsed and was taken over", extra={"conversation_id": str(conversation_id)}
            )
            return None, False, pending_after(session, tenant_id, conversation_id)
        session.execute(_MARK_ALL_PROCESSED, {"message_ids": list(claim.message_ids)})
        reply_id = None
        if conversation.status == "active":
            tenant = session.get_one(Tenant, tenant_id)
            texts = list(claim.question.texts if claim.question else [])
            if answer.wants_human:
                handoff.hand_off(session, tenant, conversation, "customer_request", texts)
            elif not quota.charge_reply(session, tenant, f"reply:{claim.newest_id}").allowed:
                # The quota and deposit ran out: staff answer instead, and nothing is billed.
                handoff.hand_off(session, tenant, conversation, SUSPENDED, texts)
            else:
                reply_id = _insert_reply(session, tenant_id, conversation, claim, answer)
                # Read by the log-based metrics of terraform/monitoring.tf (AI cost per conversation).
                log.info(
                    "AI reply written",
                    extra={
                        "conversation_id": str(conversation_id),
                        "llm_model": answer.model,
                        "llm_cost_usd": float(answer.cost_usd or 0),
                        "low_confidence": answer.low_confidence,
                    },
                )
                if answer.low_confidence and handoff.too_many_low_confidence(_recent(session, conversation.id)):
                    # The third "I don't know" goes out, then the notice: a person takes over now,
                    # not at the customer's next message.
                    handoff.hand_off(session, tenant, conversation, "low_confidence", texts)
        conversation.reply_claim = conversation.reply_claim_until = None
        more = conversation.status == "active" and session.scalar(_ANY_WAITING, {"conversation_id": conversation_id})
        return reply_id, bool(more), pending_after(session, tenant_id, conversation_id)


def _insert_reply(
    session: Session, tenant_id: uuid.UUID, conversation: Conversation, claim: _Claim, answer: replies.Answer
) -> uuid.UUID:
    first: uuid.UUID | None = None
    for number, part in enumerate(answer.parts):
        payload: dict[str, Any] = {"answers": [str(m) for m in claim.message_ids], "language": answer.language}
        if answer.low_confidence:
            payload["low_confidence"] = answer.low_confidence
        if answer.low_confidence == "provider_failed":
            payload["flag"] = "ai_unavailable"  # the dashboard shows it: staff should look
        if answer.sources:
            payload["sources"] = list(answer.sources)
        if len(answer.parts) > 1:
            payload["part"] = [number + 1, len(answer.parts)]
        message = Message(
            tenant_id=tenant_id,
            conversation_id=conversation.id,
            outlet_id=conversation.outlet_id,
            direction="outbound",
            sender_type="llm",
            type="text",
            body=part,
            status="queued",
            # When it was written, under the lock, not when its transaction began: replies are
            # sent in this order, and a transaction that waited for the lock began earlier.
            created_at=func.clock_timestamp(),
            confidence=answer.confidence,
            answers_up_to_message_id=claim.newest_id,
            payload=payload,
            # Usage is the whole answer's: on its first part only, so sums stay right.
            llm_model=answer.model if number == 0 else None,
            prompt_tokens=answer.prompt_tokens if number == 0 else None,
            completion_tokens=answer.completion_tokens if number == 0 else None,
            llm_cost_usd=answer.cost_usd if number == 0 else None,
        )
        session.add(message)
        session.flush()
        first = first or message.id
    conversation.last_message_at = func.now()
    assert first is not None
    return first


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
    decision = quota.may_reply(session, tenant)
    if not decision.allowed:
        log.info("billing does not allow a reply: %s", decision.reason)
        if tenant.status == "active":  # suspended: a person answers, nobody is left waiting
            session.refresh(conversation, with_for_update=True)
            if conversation.status == "active":
                handoff.hand_off(session, tenant, conversation, SUSPENDED, texts)
        return False
    if handoff.too_many_low_confidence(_recent(session, conversation.id)):
        session.refresh(conversation, with_for_update=True)
        if conversation.status == "active":
            handoff.hand_off(session, tenant, conversation, "low_confidence", texts)
        return False
    return True


def _recent(session: Session, conversation_id: uuid.UUID) -> list[handoff.RecentMessage]:
    """The last messages the low-confidence rule looks at (it never looks further back)."""
    rows = session.execute(_RECENT, {"conversation_id": conversation_id}).all()
    return [handoff.RecentMessage(r.sender_type, r.confidence, r.event == "ai_resumed") for r in reversed(rows)]


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
        dashboard.mirror(tenant_id, changed)
    return Outcome(conversation_id, message_id, duplicate=message_id is None and conversation_id is not None)


def _payload_of(event: InboundMessage) -> dict[str, Any]:
    """What the database keeps of a message beyond its text: the parsed event itself."""
    data: dict[str, Any] = dict(event.to_json_dict()["data"])
    data.pop("raw", None) if event.supported else None
    if not event.supported:
        data["unsupported"] = True
    return data
