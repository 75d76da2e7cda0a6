"""The billing API: a tenant's quota, usage, subscription, deposit and invoices; and, for
platform operators only, changing a subscription and recording a deposit top-up.

Money is a decimal string with its currency ("299.00", "USD"): exact, never a float.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from flask import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.api.auth import EVERY_ROLE, MANAGING_ROLES, OPERATORS, Operator, Staff
from shared.api.errors import ApiError
from shared.api.pages import decode_cursor, encode_cursor
from shared.api.routes import Route, StaffApi
from shared.billing import account, deposits, invoices, limits, plans
from shared.billing.tiers import ORDER, Money, tier
from shared.db.models import BillableMessage, DepositLedgerEntry, Invoice, Subscription, Tenant, UsageRecord
from shared.db.tenancy import tenant_session

Plan = Literal["starter", "growth", "enterprise"]


class Amount(BaseModel):
    amount: Decimal = Field(description="Exact, two decimals.", examples=["299.00"])
    currency: str = Field(examples=["USD"])

    @classmethod
    def of(cls, money: Money) -> Amount:
        return cls(amount=money.amount.quantize(Decimal("0.01")), currency=money.currency)


class QuotaView(BaseModel):
    plan: Plan
    period_start: datetime
    period_end: datetime
    included: int = Field(description="AI replies the plan includes this period.")
    used: int = Field(description="AI replies so far this period (overage included).")
    remaining: int = Field(description="Included replies left.")
    overage_allowed: int = Field(description="Replies past the quota the deposit may pay for (up to 105 %).")
    overage_rate: Amount
    deposit_balance: Amount
    suspended: bool = Field(description="The AI is not replying: quota and deposit are used up.")
    limits: dict[str, int | None] = Field(description="outlets, knowledge_bases (null: unlimited), storage_mb.")


class UsagePeriod(BaseModel):
    period_start: date
    ai_replies: int
    included: int
    overage: int
    overage_charged: Amount


class UsageView(BaseModel):
    periods: list[UsagePeriod] = Field(description="Newest first, up to 12.")


class SubscriptionView(BaseModel):
    plan: Plan
    pending_plan: Plan | None = Field(description="A downgrade that starts with the next period.")
    status: str
    price: Amount
    current_period_start: datetime
    current_period_end: datetime
    suspended_at: datetime | None


class SubscriptionChange(BaseModel):
    plan: Plan


class SubscriptionChanged(BaseModel):
    subscription: SubscriptionView
    applied: Literal["now", "next_period", "unchanged"]


class LedgerEntryView(BaseModel):
    id: uuid.UUID
    kind: str
    amount: Amount
    reference: str
    note: str | None
    created_at: datetime


class DepositView(BaseModel):
    balance: Amount
    entries: list[LedgerEntryView]
    next_cursor: str | None


class PageQuery(BaseModel):
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=200)


class TopUpBody(BaseModel):
    amount: Decimal = Field(gt=0, le=Decimal("100000"), decimal_places=2, description="In USD, e.g. 50.00.")
    currency: Literal["USD"] = "USD"
    reference: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$", description="The payment's id: a retry is a no-op."
    )
    note: str | None = Field(None, max_length=500)


class TopUpView(BaseModel):
    entry: LedgerEntryView
    created: bool = Field(description="False: this reference was recorded before; nothing changed.")
    balance: Amount
    suspension_lifted: bool


class InvoiceLine(BaseModel):
    description: str
    quantity: int
    unit_price: Amount
    amount: Amount


class InvoiceView(BaseModel):
    id: uuid.UUID
    period_start: date
    period_end: date
    plan: str
    status: str
    lines: list[InvoiceLine]
    subtotal: Amount
    deposit_used: Amount
    amount_due: Amount
    issued_at: datetime | None


class InvoiceList(BaseModel):
    invoices: list[InvoiceView]
    next_cursor: str | None


class TenantPath(BaseModel):
    tenant_id: uuid.UUID


class InvoicePath(BaseModel):
    invoice_id: uuid.UUID


def _tenant(session: Session, tenant_id: uuid.UUID) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise ApiError(404, "no such tenant")
    return tenant


def _subscription_view(subscription: Subscription) -> SubscriptionView:
    return SubscriptionView(
        plan=subscription.plan,
        pending_plan=subscription.pending_plan,
        status=subscription.status,
        price=Amount.of(tier(subscription.plan).price),
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end,
        suspended_at=subscription.suspended_at,
    )


def _entry_view(entry: DepositLedgerEntry) -> LedgerEntryView:
    return LedgerEntryView(
        id=entry.id,
        kind=entry.kind,
        amount=Amount.of(Money.of_minor(entry.amount_minor, entry.currency)),
        reference=entry.reference,
        note=entry.note,
        created_at=entry.created_at,
    )


def _invoice_view(invoice: Invoice) -> InvoiceView:
    def money(minor: int) -> Amount:
        return Amount.of(Money.of_minor(minor, invoice.currency))

    return InvoiceView(
        id=invoice.id,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        plan=invoice.plan,
        status=invoice.status,
        lines=[
            InvoiceLine(
                description=str(line["description"]),
                quantity=int(line["quantity"]),
                unit_price=money(int(line["unit_minor"])),
                amount=money(int(line["amount_minor"])),
            )
            for line in invoice.lines
        ],
        subtotal=money(invoice.subtotal_minor),
        deposit_used=money(invoice.deposit_used_minor),
        amount_due=money(invoice.amount_minor),
        issued_at=invoice.issued_at,
    )


def get_quota(staff: Staff) -> QuotaView:
    """This period's AI replies against the plan's quota, and whether the AI is suspended."""
    with tenant_session(staff.tenant_id) as session:
        tenant = _tenant(session, staff.tenant_id)
        subscription = account.locked(session, tenant)
        plan = tier(subscription.plan)
        period = account.period_containing(account.now(), tenant.timezone)
        used = account.used(session, tenant.id, period)
        suspended = subscription.suspended_at is not None and subscription.suspended_at >= period.start
        return QuotaView(
            plan=subscription.plan,
            period_start=period.start,
            period_end=period.end,
            included=plan.messages,
            used=used,
            remaining=max(0, plan.messages - used),
            overage_allowed=plan.overage_ceiling - plan.messages,
            overage_rate=Amount.of(plan.overage),
            deposit_balance=Amount.of(account.balance(session, tenant.id)),
            suspended=suspended,
            limits={"outlets": plan.outlets, "knowledge_bases": plan.knowledge_bases, "storage_mb": plan.storage_mb},
        )


def get_usage(staff: Staff) -> UsageView:
    """AI replies per period, newest first: included, overage and what the overage cost."""
    with tenant_session(staff.tenant_id) as session:
        counted = dict(
            session.execute(
                select(UsageRecord.period_start, UsageRecord.quantity).where(
                    UsageRecord.tenant_id == staff.tenant_id, UsageRecord.metric == account.AI_REPLIES
                )
            ).all()
        )
        overage = {
            row[0]: (int(row[1]), int(row[2]))
            for row in session.execute(
                select(
                    BillableMessage.period_start,
                    func.count().label("count"),
                    func.sum(BillableMessage.amount_minor).label("charged"),
                )
                .where(BillableMessage.tenant_id == staff.tenant_id, BillableMessage.kind == "overage")
                .group_by(BillableMessage.period_start)
            )
        }
    periods = []
    for start in sorted(counted, reverse=True)[:12]:
        over, charged = overage.get(start, (0, 0))
        total = int(counted[start])
        periods.append(
            UsagePeriod(
                period_start=start,
                ai_replies=total,
                included=total - over,
                overage=over,
                overage_charged=Amount.of(Money.of_minor(charged)),
            )
        )
    return UsageView(periods=periods)


def get_subscription(staff: Staff) -> SubscriptionView:
    """The plan, its price, the current period and a downgrade waiting for the next one."""
    with tenant_session(staff.tenant_id) as session:
        return _subscription_view(account.locked(session, _tenant(session, staff.tenant_id)))


def get_deposit(staff: Staff, query: PageQuery) -> DepositView:
    """The deposit's balance and its ledger, newest first."""
    with tenant_session(staff.tenant_id) as session:
        rows = deposits.entries(session, staff.tenant_id, decode_cursor(query.cursor), query.limit + 1)
        page = rows[: query.limit]
        return DepositView(
            balance=Amount.of(account.balance(session, staff.tenant_id)),
            entries=[_entry_view(e) for e in page],
            next_cursor=encode_cursor((page[-1].created_at, page[-1].id)) if len(rows) > query.limit else None,
        )


def list_invoices(staff: Staff, query: PageQuery) -> InvoiceList:
    """Invoices of closed periods, newest first."""
    with tenant_session(staff.tenant_id) as session:
        rows = invoices.listed(session, staff.tenant_id, decode_cursor(query.cursor), query.limit + 1)
    page = rows[: query.limit]
    cursor = encode_cursor((page[-1].created_at, page[-1].id)) if len(rows) > query.limit else None
    return InvoiceList(invoices=[_invoice_view(i) for i in page], next_cursor=cursor)


def _invoice(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> tuple[Invoice, Tenant]:
    with tenant_session(tenant_id) as session:
        invoice = session.get(Invoice, invoice_id)
        if invoice is None:
            raise ApiError(404, "no such invoice")
        return invoice, _tenant(session, tenant_id)


def get_invoice(staff: Staff, path: InvoicePath) -> InvoiceView:
    """One invoice as JSON."""
    return _invoice_view(_invoice(staff.tenant_id, path.invoice_id)[0])


def get_invoice_pdf(staff: Staff, path: InvoicePath) -> InvoiceView:
    """One invoice as a PDF (application/pdf); the JSON schema shown is the invoice's."""
    invoice, tenant = _invoice(staff.tenant_id, path.invoice_id)
    response = Response(invoices.pdf(invoice, tenant), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="invoice-{invoice.period_start:%Y-%m}.pdf"'
    return response  # type: ignore[return-value]


def change_subscription(operator: Operator, path: TenantPath, body: SubscriptionChange) -> SubscriptionChanged:
    """Operators: an upgrade applies at once, a downgrade at the next period."""
    del operator
    with tenant_session(path.tenant_id) as session:
        change = plans.change_plan(session, _tenant(session, path.tenant_id), body.plan)
        session.flush()
        return SubscriptionChanged(subscription=_subscription_view(change.subscription), applied=change.applied)


def record_topup(operator: Operator, path: TenantPath, body: TopUpBody) -> TopUpView:
    """Operators: record a deposit top-up, once per payment reference."""
    del operator
    with tenant_session(path.tenant_id) as session:
        tenant = _tenant(session, path.tenant_id)
        try:
            topup = deposits.record_topup(session, tenant, Money(body.amount, body.currency), body.reference, body.note)
        except deposits.ReferenceReused as error:
            raise ApiError(409, str(error)) from error
        session.flush()
        return TopUpView(
            entry=_entry_view(topup.entry),
            created=topup.created,
            balance=Amount.of(account.balance(session, tenant.id)),
            suspension_lifted=topup.lifted,
        )


PLATFORM_TENANT = "/api/v1/platform/tenants/<uuid:tenant_id>"
INVOICE = "/api/v1/billing/invoices/<uuid:invoice_id>"
api = StaffApi(
    "billing-api",
    "A tenant's quota, usage, subscription, deposit and invoices; operators change plans and record "
    f"top-ups. Plans, cheapest first: {', '.join(ORDER)}. Authenticate with a Firebase ID token.",
    [
        Route("GET", "/api/v1/billing/quota", get_quota, EVERY_ROLE),
        Route("GET", "/api/v1/billing/usage", get_usage, MANAGING_ROLES),
        Route("GET", "/api/v1/billing/subscription", get_subscription, MANAGING_ROLES),
        Route("GET", "/api/v1/billing/deposit", get_deposit, MANAGING_ROLES),
        Route("GET", "/api/v1/billing/invoices", list_invoices, MANAGING_ROLES),
        Route("GET", INVOICE, get_invoice, MANAGING_ROLES),
        Route("GET", f"{INVOICE}/pdf", get_invoice_pdf, MANAGING_ROLES),
        Route("PUT", f"{PLATFORM_TENANT}/subscription", change_subscription, OPERATORS, audit="subscription.change"),
        Route(
            "POST",
            f"{PLATFORM_TENANT}/deposits",
            record_topup,
            OPERATORS,
            status=201,
            errors=(409,),
            audit="deposit.topup",
        ),
    ],
    rate_limit=limits.requests_per_minute,
)
