"""The relational schema, as typed SQLAlchemy models.

Every table except `tenants` carries `tenant_id`, and the database itself (row-level
security, see migrations/versions/0001_initial.py) decides which rows a session sees: use
these models inside `shared.db.tenancy.tenant_session`, never with a bare session.

Enumerations are TEXT with CHECK constraints rather than PostgreSQL enums: adding a value
is then a one-line constraint swap instead of an `ALTER TYPE` that cannot run everywhere.
References between tenant-owned rows are composite foreign keys on (tenant_id, id), so a
row can never point at another tenant's row, even by a guessed UUID.

The migration is written by hand; tests/db/test_migrations.py proves it matches this file.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CHAR,
    REAL,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    FetchedValue,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names are part of the schema the migration creates: keep them deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TENANT_STATUSES = ("active", "suspended")
OUTLET_STATUSES = ("active", "disabled")
USER_ROLES = ("owner", "admin", "agent", "viewer")
CONVERSATION_STATUSES = ("active", "handed_off", "resolved", "expired")
OPEN_CONVERSATION_STATUSES = ("active", "handed_off")
# The one-open-conversation index's predicate, as literal SQL: an upsert naming it must spell
# it the same way, not with bound values (a prepared statement could not infer the index).
OPEN_CONVERSATION_PREDICATE = "status IN (" + ", ".join(f"'{s}'" for s in OPEN_CONVERSATION_STATUSES) + ")"
MESSAGE_DIRECTIONS = ("inbound", "outbound")
SENDER_TYPES = ("customer", "llm", "agent", "system")
MESSAGE_STATUSES = (
    "received",
    "processing",
    "processed",  # inbound
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",  # outbound
)
SUBSCRIPTION_STATUSES = ("trialing", "active", "past_due", "canceled")
PLANS = ("starter", "growth", "enterprise")  # their prices and limits: shared/billing/tiers.py
BILLABLE_KINDS = ("included", "overage")
LEDGER_KINDS = ("topup", "charge", "refund", "adjustment")
INVOICE_STATUSES = ("draft", "open", "paid", "void")
DOCUMENT_STATUSES = ("uploaded", "processing", "ready", "failed")
ACTOR_TYPES = ("user", "system", "platform")


def one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    """A CHECK that `column` holds one of `values`, named after the column."""
    listed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({listed})", name=column)


def _tenant_fk(parent: str, column: str, ondelete: str | None = None) -> ForeignKeyConstraint:
    """(tenant_id, column) -> parent(tenant_id, id): a reference that cannot cross tenants."""
    return ForeignKeyConstraint(["tenant_id", column], [f"{parent}.tenant_id", f"{parent}.id"], ondelete=ondelete)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        uuid.UUID: Uuid(),
        datetime: DateTime(timezone=True),
        date: Date(),
        str: Text(),
        int: Integer(),
        dict[str, Any]: JSONB(),
    }


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, server_default=func.gen_random_uuid())


def _tenant_id() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("tenants.id"))


def _created_at() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


def _updated_at() -> Mapped[datetime]:
    # Kept current by the set_updated_at trigger; FetchedValue tells the ORM to reload it.
    return mapped_column(server_default=func.now(), server_onupdate=FetchedValue())


def _json_object() -> Mapped[dict[str, Any]]:
    return mapped_column(server_default=text("'{}'::jsonb"))


class Tenant(Base):
    """A business. Its row is visible only to its own sessions (the policy key is `id`)."""

    __tablename__ = "tenants"
    __table_args__ = (
        one_of("status", TENANT_STATUSES),
        # Slugs appear in URLs and bucket paths: lowercase letters, digits and inner hyphens.
        CheckConstraint(r"slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'", name="slug"),
    )

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str]
    slug: Mapped[str] = mapped_column(unique=True)
    status: Mapped[str] = mapped_column(server_default="active")
    timezone: Mapped[str] = mapped_column(server_default="Asia/Jakarta")
    default_language: Mapped[str] = mapped_column(server_default="id")
    contact_name: Mapped[str | None]
    contact_email: Mapped[str | None]
    contact_phone: Mapped[str | None]
    # Per-tenant switches: extra handoff keywords, read receipts, typing indicator, fallback text.
    settings: Mapped[dict[str, Any]] = _json_object()
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class Outlet(Base):
    """One WhatsApp Business phone number of a tenant; `phone_number_id` routes webhooks."""

    __tablename__ = "outlets"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), one_of("status", OUTLET_STATUSES))

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    name: Mapped[str]
    phone_number_id: Mapped[str] = mapped_column(unique=True)
    display_phone_number: Mapped[str]
    waba_id: Mapped[str]
    access_token_ciphertext: Mapped[bytes | None]
    status: Mapped[str] = mapped_column(server_default="active")
    # {"knowledge_base_ids": [...]} narrows what the assistant answers from at this outlet.
    settings: Mapped[dict[str, Any]] = _json_object()
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class User(Base):
    """A staff member, signed in with Firebase; an agent may be scoped to one outlet."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        _tenant_fk("outlets", "outlet_id"),
        one_of("role", USER_ROLES),
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    firebase_uid: Mapped[str] = mapped_column(unique=True)
    email: Mapped[str]
    display_name: Mapped[str | None]
    role: Mapped[str]
    outlet_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class Customer(Base):
    """A WhatsApp user. Since 2026 WhatsApp may send only a business-scoped user id (BSUID)."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        CheckConstraint("bsuid IS NOT NULL OR phone_number IS NOT NULL", name="identified"),
        Index(
            "uq_customers_tenant_id_bsuid",
            "tenant_id",
            "bsuid",
            unique=True,
            postgresql_where=text("bsuid IS NOT NULL"),
        ),
        Index(
            "uq_customers_tenant_id_phone_number",
            "tenant_id",
            "phone_number",
            unique=True,
            postgresql_where=text("phone_number IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    bsuid: Mapped[str | None]
    parent_bsuid: Mapped[str | None]
    phone_number: Mapped[str | None]
    username: Mapped[str | None]
    profile_name: Mapped[str | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    last_seen_at: Mapped[datetime | None]


class Conversation(Base):
    """A thread between a customer and an outlet; at most one open per outlet and customer."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        _tenant_fk("outlets", "outlet_id"),
        _tenant_fk("customers", "customer_id", ondelete="CASCADE"),  # erasure takes the history
        _tenant_fk("users", "assigned_user_id"),
        one_of("status", CONVERSATION_STATUSES),
        Index(
            "uq_conversations_open_outlet_id_customer_id",
            "outlet_id",
            "customer_id",
            unique=True,
            postgresql_where=text(OPEN_CONVERSATION_PREDICATE),
        ),
        Index(
            "ix_conversations_tenant_id_status_last_message_at",
            "tenant_id",
            "status",
            text("last_message_at DESC"),
        ),
        Index("ix_conversations_customer_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    outlet_id: Mapped[uuid.UUID]
    customer_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(server_default="active")
    handoff_reason: Mapped[str | None]
    handed_off_at: Mapped[datetime | None]
    assigned_user_id: Mapped[uuid.UUID | None]
    resolved_at: Mapped[datetime | None]
    # Who is writing the AI's reply: a token and a lease, held while no transaction is open.
    reply_claim: Mapped[uuid.UUID | None]
    reply_claim_until: Mapped[datetime | None]
    # Start of WhatsApp's 24-hour customer-service window.
    last_customer_message_at: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class Message(Base):
    """One WhatsApp message in or out; (outlet_id, wa_message_id) dedupes webhook redeliveries."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("outlet_id", "wa_message_id"),
        _tenant_fk("conversations", "conversation_id", ondelete="CASCADE"),
        _tenant_fk("outlets", "outlet_id"),
        one_of("direction", MESSAGE_DIRECTIONS),
        one_of("sender_type", SENDER_TYPES),
        one_of("status", MESSAGE_STATUSES),
        # Customers send inbound messages and nothing else does.
        CheckConstraint("(direction = 'inbound') = (sender_type = 'customer')", name="sender_direction"),
        Index("ix_messages_conversation_id_created_at", "conversation_id", "created_at"),
        Index("ix_messages_wa_message_id", "wa_message_id"),
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    conversation_id: Mapped[uuid.UUID]
    outlet_id: Mapped[uuid.UUID]
    direction: Mapped[str]
    sender_type: Mapped[str]
    wa_message_id: Mapped[str | None]
    type: Mapped[str]  # text, image, audio, ..., unsupported
    body: Mapped[str | None]
    payload: Mapped[dict[str, Any]] = _json_object()
    status: Mapped[str]
    error_code: Mapped[int | None]
    error_title: Mapped[str | None]
    confidence: Mapped[float | None] = mapped_column(REAL)
    # For an outbound reply: the last inbound message it answers.
    answers_up_to_message_id: Mapped[uuid.UUID | None]
    llm_model: Mapped[str | None]
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    llm_cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    customer_sent_at: Mapped[datetime | None]  # WhatsApp's timestamp of an inbound message
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class Subscription(Base):
    """A tenant's one plan and monthly message quota; a downgrade waits in `pending_plan` for
    the next period. `suspended_at` is set while the AI may not reply (quota and deposit spent)."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("tenant_id"),
        one_of("status", SUBSCRIPTION_STATUSES),
        one_of("plan", PLANS),
        one_of("pending_plan", PLANS),
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    plan: Mapped[str]
    status: Mapped[str]
    monthly_message_quota: Mapped[int]
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime]
    pending_plan: Mapped[str | None]
    suspended_at: Mapped[datetime | None]
    quota_warned_period: Mapped[date | None]  # billing.quota.warning went out for this period
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class UsageRecord(Base):
    """A counter per tenant, period and metric, bumped with INSERT ... ON CONFLICT DO UPDATE."""

    __tablename__ = "usage_records"
    __table_args__ = (UniqueConstraint("tenant_id", "period_start", "metric"),)

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    period_start: Mapped[date]
    metric: Mapped[str]
    quantity: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class DepositLedgerEntry(Base):
    """Append-only money movements; the balance is SUM(amount_minor) (signed, minor units)."""

    __tablename__ = "deposit_ledger"
    __table_args__ = (UniqueConstraint("tenant_id", "reference"), one_of("kind", LEDGER_KINDS))

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3), server_default="USD")
    kind: Mapped[str]
    reference: Mapped[str]  # idempotency key: a payment id, a billed message, ...
    note: Mapped[str | None]
    created_at: Mapped[datetime] = _created_at()


class BillableMessage(Base):
    """One AI reply counted against the quota, keyed by the customer message it answers, so a
    redelivered or retried reply is never counted or charged twice. Append-only."""

    __tablename__ = "billable_messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key"),
        one_of("kind", BILLABLE_KINDS),
        Index("ix_billable_messages_tenant_id_period_start", "tenant_id", "period_start"),
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    key: Mapped[str]
    period_start: Mapped[date]
    kind: Mapped[str]
    amount_minor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))  # charged to the deposit
    currency: Mapped[str] = mapped_column(CHAR(3), server_default="USD")
    created_at: Mapped[datetime] = _created_at()


class Invoice(Base):
    """A closed period's bill: `lines` (base price, overage), `subtotal_minor`, what the deposit
    already paid, and `amount_minor` still due. One per tenant and period."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("tenant_id", "period_start"), one_of("status", INVOICE_STATUSES))

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    period_start: Mapped[date]
    period_end: Mapped[date]
    plan: Mapped[str]
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB(), server_default=text("'[]'::jsonb"))
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    deposit_used_minor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3), server_default="USD")
    status: Mapped[str] = mapped_column(server_default="draft")
    issued_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class KnowledgeBase(Base):
    """A set of documents the AI answers from: tenant-wide, or for one outlet."""

    __tablename__ = "knowledge_bases"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        _tenant_fk("outlets", "outlet_id"),
        CheckConstraint("chunk_size BETWEEN 100 AND 4000", name="chunk_size"),
        CheckConstraint("chunk_overlap >= 0 AND chunk_overlap < chunk_size", name="chunk_overlap"),
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    outlet_id: Mapped[uuid.UUID | None]
    name: Mapped[str]
    description: Mapped[str | None]
    language: Mapped[str] = mapped_column(server_default="id")
    chunk_size: Mapped[int] = mapped_column(server_default=text("500"))
    chunk_overlap: Mapped[int] = mapped_column(server_default=text("50"))
    # The embedding model its vectors were made with; a different one configured re-indexes.
    embedding_model: Mapped[str | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class Document(Base):
    """An uploaded file (one Cloud Storage object generation) and its ingestion state."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("bucket", "object_name", "generation"),
        _tenant_fk("knowledge_bases", "knowledge_base_id", ondelete="CASCADE"),
        one_of("status", DOCUMENT_STATUSES),
        Index("ix_documents_tenant_id_knowledge_base_id", "tenant_id", "knowledge_base_id"),
        Index(
            "ix_documents_processing_deadline",
            "processing_deadline",
            postgresql_where=text("status = 'processing'"),
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    knowledge_base_id: Mapped[uuid.UUID]
    bucket: Mapped[str]
    object_name: Mapped[str]
    generation: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None]
    file_name: Mapped[str] = mapped_column(server_default="")
    status: Mapped[str] = mapped_column(server_default="uploaded")
    error: Mapped[str | None]
    chunk_count: Mapped[int] = mapped_column(server_default=text("0"))
    pages: Mapped[int | None]
    rows: Mapped[int | None]
    embedding_model: Mapped[str | None]
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    # A processing attempt past this is over: retried (bounded) or failed by the sweep.
    processing_deadline: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class AuditLogEntry(Base):
    """Who did what. Append-only: a trigger rejects UPDATE and DELETE, even by the owner."""

    __tablename__ = "audit_log"
    __table_args__ = (
        one_of("actor_type", ACTOR_TYPES),
        Index("ix_audit_log_tenant_id_created_at", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_id()
    actor_type: Mapped[str]
    actor_id: Mapped[str | None]
    action: Mapped[str]
    target_type: Mapped[str | None]
    target_id: Mapped[str | None]
    details: Mapped[dict[str, Any]] = _json_object()
    created_at: Mapped[datetime] = _created_at()
