"""The rule before every AI reply.

- Inside the monthly quota: the reply is counted and goes out. At 100 %, billing.quota.warning
  is published once per period.
- From 100 % to 105 %: each reply is charged the tier's overage rate against the deposit, when
  the deposit covers it.
- With no deposit to cover it, or past 105 %: billing.service.suspended is published, the AI
  stops replying (the conversation goes to staff) and nothing more is billed. A top-up, an
  upgrade or the next period lifts it.

One AI reply is one billable message, whatever number of WhatsApp messages it is split into.
Its key is the newest customer message it answers: a redelivered event or a retried reply
finds its key already billed and is neither counted nor charged again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.billing import account
from shared.billing.tiers import CURRENCY, tier
from shared.cloud import pubsub
from shared.db.models import BillableMessage, DepositLedgerEntry, Subscription, Tenant

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Charge:
    allowed: bool
    kind: str | None = None  # included | overage
    number: int = 0  # the reply's number in its period
    duplicate: bool = False  # this key was billed before: nothing counted now
    reason: str = ""


def may_reply(session: Session, tenant: Tenant) -> Charge:
    """A cheap look before the model is asked (no lock): is the tenant's AI suspended?
    The exact decision is `charge_reply`'s, when the reply is written."""
    if tenant.status != "active":
        return Charge(False, reason=f"tenant is {tenant.status}")
    subscription = session.scalars(select(Subscription).where(Subscription.tenant_id == tenant.id)).first()
    if subscription is None or subscription.suspended_at is None:
        return Charge(True)
    if subscription.suspended_at < account.period_containing(account.now(), tenant.timezone).start:
        return Charge(True)  # a new period: charge_reply lifts it
    return Charge(False, reason="service suspended: quota and deposit used up")


def charge_reply(session: Session, tenant: Tenant, key: str) -> Charge:
    """Count (and charge) one AI reply, or refuse it, exactly once per key. Call inside the
    transaction that writes the reply: the count commits with it, or neither does."""
    subscription = account.locked(session, tenant)
    billed = session.scalars(
        select(BillableMessage).where(BillableMessage.tenant_id == tenant.id, BillableMessage.key == key)
    ).first()
    if billed is not None:
        return Charge(True, billed.kind, duplicate=True)
    period = account.period_containing(account.now(), tenant.timezone)
    if subscription.suspended_at is not None and subscription.suspended_at < period.start:
        subscription.suspended_at = None  # a new month, a new quota
    if subscription.suspended_at is not None:
        return Charge(False, reason="service suspended")
    plan = tier(subscription.plan)
    number = account.used(session, tenant.id, period) + 1
    amount = 0
    if number <= plan.messages:
        kind = "included"
    elif number <= plan.overage_ceiling and account.balance(session, tenant.id).minor >= plan.overage.minor:
        kind, amount = "overage", plan.overage.minor
        session.add(
            DepositLedgerEntry(
                tenant_id=tenant.id,
                amount_minor=-amount,
                currency=CURRENCY,
                kind="charge",
                reference=f"message:{key}",
                note=f"AI reply {number} of {period.key:%Y-%m}, over the {plan.messages:,}-message quota",
            )
        )
    else:
        subscription.suspended_at = account.now()
        reason = "over_105_percent" if number > plan.overage_ceiling else "deposit_exhausted"
        _publish(pubsub.SERVICE_SUSPENDED, tenant, subscription, period, number - 1, reason=reason)
        log.warning("AI replies suspended: %s", reason, extra={"tenant_id": str(tenant.id)})
        return Charge(False, number=number, reason=reason)
    session.add(
        BillableMessage(
            tenant_id=tenant.id, key=key, period_start=period.key, kind=kind, amount_minor=amount, currency=CURRENCY
        )
    )
    account.count_one(session, tenant.id, period)
    if number >= plan.messages and subscription.quota_warned_period != period.key:
        subscription.quota_warned_period = period.key
        _publish(pubsub.QUOTA_WARNING, tenant, subscription, period, number)
        # The "tenant over its quota" alert (terraform/monitoring.tf) matches this line.
        log.warning(
            "tenant reached its monthly quota",
            extra={"tenant_id": str(tenant.id), "plan": plan.name, "used": number, "quota": plan.messages},
        )
    return Charge(True, kind, number)


def _publish(
    topic: str, tenant: Tenant, subscription: Subscription, period: account.Period, used: int, **extra: Any
) -> None:
    """Inside the transaction, as handoffs do: a failed commit may publish twice, and
    subscribers key on tenant and period."""
    plan = tier(subscription.plan)
    data = {
        "tenant_id": str(tenant.id),
        "plan": plan.name,
        "period_start": period.key.isoformat(),
        "used": used,
        "quota": plan.messages,
        "at": account.now().isoformat(),
        **extra,
    }
    pubsub.publish([pubsub.Outgoing(topic, data, attributes={"tenant_id": str(tenant.id)})])
