"""Initial schema: tables, row-level security, grants, triggers and the platform functions.

Written by hand (tests/db/test_migrations.py checks it against shared/db/models.py) and
self-contained: a migration is a snapshot, so it does not import the models it once matched.

It runs as the owner role (crm_owner) and expects the roles that shared/db/bootstrap.py (or
Terraform) creates: crm_app, the application, and crm_platform, a NOLOGIN role that only
owns the SECURITY DEFINER functions and that crm_owner may SET ROLE to but does not inherit.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

APP_ROLE = "crm_app"
PLATFORM_ROLE = "crm_platform"

# Every table holds one tenant's rows; for `tenants` the tenant key is the row's own id.
TENANT_KEYS = {
    "tenants": "id",
    "outlets": "tenant_id",
    "users": "tenant_id",
    "customers": "tenant_id",
    "conversations": "tenant_id",
    "messages": "tenant_id",
    "subscriptions": "tenant_id",
    "usage_records": "tenant_id",
    "deposit_ledger": "tenant_id",
    "invoices": "tenant_id",
    "knowledge_bases": "tenant_id",
    "documents": "tenant_id",
    "audit_log": "tenant_id",
}
APPEND_ONLY = ("audit_log", "deposit_ledger")
WITHOUT_UPDATED_AT = APPEND_ONLY

CURRENT_TENANT = "nullif(current_setting('app.current_tenant_id', true), '')::uuid"

# The webhook router, sign-in and the scheduler need these facts across tenants, and nothing more.
PLATFORM_READS = {
    "tenants": "id, status",
    "outlets": "id, tenant_id, phone_number_id, status",
    "users": "id, tenant_id, firebase_uid, role, outlet_id",
}

PLATFORM_FUNCTIONS = {
    "platform_outlet_for_phone_number(text)": """
CREATE FUNCTION platform_outlet_for_phone_number(p_phone_number_id text)
RETURNS TABLE (tenant_id uuid, outlet_id uuid, tenant_status text, outlet_status text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT o.tenant_id, o.id, t.status, o.status
    FROM public.outlets AS o JOIN public.tenants AS t ON t.id = o.tenant_id
    WHERE o.phone_number_id = p_phone_number_id
$$""",
    "platform_user_for_firebase_uid(text)": """
CREATE FUNCTION platform_user_for_firebase_uid(p_firebase_uid text)
RETURNS TABLE (tenant_id uuid, user_id uuid, role text, outlet_id uuid, tenant_status text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT u.tenant_id, u.id, u.role, u.outlet_id, t.status
    FROM public.users AS u JOIN public.tenants AS t ON t.id = u.tenant_id
    WHERE u.firebase_uid = p_firebase_uid
$$""",
    "platform_tenant_ids(text)": """
CREATE FUNCTION platform_tenant_ids(p_status text DEFAULT NULL)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT id FROM public.tenants WHERE p_status IS NULL OR status = p_status ORDER BY id
$$""",
    # No policy lets the platform role write: the new row passes the ordinary tenant policy
    # because the function sets the new tenant's id for the insert, then restores the
    # caller's setting. (A SET clause would restore it too, but only a superuser may attach
    # a custom setting to a function.)
    "platform_create_tenant(text, text, text, text)": """
CREATE FUNCTION platform_create_tenant(
    p_name text, p_slug text, p_timezone text DEFAULT 'Asia/Jakarta', p_default_language text DEFAULT 'id'
)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_id uuid := gen_random_uuid();
    v_caller_tenant text := coalesce(current_setting('app.current_tenant_id', true), '');
BEGIN
    PERFORM set_config('app.current_tenant_id', v_id::text, true);
    INSERT INTO public.tenants (id, name, slug, timezone, default_language)
    VALUES (v_id, p_name, p_slug, p_timezone, p_default_language);
    PERFORM set_config('app.current_tenant_id', v_caller_tenant, true);
    RETURN v_id;
END
$$""",
}


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _tenant_id(table: str) -> sa.Column[object]:
    foreign_key = sa.ForeignKey("tenants.id", name=f"fk_{table}_tenant_id_tenants")
    return sa.Column("tenant_id", sa.Uuid(), foreign_key, nullable=False)


def _uuid(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Uuid(), nullable=nullable)


def _timestamp(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _now(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def _text(name: str, nullable: bool = False, default: str | None = None) -> sa.Column[object]:
    return sa.Column(name, sa.Text(), server_default=default, nullable=nullable)


def _count(name: str, type_: type[sa.Integer] = sa.Integer) -> sa.Column[object]:
    return sa.Column(name, type_(), server_default=sa.text("0"), nullable=False)


def _json_object(name: str) -> sa.Column[object]:
    return sa.Column(name, postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False)


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=f"pk_{table}")


def _unique(table: str, *columns: str) -> sa.UniqueConstraint:
    return sa.UniqueConstraint(*columns, name=f"uq_{table}_{'_'.join(columns)}")


# Check constraint names go through op.f(), which marks them final: alembic would otherwise
# pass them through the models' naming convention (ck_x becomes ck_table_ck_x).
def _one_of(table: str, column: str, *values: str) -> sa.CheckConstraint:
    listed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=op.f(f"ck_{table}_{column}"))


def _tenant_fk(table: str, column: str, parent: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    """(tenant_id, column) -> parent(tenant_id, id): a reference that cannot cross tenants."""
    return sa.ForeignKeyConstraint(
        ["tenant_id", column],
        [f"{parent}.tenant_id", f"{parent}.id"],
        name=f"fk_{table}_tenant_id_{column}_{parent}",
        ondelete=ondelete,
    )


def _create_tables() -> None:
    op.create_table(
        "tenants",
        _id(),
        _text("name"),
        _text("slug"),
        _text("status", default="active"),
        _text("timezone", default="Asia/Jakarta"),
        _text("default_language", default="id"),
        _json_object("settings"),
        _now("created_at"),
        _now("updated_at"),
        _pk("tenants"),
        _unique("tenants", "slug"),
        _one_of("tenants", "status", "active", "suspended"),
        sa.CheckConstraint(r"slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'", name=op.f("ck_tenants_slug")),
    )
    op.create_table(
        "outlets",
        _id(),
        _tenant_id("outlets"),
        _text("name"),
        _text("phone_number_id"),
        _text("display_phone_number"),
        _text("waba_id"),
        sa.Column("access_token_ciphertext", sa.LargeBinary(), nullable=True),
        _text("status", default="active"),
        _now("created_at"),
        _now("updated_at"),
        _pk("outlets"),
        _unique("outlets", "tenant_id", "id"),
        _unique("outlets", "phone_number_id"),
        _one_of("outlets", "status", "active", "disabled"),
    )
    op.create_table(
        "users",
        _id(),
        _tenant_id("users"),
        _text("firebase_uid"),
        _text("email"),
        _text("display_name", nullable=True),
        _text("role"),
        _uuid("outlet_id", nullable=True),
        _now("created_at"),
        _now("updated_at"),
        _pk("users"),
        _unique("users", "tenant_id", "id"),
        _unique("users", "firebase_uid"),
        _tenant_fk("users", "outlet_id", "outlets"),
        _one_of("users", "role", "owner", "admin", "agent", "viewer"),
    )
    op.create_table(
        "customers",
        _id(),
        _tenant_id("customers"),
        _text("bsuid", nullable=True),
        _text("parent_bsuid", nullable=True),
        _text("phone_number", nullable=True),
        _text("username", nullable=True),
        _text("profile_name", nullable=True),
        _now("created_at"),
        _now("updated_at"),
        _timestamp("last_seen_at"),
        _pk("customers"),
        _unique("customers", "tenant_id", "id"),
        sa.CheckConstraint("bsuid IS NOT NULL OR phone_number IS NOT NULL", name=op.f("ck_customers_identified")),
    )
    op.create_index(
        "uq_customers_tenant_id_bsuid",
        "customers",
        ["tenant_id", "bsuid"],
        unique=True,
        postgresql_where=sa.text("bsuid IS NOT NULL"),
    )
    op.create_index(
        "uq_customers_tenant_id_phone_number",
        "customers",
        ["tenant_id", "phone_number"],
        unique=True,
        postgresql_where=sa.text("phone_number IS NOT NULL"),
    )
    op.create_table(
        "conversations",
        _id(),
        _tenant_id("conversations"),
        _uuid("outlet_id"),
        _uuid("customer_id"),
        _text("status", default="active"),
        _text("handoff_reason", nullable=True),
        _timestamp("handed_off_at"),
        _uuid("assigned_user_id", nullable=True),
        _timestamp("resolved_at"),
        _timestamp("last_customer_message_at"),
        _timestamp("last_message_at"),
        _now("created_at"),
        _now("updated_at"),
        _pk("conversations"),
        _unique("conversations", "tenant_id", "id"),
        _tenant_fk("conversations", "outlet_id", "outlets"),
        _tenant_fk("conversations", "customer_id", "customers", ondelete="CASCADE"),
        _tenant_fk("conversations", "assigned_user_id", "users"),
        _one_of("conversations", "status", "active", "handed_off", "resolved", "expired"),
    )
    op.create_index(
        "uq_conversations_open_outlet_id_customer_id",
        "conversations",
        ["outlet_id", "customer_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('active', 'handed_off')"),
    )
    op.create_index(
        "ix_conversations_tenant_id_status_last_message_at",
        "conversations",
        ["tenant_id", "status", sa.text("last_message_at DESC")],
    )
    op.create_index("ix_conversations_customer_id", "conversations", ["customer_id"])
    op.create_table(
        "messages",
        _id(),
        _tenant_id("messages"),
        _uuid("conversation_id"),
        _uuid("outlet_id"),
        _text("direction"),
        _text("sender_type"),
        _text("wa_message_id", nullable=True),
        _text("type"),
        _text("body", nullable=True),
        _json_object("payload"),
        _text("status"),
        sa.Column("error_code", sa.Integer(), nullable=True),
        _text("error_title", nullable=True),
        sa.Column("confidence", sa.REAL(), nullable=True),
        _uuid("answers_up_to_message_id", nullable=True),
        _timestamp("customer_sent_at"),
        _timestamp("sent_at"),
        _timestamp("delivered_at"),
        _timestamp("read_at"),
        _timestamp("failed_at"),
        _now("created_at"),
        _now("updated_at"),
        _pk("messages"),
        _unique("messages", "tenant_id", "id"),
        _unique("messages", "outlet_id", "wa_message_id"),
        _tenant_fk("messages", "conversation_id", "conversations", ondelete="CASCADE"),
        _tenant_fk("messages", "outlet_id", "outlets"),
        _one_of("messages", "direction", "inbound", "outbound"),
        _one_of("messages", "sender_type", "customer", "llm", "agent", "system"),
        _one_of(
            "messages",
            "status",
            "received",
            "processing",
            "processed",
            "queued",
            "sending",
            "sent",
            "delivered",
            "read",
            "failed",
        ),
        sa.CheckConstraint(
            "(direction = 'inbound') = (sender_type = 'customer')", name=op.f("ck_messages_sender_direction")
        ),
    )
    op.create_index("ix_messages_conversation_id_created_at", "messages", ["conversation_id", "created_at"])
    op.create_index("ix_messages_wa_message_id", "messages", ["wa_message_id"])
    op.create_table(
        "subscriptions",
        _id(),
        _tenant_id("subscriptions"),
        _text("plan"),
        _text("status"),
        sa.Column("monthly_message_quota", sa.Integer(), nullable=False),
        _timestamp("current_period_start", nullable=False),
        _timestamp("current_period_end", nullable=False),
        _now("created_at"),
        _now("updated_at"),
        _pk("subscriptions"),
        _one_of("subscriptions", "status", "trialing", "active", "past_due", "canceled"),
    )
    op.create_index("ix_subscriptions_tenant_id", "subscriptions", ["tenant_id"])
    op.create_table(
        "usage_records",
        _id(),
        _tenant_id("usage_records"),
        sa.Column("period_start", sa.Date(), nullable=False),
        _text("metric"),
        _count("quantity", sa.BigInteger),
        _now("created_at"),
        _now("updated_at"),
        _pk("usage_records"),
        _unique("usage_records", "tenant_id", "period_start", "metric"),
    )
    op.create_table(
        "deposit_ledger",
        _id(),
        _tenant_id("deposit_ledger"),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.CHAR(3), server_default="IDR", nullable=False),
        _text("kind"),
        _text("reference"),
        _now("created_at"),
        _pk("deposit_ledger"),
        _unique("deposit_ledger", "tenant_id", "reference"),
        _one_of("deposit_ledger", "kind", "topup", "charge", "refund", "adjustment"),
    )
    op.create_table(
        "invoices",
        _id(),
        _tenant_id("invoices"),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.CHAR(3), server_default="IDR", nullable=False),
        _text("status", default="draft"),
        _timestamp("issued_at"),
        _now("created_at"),
        _now("updated_at"),
        _pk("invoices"),
        _unique("invoices", "tenant_id", "period_start"),
        _one_of("invoices", "status", "draft", "open", "paid", "void"),
    )
    op.create_table(
        "knowledge_bases",
        _id(),
        _tenant_id("knowledge_bases"),
        _uuid("outlet_id", nullable=True),
        _text("name"),
        _text("language", default="id"),
        _now("created_at"),
        _now("updated_at"),
        _pk("knowledge_bases"),
        _unique("knowledge_bases", "tenant_id", "id"),
        _tenant_fk("knowledge_bases", "outlet_id", "outlets"),
    )
    op.create_table(
        "documents",
        _id(),
        _tenant_id("documents"),
        _uuid("knowledge_base_id"),
        _text("bucket"),
        _text("object_name"),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        _text("content_type"),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        _text("sha256", nullable=True),
        _text("status", default="uploaded"),
        _text("error", nullable=True),
        _count("chunk_count"),
        _now("created_at"),
        _now("updated_at"),
        _pk("documents"),
        _unique("documents", "bucket", "object_name", "generation"),
        _tenant_fk("documents", "knowledge_base_id", "knowledge_bases", ondelete="CASCADE"),
        _one_of("documents", "status", "uploaded", "processing", "ready", "failed"),
    )
    op.create_index("ix_documents_tenant_id_knowledge_base_id", "documents", ["tenant_id", "knowledge_base_id"])
    op.create_table(
        "audit_log",
        _id(),
        _tenant_id("audit_log"),
        _text("actor_type"),
        _text("actor_id", nullable=True),
        _text("action"),
        _text("target_type", nullable=True),
        _text("target_id", nullable=True),
        _json_object("details"),
        _now("created_at"),
        _pk("audit_log"),
        _one_of("audit_log", "actor_type", "user", "system", "platform"),
    )
    op.create_index("ix_audit_log_tenant_id_created_at", "audit_log", ["tenant_id", "created_at"])


def _create_triggers() -> None:
    op.execute("""
CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$""")
    op.execute("""
CREATE FUNCTION reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP;
END
$$""")
    for table in TENANT_KEYS:
        if table not in WITHOUT_UPDATED_AT:
            op.execute(
                f"CREATE TRIGGER set_updated_at BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
            )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER reject_change BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION reject_change()"
        )
        op.execute(
            f"CREATE TRIGGER reject_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION reject_change()"
        )


def _enable_row_level_security() -> None:
    for table, key in TENANT_KEYS.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING ({key} = {CURRENT_TENANT}) WITH CHECK ({key} = {CURRENT_TENANT})"
        )
    for table in PLATFORM_READS:
        op.execute(f"CREATE POLICY platform_read ON {table} FOR SELECT TO {PLATFORM_ROLE} USING (true)")


def _grant() -> None:
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}, {PLATFORM_ROLE}")
    for table in TENANT_KEYS:
        privileges = "SELECT, INSERT" if table in APPEND_ONLY else "SELECT, INSERT, UPDATE, DELETE"
        op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")
    for table, columns in PLATFORM_READS.items():
        op.execute(f"GRANT SELECT ({columns}) ON {table} TO {PLATFORM_ROLE}")
    op.execute(f"GRANT INSERT (id, name, slug, timezone, default_language) ON tenants TO {PLATFORM_ROLE}")


def _create_platform_functions() -> None:
    for signature, definition in PLATFORM_FUNCTIONS.items():
        op.execute(definition)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")
    # A new owner needs CREATE on the schema; the platform role keeps none once it owns them.
    op.execute(f"GRANT CREATE ON SCHEMA public TO {PLATFORM_ROLE}")
    for signature in PLATFORM_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {signature} OWNER TO {PLATFORM_ROLE}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {PLATFORM_ROLE}")


def upgrade() -> None:
    _create_tables()
    _create_triggers()
    _enable_row_level_security()
    _grant()
    _create_platform_functions()


def downgrade() -> None:
    # Only their owner may drop the platform functions, and crm_owner does not inherit it.
    op.execute(f"SET LOCAL ROLE {PLATFORM_ROLE}")
    for signature in PLATFORM_FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    op.execute("RESET ROLE")
    for table in reversed(TENANT_KEYS):  # children first; policies, grants and triggers go along
        op.drop_table(table)
    op.execute("DROP FUNCTION reject_change()")
    op.execute("DROP FUNCTION set_updated_at()")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}, {PLATFORM_ROLE}")
