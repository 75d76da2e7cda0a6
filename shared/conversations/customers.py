"""Who a customer is: found by business-scoped user ID (BSUID) or phone number, whichever
WhatsApp sent, and linked when both appear together.

Since 2026 WhatsApp may withhold a user's phone number (users with a username) and always
sends a BSUID; older records may have only a phone. A customer row holds whatever is known,
and two rows that turn out to be the same person are merged, conversations and all.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import OPEN_CONVERSATION_STATUSES, Conversation, Customer
from shared.whatsapp.updates import CustomerIdentity

log = logging.getLogger(__name__)


class UnidentifiedCustomer(ValueError):
    """Neither a BSUID nor a phone number: nothing to key the customer on."""


_CLOSED_BY_MERGE = "conversations_closed_by_merge"  # a Session.info key
_OPEN_OF = (
    select(Conversation)
    .where(Conversation.customer_id == bindparam("customer_id"), Conversation.status.in_(OPEN_CONVERSATION_STATUSES))
    .with_for_update()
)
_BY_BSUID = Customer.bsuid == bindparam("bsuid")
_BY_PHONE = Customer.phone_number == bindparam("phone")
_FIND = {  # built once (see conversations): by BSUID, by phone, or by either
    (True, False): select(Customer).where(_BY_BSUID).with_for_update(),
    (False, True): select(Customer).where(_BY_PHONE).with_for_update(),
    (True, True): select(Customer).where(or_(_BY_BSUID, _BY_PHONE)).with_for_update(),
}


def _find(session: Session, bsuid: str | None, phone: str | None) -> tuple[Customer | None, Customer | None]:
    """The rows holding this BSUID and this phone (locked; one query, at most two rows)."""
    if not bsuid and not phone:
        return None, None
    rows = list(session.scalars(_FIND[bool(bsuid), bool(phone)], {"bsuid": bsuid, "phone": phone}))
    by_bsuid = next((c for c in rows if bsuid and c.bsuid == bsuid), None)
    by_phone = next((c for c in rows if phone and c.phone_number == phone), None)
    return by_bsuid, by_phone


def resolve(session: Session, tenant_id: uuid.UUID, identity: CustomerIdentity, seen_at: datetime) -> Customer:
    """The customer this identity belongs to, created or linked as needed (inside a tenant session)."""
    if not identity.bsuid and not identity.phone:
        raise UnidentifiedCustomer("a customer needs a BSUID or a phone number")
    by_bsuid, by_phone = _find(session, identity.bsuid, identity.phone)
    if by_bsuid is None and by_phone is None:
        session.execute(
            insert(Customer)
            .values(
                tenant_id=tenant_id,
                bsuid=identity.bsuid,
                parent_bsuid=identity.parent_bsuid,
                phone_number=identity.phone,
                username=identity.username,
                profile_name=identity.profile_name,
                last_seen_at=seen_at,
            )
            .on_conflict_do_nothing()
        )
        by_bsuid, by_phone = _find(session, identity.bsuid, identity.phone)
    customer = by_bsuid or by_phone
    assert customer is not None  # inserted above, or a concurrent insert won and we found it
    if by_bsuid is not None and by_phone is not None and by_bsuid.id != by_phone.id:
        customer = merge(session, keep=by_phone, duplicate=by_bsuid)
    _absorb(customer, identity, seen_at)
    return customer


def _absorb(customer: Customer, identity: CustomerIdentity, seen_at: datetime) -> None:
    """Remember every identifier and profile detail this payload carried."""
    if identity.bsuid and customer.bsuid != identity.bsuid:
        customer.bsuid = identity.bsuid
    if identity.phone and customer.phone_number != identity.phone:
        customer.phone_number = identity.phone
    if identity.parent_bsuid:
        customer.parent_bsuid = identity.parent_bsuid
    if identity.username:
        customer.username = identity.username
    if identity.profile_name:
        customer.profile_name = identity.profile_name
    if customer.last_seen_at is None or seen_at > customer.last_seen_at:
        customer.last_seen_at = seen_at


def merge(session: Session, keep: Customer, duplicate: Customer) -> Customer:
    """Fold `duplicate` into `keep`: its conversations move over. Where both have one open at
    the same outlet, one of the two is resolved: never one an agent has taken (a message from
    a new number can outrun the number change and ask for a person); otherwise the
    duplicate's. Nothing is deleted but the duplicate row itself; the caller shows the
    resolved conversations on the dashboard (`closed_by_merge`)."""
    log.info("merging customer records", extra={"customer_id": str(keep.id), "duplicate_id": str(duplicate.id)})
    kept = {c.outlet_id: c for c in session.scalars(_OPEN_OF, {"customer_id": keep.id})}
    closed = session.info.setdefault(_CLOSED_BY_MERGE, set())
    for theirs in session.scalars(_OPEN_OF, {"customer_id": duplicate.id}):
        ours = kept.get(theirs.outlet_id)
        if ours is None:
            continue
        loser = ours if theirs.status == "handed_off" and ours.status != "handed_off" else theirs
        loser.status, loser.resolved_at = "resolved", datetime.now(UTC)
        closed.add(loser.id)
        log.info("conversation resolved by a customer merge", extra={"conversation_id": str(loser.id)})
    session.flush()  # one open conversation per outlet and customer, before they share a customer
    session.execute(update(Conversation).where(Conversation.customer_id == duplicate.id).values(customer_id=keep.id))
    identifiers = CustomerIdentity(
        bsuid=duplicate.bsuid,
        parent_bsuid=duplicate.parent_bsuid,
        phone=duplicate.phone_number,
        username=duplicate.username,
        profile_name=duplicate.profile_name,
    )
    seen = max(filter(None, (keep.last_seen_at, duplicate.last_seen_at)), default=None)
    session.delete(duplicate)
    session.flush()  # free the duplicate's unique identifiers before `keep` takes them
    if seen is not None:
        _absorb(keep, identifiers, seen)
    return keep


def closed_by_merge(session: Session) -> list[uuid.UUID]:
    """Conversations a merge in this session resolved: the dashboard must be told."""
    return sorted(session.info.get(_CLOSED_BY_MERGE, ()))


def rekey(
    session: Session, tenant_id: uuid.UUID, old: CustomerIdentity, new: CustomerIdentity, seen_at: datetime
) -> Customer:
    """A customer changed number or BSUID: the same row (and conversation) carries the new keys."""
    by_bsuid, by_phone = _find(session, old.bsuid, old.phone)
    customer = by_bsuid or by_phone
    if customer is None:
        return resolve(session, tenant_id, new, seen_at)
    new_bsuid, new_phone = _find(
        session, new.bsuid if new.bsuid != old.bsuid else None, new.phone if new.phone != old.phone else None
    )
    for other in (new_bsuid, new_phone):
        if other is not None and other.id != customer.id:
            customer = merge(session, keep=customer, duplicate=other)
    _absorb(customer, new, seen_at)
    customer.phone_number = new.phone  # the old number is not theirs any more: never sent to again
    return customer
