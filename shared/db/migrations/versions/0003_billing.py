"""Tenants on their own: contacts, one subscription per tenant with its pending downgrade and
suspension, billable messages (the quota's idempotency keys), USD money and invoice lines.

Self-contained like 0001: the columns are spelled out here, not imported from the models.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

APP_ROLE = "crm_app"
CURRENT_TENANT = "nullif(current_setting('app.current_tenant_id', true), '')::uuid"
PLANS = "plan IN ('starter', 'growth', 'enterprise')"
PENDING_PLANS = "pending_plan IN ('starter', 'growth', 'enterprise')"


def upgrade() -> None:
    for column in ("contact_name", "contact_email", "contact_phone"):
        op.add_column("tenants", sa.Column(column, sa.Text(), nullable=True))

    op.add_column("subscriptions", sa.Column("pending_plan", sa.Text(), nullable=True))
    op.add_column("subscriptions", sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("subscriptions", sa.Column("quota_warned_period", sa.Date(), nullable=True))
    op.drop_index("ix_subscriptions_tenant_id", table_name="subscriptions")
    op.create_unique_constraint(op.f("uq_subscriptions_tenant_id"), "subscriptions", ["tenant_id"])
    op.create_check_constraint(op.f("ck_subscriptions_plan"), "subscriptions", PLANS)
    op.create_check_constraint(op.f("ck_subscriptions_pending_plan"), "subscriptions", PENDING_PLANS)

    op.alter_column("deposit_ledger", "currency", server_default="USD")
    op.add_column("deposit_ledger", sa.Column("note", sa.Text(), nullable=True))

    op.alter_column("invoices", "currency", server_default="USD")
    op.add_column("invoices", sa.Column("plan", sa.Text(), nullable=False))
    op.add_column(
        "invoices", sa.Column("lines", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False)
    )
    op.add_column("invoices", sa.Column("subtotal_minor", sa.BigInteger(), nullable=False))
    op.add_column(
        "invoices", sa.Column("deposit_used_minor", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
    )

    op.create_table(
        "billable_messages",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey("tenants.id", name="fk_billable_messages_tenant_id_tenants"),
            nullable=False,
        ),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("currency", sa.CHAR(3), server_default="USD", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_billable_messages"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_billable_messages_tenant_id_key"),
        sa.CheckConstraint("kind IN ('included', 'overage')", name=op.f("ck_billable_messages_kind")),
    )
    op.create_index("ix_billable_messages_tenant_id_period_start", "billable_messages", ["tenant_id", "period_start"])
    op.execute("ALTER TABLE billable_messages ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE billable_messages FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON billable_messages "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(f"GRANT SELECT, INSERT ON billable_messages TO {APP_ROLE}")
    op.execute(
        "CREATE TRIGGER reject_change BEFORE UPDATE OR DELETE ON billable_messages "
        "FOR EACH ROW EXECUTE FUNCTION reject_change()"
    )
    op.execute(
        "CREATE TRIGGER reject_truncate BEFORE TRUNCATE ON billable_messages "
        "FOR EACH STATEMENT EXECUTE FUNCTION reject_change()"
    )


def downgrade() -> None:
    op.drop_table("billable_messages")
    for column in ("deposit_used_minor", "subtotal_minor", "lines", "plan"):
        op.drop_column("invoices", column)
    op.alter_column("invoices", "currency", server_default="IDR")
    op.drop_column("deposit_ledger", "note")
    op.alter_column("deposit_ledger", "currency", server_default="IDR")
    op.drop_constraint(op.f("ck_subscriptions_pending_plan"), "subscriptions", type_="check")
    op.drop_constraint(op.f("ck_subscriptions_plan"), "subscriptions", type_="check")
    op.drop_constraint(op.f("uq_subscriptions_tenant_id"), "subscriptions", type_="unique")
    op.create_index("ix_subscriptions_tenant_id", "subscriptions", ["tenant_id"])
    for column in ("quota_warned_period", "suspended_at", "pending_plan"):
        op.drop_column("subscriptions", column)
    for column in ("contact_phone", "contact_email", "contact_name"):
        op.drop_column("tenants", column)
