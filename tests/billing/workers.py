"""What each process of the concurrency tests runs: AI replies charged at one moment, from
threads of several processes, through the same code the conversation function uses."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor


def charge(tenant_id: str, keys: list[str], start_at: float) -> list[tuple[str, bool, bool]]:
    """(key, allowed, duplicate) for each key, all charged at once from threads of this process."""
    from shared.billing import quota
    from shared.db.models import Tenant
    from shared.db.tenancy import tenant_session

    tenant = uuid.UUID(tenant_id)

    def one(key: str) -> tuple[str, bool, bool]:
        with tenant_session(tenant) as session:
            decision = quota.charge_reply(session, session.get_one(Tenant, tenant), key)
        return key, decision.allowed, decision.duplicate

    time.sleep(max(0.0, start_at - time.time()))
    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        return list(pool.map(one, keys))


def close_periods(start_at: float) -> int:
    from shared.billing import invoices

    time.sleep(max(0.0, start_at - time.time()))
    return len(invoices.close_periods())
