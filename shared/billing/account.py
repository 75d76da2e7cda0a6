"""A tenant's billing account: its one subscription, the month it is in, what it has used
and what its deposit holds.

Everything that moves money or the quota takes the subscription row FOR UPDATE first
(`locked`): charges, top-ups and plan changes of one tenant then happen one after another,
which is what keeps the count exact and the deposit from going negative however many
instances reply at once. Periods are calendar months in the tenant's time zone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.billing.tiers import CURRENCY, DEFAULT_PLAN, Money, Tier, tier
from shared.db.models import DepositLedgerEntry, Subscription, Tenant, UsageRecord

AI_REPLIES = "ai_replies"  # the usage_records metric the quota counts


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime  # midnight of the 1st, in the tenant's zone
    end: datetime  # the next 1st

    @property
    def key(self) -> date:
        return self.start.date()


def period_containing(moment: datetime, timezone: str) -> Period:
    local = moment.astimezone(ZoneInfo(timezone))
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return Period(start, end)


def now() -> datetime:
    return datetime.now(UTC)


def locked(session: Session, tenant: Tenant) -> Subscription:
    """The tenant's subscription, locked for this transaction; a tenant that has none (created
    before billing, or by a test) starts on the default plan."""
    period = period_containing(now(), tenant.timezone)
    plan = tier(DEFAULT_PLAN)
    session.execute(
        insert(Subscription)
        .values(
            tenant_id=tenant.id,
            plan=plan.name,
            status="active",
            monthly_message_quota=plan.messages,
            current_period_start=period.start,
            current_period_end=period.end,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id"])
    )
    # populate_existing: the identity map may hold the row as it was before the lock.
    locking = select(Subscription).where(Subscription.tenant_id == tenant.id).with_for_update()
    return session.scalars(locking.execution_options(populate_existing=True)).one()


def used(session: Session, tenant_id: uuid.UUID, period: Period) -> int:
    quantity = session.scalar(
        select(UsageRecord.quantity).where(
            UsageRecord.tenant_id == tenant_id, UsageRecord.period_start == period.key, UsageRecord.metric == AI_REPLIES
        )
    )
    return int(quantity or 0)


def count_one(session: Session, tenant_id: uuid.UUID, period: Period) -> None:
    session.execute(
        insert(UsageRecord)
        .values(tenant_id=tenant_id, period_start=period.key, metric=AI_REPLIES, quantity=1)
        .on_conflict_do_update(
            index_elements=["tenant_id", "period_start", "metric"],
            set_={"quantity": UsageRecord.quantity + 1, "updated_at": func.now()},
        )
    )


def balance(session: Session, tenant_id: uuid.UUID) -> Money:
    minor = session.scalar(
        select(func.coalesce(func.sum(DepositLedgerEntry.amount_minor), 0)).where(
            DepositLedgerEntry.tenant_id == tenant_id, DepositLedgerEntry.currency == CURRENCY
        )
    )
    return Money.of_minor(int(minor or 0))


def next_reply_allowed(session: Session, tenant: Tenant, plan: Tier) -> bool:
    """Whether one more AI reply would be allowed now: inside the quota, or inside 105 % with
    a deposit that covers the overage rate."""
    number = used(session, tenant.id, period_containing(now(), tenant.timezone)) + 1
    if number <= plan.messages:
        return True
    return number <= plan.overage_ceiling and balance(session, tenant.id).minor >= plan.overage.minor


def lift_if_allowed(session: Session, tenant: Tenant, subscription: Subscription) -> bool:
    """After a top-up or an upgrade: the AI replies again if the next reply would be allowed."""
    if subscription.suspended_at is not None and next_reply_allowed(session, tenant, tier(subscription.plan)):
        subscription.suspended_at = None
        return True
    return False
