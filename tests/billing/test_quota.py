"""The quota is exact under concurrency, against the real database, from several processes at
once: the count never passes the quota, the deposit never goes negative, a key is never
charged twice, and the warning and suspension events go out once."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from google.cloud import pubsub_v1
from sqlalchemy import func, select

from emulators.stack import LocalStack
from shared.billing import account, deposits
from shared.billing.tiers import Money
from shared.cloud import pubsub
from shared.db import platform
from shared.db.models import BillableMessage, DepositLedgerEntry, Subscription, Tenant, UsageRecord
from shared.db.tenancy import tenant_session
from tests.billing import workers

PROCESSES = 5


def new_tenant(used: int, deposit: str | None = None) -> uuid.UUID:
    """A starter tenant (500 a month) that has used `used` replies this period."""
    tenant_id = platform.create_tenant("Warung Uji", f"warung-{uuid.uuid4().hex[:8]}")
    with tenant_session(tenant_id) as session:
        tenant = session.get_one(Tenant, tenant_id)
        account.locked(session, tenant)
        period = account.period_containing(datetime.now(UTC), tenant.timezone)
        session.add(UsageRecord(tenant_id=tenant_id, period_start=period.key, metric=account.AI_REPLIES, quantity=used))
        if deposit:
            deposits.record_topup(session, tenant, Money(Decimal(deposit)), f"test-{uuid.uuid4().hex}", None)
    return tenant_id


def charge_at_once(tenant_id: uuid.UUID, keys: list[str]) -> list[tuple[str, bool, bool]]:
    """Every key charged at the same moment, spread over PROCESSES processes."""
    start_at = time.time() + 4  # time for the processes to start and connect
    shares = [share for n in range(PROCESSES) if (share := keys[n::PROCESSES])]
    with multiprocessing.get_context("spawn").Pool(len(shares)) as pool:
        results = pool.starmap(workers.charge, [(str(tenant_id), share, start_at) for share in shares])
    return [r for share in results for r in share]


@pytest.fixture
def billing_events(stack: LocalStack) -> Iterator[dict[str, str]]:
    """Pull subscriptions on the two billing topics, made for the test and deleted after it."""
    subscriber = pubsub_v1.SubscriberClient()
    project = stack.info["project"]
    names = {}
    for topic in (pubsub.QUOTA_WARNING, pubsub.SERVICE_SUSPENDED):
        name = subscriber.subscription_path(project, f"test-{topic.replace('.', '-')}-{uuid.uuid4().hex[:6]}")
        subscriber.create_subscription(request={"name": name, "topic": f"projects/{project}/topics/{topic}"})
        names[topic] = name
    yield names
    for name in names.values():
        subscriber.delete_subscription(request={"subscription": name})


def events_of(subscription: str, tenant_id: uuid.UUID) -> list[bytes]:
    subscriber = pubsub_v1.SubscriberClient()
    found = []
    for _ in range(3):  # the emulator may answer a pull with part of what it holds
        answer = subscriber.pull(request={"subscription": subscription, "max_messages": 100}, timeout=10)
        found += [
            m.message.data for m in answer.received_messages if m.message.attributes["tenant_id"] == str(tenant_id)
        ]
        if answer.received_messages:
            ids = [m.ack_id for m in answer.received_messages]
            subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ids})
    return found


def billed(tenant_id: uuid.UUID) -> tuple[int, int, int]:
    """(replies counted this period, billable rows, deposit balance in cents)."""
    with tenant_session(tenant_id) as session:
        tenant = session.get_one(Tenant, tenant_id)
        used = account.used(session, tenant_id, account.period_containing(datetime.now(UTC), tenant.timezone))
        rows = session.scalar(select(func.count()).select_from(BillableMessage)) or 0
        return used, rows, account.balance(session, tenant_id).minor


def test_fifty_replies_with_ten_left_allow_exactly_ten(stack: LocalStack, billing_events: dict[str, str]) -> None:
    tenant_id = new_tenant(used=490)
    results = charge_at_once(tenant_id, [f"reply:{uuid.uuid4()}" for _ in range(50)])
    assert sum(allowed for _, allowed, _ in results) == 10
    assert billed(tenant_id) == (500, 10, 0)
    with tenant_session(tenant_id) as session:
        assert session.scalars(select(Subscription.suspended_at)).one() is not None
    assert len(events_of(billing_events[pubsub.QUOTA_WARNING], tenant_id)) == 1
    assert len(events_of(billing_events[pubsub.SERVICE_SUSPENDED], tenant_id)) == 1


def test_the_deposit_pays_overage_and_never_goes_negative(stack: LocalStack) -> None:
    tenant_id = new_tenant(used=500, deposit="0.25")  # two replies at 0.10, and 0.05 left over
    results = charge_at_once(tenant_id, [f"reply:{uuid.uuid4()}" for _ in range(20)])
    assert sum(allowed for _, allowed, _ in results) == 2
    assert billed(tenant_id) == (502, 2, 5)
    with tenant_session(tenant_id) as session:
        charges = session.scalars(select(DepositLedgerEntry.amount_minor).where(DepositLedgerEntry.kind == "charge"))
        assert sorted(charges) == [-10, -10]
        kinds = session.scalars(select(BillableMessage.kind))
        assert list(kinds) == ["overage", "overage"]


def test_past_105_percent_the_deposit_is_not_spent(stack: LocalStack) -> None:
    tenant_id = new_tenant(used=524, deposit="10.00")  # 105 % of 500 is 525
    results = charge_at_once(tenant_id, [f"reply:{uuid.uuid4()}" for _ in range(10)])
    assert sum(allowed for _, allowed, _ in results) == 1
    assert billed(tenant_id) == (525, 1, 990)


def test_a_retried_reply_is_charged_once(stack: LocalStack) -> None:
    tenant_id = new_tenant(used=500, deposit="5.00")
    key = f"reply:{uuid.uuid4()}"
    results = charge_at_once(tenant_id, [key] * 20)
    assert all(allowed for _, allowed, _ in results)
    assert sum(not duplicate for _, _, duplicate in results) == 1
    assert billed(tenant_id) == (501, 1, 490)


def test_a_top_up_lifts_the_suspension(stack: LocalStack) -> None:
    tenant_id = new_tenant(used=500)
    assert charge_at_once(tenant_id, [f"reply:{uuid.uuid4()}"])[0][1] is False  # no deposit: suspended
    with tenant_session(tenant_id) as session:
        topup = deposits.record_topup(
            session, session.get_one(Tenant, tenant_id), Money(Decimal("1.00")), "pay-1", None
        )
        assert topup.lifted
        again = deposits.record_topup(
            session, session.get_one(Tenant, tenant_id), Money(Decimal("1.00")), "pay-1", None
        )
        assert not again.created  # the same payment recorded twice counts once
    assert charge_at_once(tenant_id, [f"reply:{uuid.uuid4()}"])[0][1] is True
    assert billed(tenant_id) == (501, 1, 90)
