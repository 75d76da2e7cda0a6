"""The deposit: an append-only ledger of top-ups (recorded by platform operators) and the
overage charges that spend it. Its balance is the sum of the ledger; nothing updates a row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.billing import account
from shared.billing.tiers import CURRENCY, Money
from shared.db import paging
from shared.db.models import DepositLedgerEntry, Tenant


class ReferenceReused(ValueError):
    """A top-up reference names an earlier top-up of another amount."""


@dataclass(frozen=True, slots=True)
class TopUp:
    entry: DepositLedgerEntry
    created: bool  # False: this reference was recorded before (a retry)
    lifted: bool  # the suspension ended


def record_topup(session: Session, tenant: Tenant, amount: Money, reference: str, note: str | None) -> TopUp:
    """Record a top-up once per reference (the payment's id): a retry returns the first."""
    if amount.currency != CURRENCY or amount.minor <= 0:
        raise ValueError(f"a top-up is a positive amount in {CURRENCY}")
    subscription = account.locked(session, tenant)
    inserted = session.execute(
        insert(DepositLedgerEntry)
        .values(
            tenant_id=tenant.id,
            amount_minor=amount.minor,
            currency=CURRENCY,
            kind="topup",
            reference=f"topup:{reference}",
            note=note,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "reference"])
        .returning(DepositLedgerEntry.id)
    ).scalar_one_or_none()
    entry = session.scalars(
        select(DepositLedgerEntry).where(
            DepositLedgerEntry.tenant_id == tenant.id, DepositLedgerEntry.reference == f"topup:{reference}"
        )
    ).one()
    if inserted is None and entry.amount_minor != amount.minor:
        raise ReferenceReused(f"reference {reference!r} was recorded with another amount")
    lifted = account.lift_if_allowed(session, tenant, subscription)
    return TopUp(entry, inserted is not None, lifted)


def entries(
    session: Session, tenant_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[DepositLedgerEntry]:
    query = select(DepositLedgerEntry).where(DepositLedgerEntry.tenant_id == tenant_id)
    return paging.newest_first(session, query, DepositLedgerEntry.created_at, DepositLedgerEntry.id, after, limit)
