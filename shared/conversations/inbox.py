"""Conversations as staff read them without Firestore listeners: the same documents the
dashboard mirror writes, read from PostgreSQL, newest activity first, a page at a time.

Row-level security keeps every read inside the caller's tenant; an agent scoped to an outlet
is limited to it here as well.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, tuple_

from shared.api.pages import Key
from shared.conversations.dashboard import conversation_document, message_document
from shared.db.models import Conversation, Customer, Message
from shared.db.tenancy import tenant_session

_ACTIVITY = func.coalesce(Conversation.last_message_at, Conversation.created_at)
_LAST_BODY = (
    select(Message.body)
    .where(Message.conversation_id == Conversation.id)
    .order_by(Message.created_at.desc())
    .limit(1)
    .correlate(Conversation)
    .scalar_subquery()
)
_CONVERSATIONS = select(Conversation, Customer, _LAST_BODY.label("last_body"), _ACTIVITY.label("activity")).join(
    Customer, Customer.id == Conversation.customer_id
)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    last: Key | None  # the sort key of the last item when more may follow, else None


def conversations(
    tenant_id: uuid.UUID,
    *,
    outlet_ids: tuple[uuid.UUID, ...] | None,
    status: str | None,
    limit: int,
    after: Key | None,
) -> Page:
    """One page of the tenant's conversations; `outlet_ids` limits them to those outlets."""
    query = _CONVERSATIONS
    if outlet_ids is not None:
        query = query.where(Conversation.outlet_id.in_(outlet_ids))
    if status is not None:
        query = query.where(Conversation.status == status)
    if after is not None:
        query = query.where(tuple_(_ACTIVITY, Conversation.id) < tuple_(*after))
    query = query.order_by(_ACTIVITY.desc(), Conversation.id.desc()).limit(limit + 1)
    with tenant_session(tenant_id) as session:
        rows = session.execute(query).all()
    items = [conversation_document(tenant_id, r.Conversation, r.Customer, r.last_body) for r in rows[:limit]]
    last = (rows[limit - 1].activity, rows[limit - 1].Conversation.id) if len(rows) > limit else None
    return Page(items, last)


def conversation(
    tenant_id: uuid.UUID, conversation_id: uuid.UUID, *, outlet_ids: tuple[uuid.UUID, ...] | None
) -> dict[str, Any] | None:
    """One conversation, or None when it is not the tenant's or not in `outlet_ids`."""
    with tenant_session(tenant_id) as session:
        row = session.execute(_CONVERSATIONS.where(Conversation.id == conversation_id)).first()
    if row is None or (outlet_ids is not None and row.Conversation.outlet_id not in outlet_ids):
        return None
    return conversation_document(tenant_id, row.Conversation, row.Customer, row.last_body)


def messages(tenant_id: uuid.UUID, conversation_id: uuid.UUID, *, limit: int, after: Key | None) -> Page:
    """One page of a conversation's messages, newest first."""
    query = select(Message).where(Message.conversation_id == conversation_id)
    if after is not None:
        query = query.where(tuple_(Message.created_at, Message.id) < tuple_(*after))
    query = query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)
    with tenant_session(tenant_id) as session:
        rows = list(session.scalars(query))
        items = [message_document(tenant_id, m) for m in rows[:limit]]
    last = (rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return Page(items, last)
