"""Closing billing periods: each closed month gets one invoice (its plan's price, the overage
lines, what the deposit already paid), then the subscription moves to the next month.

`close_periods` is the scheduled billing-period-close job. Run twice, or by two instances at
once, it writes one invoice per period: the subscription row is locked while a tenant's
periods close, and the invoice's (tenant, period) is unique.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fpdf import FPDF
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.billing import account, plans
from shared.billing.tiers import CURRENCY, Money, tier
from shared.db import paging, platform
from shared.db.models import BillableMessage, Invoice, Subscription, Tenant
from shared.db.tenancy import tenant_session

log = logging.getLogger(__name__)


def close_periods(at: datetime | None = None) -> list[uuid.UUID]:
    """Invoice every period that ended by `at` (now), for every tenant; the new invoices' ids."""
    moment = at or account.now()
    written: list[uuid.UUID] = []
    for tenant_id in platform.tenant_ids():
        with tenant_session(tenant_id) as session:
            tenant = session.get_one(Tenant, tenant_id)
            subscription = account.locked(session, tenant)
            while subscription.current_period_end <= moment:
                zone = ZoneInfo(tenant.timezone)
                period = account.Period(
                    subscription.current_period_start.astimezone(zone), subscription.current_period_end.astimezone(zone)
                )
                invoice_id = _write(session, tenant, subscription, period)
                if invoice_id is not None:
                    written.append(invoice_id)
                plans.start_next_period(
                    subscription, account.period_containing(subscription.current_period_end, tenant.timezone)
                )
                session.flush()
    if written:
        log.info("invoices written", extra={"invoices": len(written)})
    return written


def _write(session: Session, tenant: Tenant, subscription: Subscription, period: account.Period) -> uuid.UUID | None:
    plan = tier(subscription.plan)
    overage_count, overage_minor = session.execute(
        select(func.count(), func.coalesce(func.sum(BillableMessage.amount_minor), 0)).where(
            BillableMessage.tenant_id == tenant.id,
            BillableMessage.period_start == period.key,
            BillableMessage.kind == "overage",
        )
    ).one()
    month = f"{period.start:%B %Y}"
    lines: list[dict[str, Any]] = [
        {
            "description": f"{plan.name.capitalize()} plan, {month}",
            "quantity": 1,
            "unit_minor": plan.price.minor,
            "amount_minor": plan.price.minor,
        }
    ]
    if overage_count:
        lines.append(
            {
                "description": f"AI replies over the {plan.messages:,}-message quota, paid from the deposit",
                "quantity": int(overage_count),
                "unit_minor": plan.overage.minor,
                "amount_minor": int(overage_minor),
            }
        )
    subtotal = sum(int(line["amount_minor"]) for line in lines)
    return session.execute(
        insert(Invoice)
        .values(
            tenant_id=tenant.id,
            period_start=period.key,
            period_end=period.end.date(),
            plan=plan.name,
            lines=lines,
            subtotal_minor=subtotal,
            deposit_used_minor=int(overage_minor),
            amount_minor=subtotal - int(overage_minor),
            currency=CURRENCY,
            status="open",
            issued_at=func.now(),
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "period_start"])
        .returning(Invoice.id)
    ).scalar_one_or_none()


def listed(
    session: Session, tenant_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Invoice]:
    query = select(Invoice).where(Invoice.tenant_id == tenant_id)
    return paging.newest_first(session, query, Invoice.created_at, Invoice.id, after, limit)


def pdf(invoice: Invoice, tenant: Tenant) -> bytes:
    """The invoice as a one-page PDF (Helvetica: the amounts and names are Latin-1)."""
    document = FPDF(format="A4")
    document.set_title(f"Invoice {invoice.id}")
    document.add_page()
    document.set_font("Helvetica", "B", 18)
    document.cell(0, 12, "Invoice", new_x="LMARGIN", new_y="NEXT")
    document.set_font("Helvetica", size=11)
    for label, value in (
        ("Invoice", str(invoice.id)),
        ("Billed to", _latin(tenant.name)),
        ("Period", f"{invoice.period_start.isoformat()} to {invoice.period_end.isoformat()}"),
        ("Plan", invoice.plan),
        ("Status", invoice.status),
    ):
        document.cell(0, 7, f"{label}: {value}", new_x="LMARGIN", new_y="NEXT")
    document.ln(4)
    document.set_font("Helvetica", "B", 11)
    widths = (110, 20, 30, 30)
    for width, heading in zip(widths, ("Description", "Qty", "Unit", "Amount"), strict=True):
        document.cell(width, 8, heading, border="B")
    document.ln()
    document.set_font("Helvetica", size=11)
    for line in invoice.lines:
        cells = (
            _latin(str(line["description"])),
            str(line["quantity"]),
            str(Money.of_minor(int(line["unit_minor"]), invoice.currency)),
            str(Money.of_minor(int(line["amount_minor"]), invoice.currency)),
        )
        for width, value in zip(widths, cells, strict=True):
            document.cell(width, 8, value)
        document.ln()
    document.ln(2)
    for label, minor in (
        ("Subtotal", invoice.subtotal_minor),
        ("Paid from deposit", -invoice.deposit_used_minor),
        ("Amount due", invoice.amount_minor),
    ):
        document.cell(160, 8, label, align="R")
        document.cell(30, 8, str(Money.of_minor(minor, invoice.currency)))
        document.ln()
    return bytes(document.output())


def _latin(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")
