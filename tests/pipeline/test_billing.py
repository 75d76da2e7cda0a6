"""Billing as tenants and operators see it: plans change (an upgrade at once, a downgrade at the
next period), top-ups are recorded once per payment, a closed period gets exactly one invoice
(JSON and PDF) however many times the job runs, and a tenant out of quota and deposit has its
customers handed to staff instead of being left unanswered."""

from __future__ import annotations

import io
import multiprocessing
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from emulators.stack import LocalStack
from shared.billing import account
from shared.conversations.handoff import HANDOFF_NOTICE
from shared.db.models import (
    BillableMessage,
    Conversation,
    Document,
    Invoice,
    Outlet,
    Subscription,
    Tenant,
    UsageRecord,
)
from shared.db.tenancy import tenant_session
from tests.billing import workers
from tests.pipeline.driver import Meta, id_token, new_customer, wait_for
from tests.pipeline.operators import call, make_operator
from tests.pipeline.staff import Business, add_business

JAKARTA = ZoneInfo("Asia/Jakarta")


@pytest.fixture(scope="module")
def operator(stack: LocalStack) -> str:
    return make_operator(stack, f"ops-{uuid.uuid4().hex[:6]}@platform.test")


@pytest.fixture
def shop(stack: LocalStack) -> tuple[Business, str]:
    business = add_business("Apotek Sehat")
    return business, id_token(stack, business.owner_email)


def test_an_upgrade_applies_at_once_and_a_downgrade_next_period(
    stack: LocalStack, operator: str, shop: tuple[Business, str]
) -> None:
    business, owner = shop
    path = f"/api/v1/platform/tenants/{business.tenant_id}/subscription"
    answer = call(stack, "billing-api", "PUT", path, operator, json={"plan": "growth"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == "now"
    quota = call(stack, "billing-api", "GET", "/api/v1/billing/quota", owner).json()
    assert (quota["plan"], quota["included"], quota["limits"]["outlets"]) == ("growth", 2000, 3)
    assert quota["overage_rate"] == {"amount": "0.08", "currency": "USD"}

    answer = call(stack, "billing-api", "PUT", path, operator, json={"plan": "starter"})
    assert answer.json()["applied"] == "next_period"
    subscription = call(stack, "billing-api", "GET", "/api/v1/billing/subscription", owner).json()
    assert (subscription["plan"], subscription["pending_plan"]) == ("growth", "starter")
    assert subscription["price"] == {"amount": "299.00", "currency": "USD"}

    assert call(stack, "billing-api", "PUT", path, owner, json={"plan": "enterprise"}).status_code == 403
    assert call(stack, "billing-api", "PUT", path, operator, json={"plan": "platinum"}).status_code == 400
    unknown = f"/api/v1/platform/tenants/{uuid.uuid4()}/subscription"
    assert call(stack, "billing-api", "PUT", unknown, operator, json={"plan": "growth"}).status_code == 404


def test_a_top_up_is_recorded_once_per_payment(stack: LocalStack, operator: str, shop: tuple[Business, str]) -> None:
    business, owner = shop
    path = f"/api/v1/platform/tenants/{business.tenant_id}/deposits"
    body = {"amount": "25.50", "reference": "bank-transfer-881", "note": "BCA"}
    first = call(stack, "billing-api", "POST", path, operator, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["created"] is True
    again = call(stack, "billing-api", "POST", path, operator, json=body)
    assert again.json()["created"] is False
    assert again.json()["entry"]["id"] == first.json()["entry"]["id"]
    other_amount = call(stack, "billing-api", "POST", path, operator, json={**body, "amount": "30.00"})
    assert other_amount.status_code == 409
    for bad in ({**body, "amount": "-1"}, {**body, "amount": "0.001"}, {**body, "amount": 10.5, "currency": "IDR"}):
        assert call(stack, "billing-api", "POST", path, operator, json=bad).status_code == 400, bad
    assert call(stack, "billing-api", "POST", path, owner, json=body).status_code == 403

    deposit = call(stack, "billing-api", "GET", "/api/v1/billing/deposit", owner).json()
    assert deposit["balance"] == {"amount": "25.50", "currency": "USD"}
    assert [e["kind"] for e in deposit["entries"]] == ["topup"]


def _last_month(now: datetime) -> account.Period:
    this = account.period_containing(now, "Asia/Jakarta")
    return account.period_containing(this.start - timedelta(days=1), "Asia/Jakarta")


def test_a_closed_period_gets_one_invoice_however_often_the_job_runs(
    stack: LocalStack, shop: tuple[Business, str]
) -> None:
    business, owner = shop
    last = _last_month(datetime.now(UTC))
    with tenant_session(business.tenant_id) as session:
        subscription = account.locked(session, session.get_one(Tenant, business.tenant_id))
        subscription.plan, subscription.pending_plan, subscription.monthly_message_quota = "growth", "starter", 2000
        subscription.current_period_start, subscription.current_period_end = last.start, last.end
        for _ in range(3):  # three replies over the quota last month, paid from the deposit
            session.add(
                BillableMessage(
                    tenant_id=business.tenant_id,
                    key=f"reply:{uuid.uuid4()}",
                    period_start=last.key,
                    kind="overage",
                    amount_minor=8,
                )
            )
        session.add(
            UsageRecord(tenant_id=business.tenant_id, period_start=last.key, metric="ai_replies", quantity=2003)
        )

    start_at = time.time() + 4
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.map(workers.close_periods, [start_at] * 3)

    with tenant_session(business.tenant_id) as session:
        [invoice] = session.scalars(select(Invoice)).all()
        subscription = session.scalars(select(Subscription)).one()
    assert (invoice.period_start, invoice.plan) == (last.key, "growth")
    assert (invoice.subtotal_minor, invoice.deposit_used_minor, invoice.amount_minor) == (29_924, 24, 29_900)
    assert subscription.plan == "starter"  # the downgrade waited for the new period
    assert subscription.pending_plan is None
    assert subscription.current_period_start.astimezone(JAKARTA).date() == last.end.date()

    listed = call(stack, "billing-api", "GET", "/api/v1/billing/invoices", owner).json()["invoices"]
    assert [i["id"] for i in listed] == [str(invoice.id)]
    shown = call(stack, "billing-api", "GET", f"/api/v1/billing/invoices/{invoice.id}", owner).json()
    assert [line["amount"]["amount"] for line in shown["lines"]] == ["299.00", "0.24"]
    assert shown["lines"][1]["quantity"] == 3
    assert (shown["subtotal"]["amount"], shown["deposit_used"]["amount"], shown["amount_due"]["amount"]) == (
        "299.24",
        "0.24",
        "299.00",
    )

    pdf = call(stack, "billing-api", "GET", f"/api/v1/billing/invoices/{invoice.id}/pdf", owner)
    assert pdf.status_code == 200
    assert pdf.headers["Content-Type"] == "application/pdf"
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    for expected in (
        "Apotek Sehat",
        "Growth plan",
        "USD 299.24",
        "USD -0.24",
        "Amount due",
        "USD 299.00",
        str(invoice.id),
    ):
        assert expected in text, expected

    other = add_business("Toko Lain")
    outsider = id_token(stack, other.owner_email)
    assert call(stack, "billing-api", "GET", f"/api/v1/billing/invoices/{invoice.id}", outsider).status_code == 404
    assert call(stack, "billing-api", "GET", f"/api/v1/billing/invoices/{invoice.id}/pdf", outsider).status_code == 404
    assert call(stack, "billing-api", "GET", "/api/v1/billing/invoices", outsider).json()["invoices"] == []


def test_out_of_quota_and_deposit_the_customer_goes_to_staff(
    stack: LocalStack, operator: str, shop: tuple[Business, str]
) -> None:
    business, owner = shop
    with tenant_session(business.tenant_id) as session:
        tenant = session.get_one(Tenant, business.tenant_id)
        period = account.period_containing(datetime.now(UTC), tenant.timezone)
        session.add(UsageRecord(tenant_id=tenant.id, period_start=period.key, metric="ai_replies", quantity=500))
        phone_number_id = session.get_one(Outlet, business.outlet_id).phone_number_id
    customer = new_customer()
    shop_meta = Meta(stack.info)
    shop_meta.phone_number_id = phone_number_id
    shop_meta.say(customer, "do you deliver on Sundays?")
    [notice] = wait_for(lambda: shop_meta.sends_to(customer), timeout=60)
    assert notice["body"]["text"]["body"] == HANDOFF_NOTICE["en"]
    with tenant_session(business.tenant_id) as session:
        conversation = session.scalars(select(Conversation)).one()
        billed = session.scalars(select(BillableMessage)).all()
    assert (conversation.status, conversation.handoff_reason) == ("handed_off", "service_suspended")
    assert billed == []  # nothing more is billed

    quota = call(stack, "billing-api", "GET", "/api/v1/billing/quota", owner).json()
    assert quota["suspended"] is True
    suggest = call(
        stack, "assistant-api", "POST", "/api/v1/llm/generate", owner, json={"conversation_id": str(conversation.id)}
    )
    assert suggest.status_code == 429
    assert suggest.json()["error"]["code"] == "service_suspended"

    path = f"/api/v1/platform/tenants/{business.tenant_id}/deposits"
    topup = call(stack, "billing-api", "POST", path, operator, json={"amount": "5.00", "reference": "va-12"})
    assert topup.json()["suspension_lifted"] is True
    assert call(stack, "billing-api", "GET", "/api/v1/billing/quota", owner).json()["suspended"] is False


def test_a_period_starts_at_midnight_in_the_tenants_zone() -> None:
    # 17:30 UTC on 31 December is 00:30 on 1 January in Jakarta: January's period.
    period = account.period_containing(datetime(2026, 12, 31, 17, 30, tzinfo=UTC), "Asia/Jakarta")
    assert period.key == date(2027, 1, 1)
    assert period.start.utcoffset() == timedelta(hours=7)
    assert account.period_containing(datetime(2026, 12, 31, 16, 59, tzinfo=UTC), "Asia/Jakarta").key == date(
        2026, 12, 1
    )
    assert account.period_containing(datetime(2026, 12, 31, 17, 30, tzinfo=UTC), "Etc/UTC").key == date(2026, 12, 1)


def test_knowledge_limits_say_which_limit_and_how_to_raise_it(stack: LocalStack, shop: tuple[Business, str]) -> None:
    business, owner = shop
    first = call(stack, "knowledge-api", "POST", "/knowledge-bases", owner, json={"name": "Obat"})
    assert first.status_code == 201, first.text
    second = call(stack, "knowledge-api", "POST", "/knowledge-bases", owner, json={"name": "Vitamin"})
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "plan_limit"
    assert error["details"] == [{"limit": "knowledge_bases", "allowed": 1, "plan": "starter", "upgrade_to": "growth"}]
    assert "upgrade to the growth plan" in error["message"]

    kb = first.json()["id"]
    with tenant_session(business.tenant_id) as session:  # 45 MB of the starter plan's 50 already kept
        session.add(
            Document(
                tenant_id=business.tenant_id,
                knowledge_base_id=uuid.UUID(kb),
                bucket="documents",
                object_name=f"tenants/{business.tenant_id}/knowledge/{kb}/katalog.pdf",
                generation=1,
                content_type="application/pdf",
                size_bytes=45 * 1024 * 1024,
                status="ready",
            )
        )
    fits = {"file_name": "kecil.pdf", "content_type": "application/pdf", "size_bytes": 4 * 1024 * 1024}
    assert (
        call(stack, "knowledge-api", "POST", f"/knowledge-bases/{kb}/upload-url", owner, json=fits).status_code == 201
    )
    too_much = {**fits, "size_bytes": 6 * 1024 * 1024}
    answer = call(stack, "knowledge-api", "POST", f"/knowledge-bases/{kb}/upload-url", owner, json=too_much)
    assert answer.status_code == 409
    assert answer.json()["error"]["details"][0]["limit"] == "storage_mb"
