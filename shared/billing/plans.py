"""Changing a tenant's plan: an upgrade applies at once (its quota and limits now, and it may
lift a suspension); a downgrade waits for the next period, so nothing paid for is taken away
mid-month. Choosing the current plan again cancels a waiting downgrade."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from shared.billing import account
from shared.billing.tiers import is_upgrade, tier
from shared.db.models import Subscription, Tenant


@dataclass(frozen=True, slots=True)
class PlanChange:
    subscription: Subscription
    applied: str  # now | next_period | unchanged


def change_plan(session: Session, tenant: Tenant, plan: str) -> PlanChange:
    subscription = account.locked(session, tenant)
    if plan == subscription.plan:
        subscription.pending_plan = None
        return PlanChange(subscription, "unchanged")
    if is_upgrade(subscription.plan, plan):
        subscription.plan = plan
        subscription.pending_plan = None
        subscription.monthly_message_quota = tier(plan).messages
        account.lift_if_allowed(session, tenant, subscription)
        return PlanChange(subscription, "now")
    subscription.pending_plan = plan
    return PlanChange(subscription, "next_period")


def start_next_period(subscription: Subscription, period: account.Period) -> None:
    """The period-close job moves the subscription on: a waiting downgrade takes effect."""
    if subscription.pending_plan is not None:
        subscription.plan = subscription.pending_plan
        subscription.pending_plan = None
        subscription.monthly_message_quota = tier(subscription.plan).messages
    subscription.current_period_start = period.start
    subscription.current_period_end = period.end
