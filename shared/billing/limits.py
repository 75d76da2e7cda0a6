"""What a tier allows beyond messages: outlets, knowledge bases and document storage. The
tenant and knowledge APIs check here before they add one, under the subscription's lock, so
two requests at once cannot both take the last place."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.api.errors import PLAN_LIMIT, ApiError
from shared.billing import account
from shared.billing.tiers import DEFAULT_PLAN, ORDER, Tier, tier
from shared.db.models import Document, KnowledgeBase, Outlet, Subscription, Tenant
from shared.db.tenancy import tenant_session


class LimitReached(ApiError):
    """409 `plan_limit`: which limit, what the plan allows, and the plan that allows more."""

    def __init__(self, limit: str, allowed: int, plan: str) -> None:  # limit: outlets | knowledge_bases | storage_mb
        bigger = next((t for t in ORDER[ORDER.index(plan) + 1 :] if _room(tier(t), limit) > allowed), None)
        remedy = f"upgrade to the {bigger} plan to raise it" if bigger else "it is the largest plan: remove one first"
        message = f"the {plan} plan allows {allowed} {limit.replace('_', ' ')}; {remedy}"
        super().__init__(
            409, message, PLAN_LIMIT, [{"limit": limit, "allowed": allowed, "plan": plan, "upgrade_to": bigger}]
        )


def _room(plan: Tier, limit: str) -> int:
    value = {"outlets": plan.outlets, "knowledge_bases": plan.knowledge_bases, "storage_mb": plan.storage_mb}[limit]
    return 10**9 if value is None else value


def current_tier(session: Session, tenant: Tenant) -> Tier:
    return tier(account.locked(session, tenant).plan)


def check_new_outlet(session: Session, tenant: Tenant) -> None:
    plan = current_tier(session, tenant)
    active = session.scalar(select(func.count()).where(Outlet.tenant_id == tenant.id, Outlet.status == "active"))
    if int(active or 0) >= plan.outlets:
        raise LimitReached("outlets", plan.outlets, plan.name)


def check_new_knowledge_base(session: Session, tenant: Tenant) -> None:
    plan = current_tier(session, tenant)
    if plan.knowledge_bases is None:
        return
    count = session.scalar(select(func.count()).where(KnowledgeBase.tenant_id == tenant.id))
    if int(count or 0) >= plan.knowledge_bases:
        raise LimitReached("knowledge_bases", plan.knowledge_bases, plan.name)


def check_storage(session: Session, tenant: Tenant, new_bytes: int) -> None:
    """Whether `new_bytes` more fit in the tier's storage, next to every document kept now."""
    plan = current_tier(session, tenant)
    stored = session.scalar(
        select(func.coalesce(func.sum(Document.size_bytes), 0)).where(
            Document.tenant_id == tenant.id, Document.status != "failed"
        )
    )
    if int(stored or 0) + new_bytes > plan.storage_bytes:
        raise LimitReached("storage_mb", plan.storage_mb, plan.name)


_RATE_CACHE_SECONDS = 60.0  # an upgrade raises the rate limit within a minute
_rates: dict[uuid.UUID, tuple[float, int]] = {}


def requests_per_minute(tenant_id: uuid.UUID) -> int:
    """The staff APIs' rate limit of the tenant's tier, remembered for a minute per instance."""
    cached = _rates.get(tenant_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    with tenant_session(tenant_id) as session:
        plan = session.scalar(select(Subscription.plan).where(Subscription.tenant_id == tenant_id))
    limit = tier(plan or DEFAULT_PLAN).requests_per_minute
    _rates[tenant_id] = (time.monotonic() + _RATE_CACHE_SECONDS, limit)
    return limit
