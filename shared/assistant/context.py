"""What a reply is written from, read inside the caller's transaction: the business, the
outlet's knowledge bases, the last few messages and the customer's turn."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.assistant import prompts
from shared.assistant.replies import Question
from shared.db.models import Conversation, Message, Outlet, Tenant
from shared.knowledge import retrieval

HISTORY_TURNS = 4
_ROLES: dict[str, prompts.Role] = {"customer": "customer", "llm": "assistant", "agent": "staff"}
_HISTORY = (
    select(Message.sender_type, Message.body)
    .where(
        Message.conversation_id == bindparam("conversation_id"),
        Message.created_at < bindparam("before"),
        Message.sender_type.in_(tuple(_ROLES)),
        Message.body.is_not(None),
    )
    .order_by(Message.created_at.desc())
    .limit(HISTORY_TURNS)
)


def question(
    session: Session, tenant: Tenant, conversation: Conversation, texts: Sequence[str], before: datetime
) -> Question:
    """The question for the customer's `texts` (one turn), quoting what was said `before` them."""
    outlet = session.get_one(Outlet, conversation.outlet_id)
    rows = session.execute(_HISTORY, {"conversation_id": conversation.id, "before": before}).all()
    return Question(
        tenant_id=tenant.id,
        business_name=tenant.name,
        outlet_name=outlet.name,
        tenant_settings=dict(tenant.settings or {}),
        default_language=tenant.default_language,
        knowledge_base_ids=retrieval.knowledge_base_ids(session, outlet),
        history=[prompts.Turn(_ROLES[row.sender_type], row.body) for row in reversed(rows)],
        texts=list(texts),
    )


def latest_turn(session: Session, conversation_id: object) -> tuple[list[str], datetime] | None:
    """The customer's messages since anyone else last wrote, for "suggest a reply"."""
    recent = session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.body.is_not(None))
        .order_by(Message.created_at.desc())
        .limit(20)
    ).all()
    turn: list[Message] = []
    for message in recent:
        if message.sender_type != "customer":
            if turn:
                break
            continue
        turn.append(message)
    if not turn:
        return None
    turn.reverse()
    return [m.body for m in turn if m.body], turn[0].created_at
