"""A fresh, migrated database per test session, its two roles' engines, and seeded tenants.

Tests connect as crm_app (`app_engine`), the role the application uses, so every assertion
about isolation is one the database itself enforces, not the test's own SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from shared.db.bootstrap import DatabaseUrls, prepare_database
from shared.db.engine import engine_for_url, normalize_url
from shared.db.models import (
    AuditLogEntry,
    BillableMessage,
    Conversation,
    Customer,
    DepositLedgerEntry,
    Document,
    Invoice,
    KnowledgeBase,
    Message,
    Outlet,
    Subscription,
    UsageRecord,
    User,
)
from shared.db.platform import create_tenant
from shared.db.tenancy import tenant_session

# Awkward on purpose: quoting of role passwords must survive quotes, % and colons.
APP_PASSWORD = "app 'pw' %s :x"
OWNER_PASSWORD = 'owner "pw" %% :y'


def drop_database(superuser_url: str, name: str) -> None:
    engine = create_engine(normalize_url(superuser_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        quoted = connection.execute(text("SELECT quote_ident(:name)"), {"name": name}).scalar_one()
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    engine.dispose()


@pytest.fixture(scope="session")
def db_urls(postgres_superuser_url: str) -> Iterator[DatabaseUrls]:
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    yield prepare_database(postgres_superuser_url, name, APP_PASSWORD, OWNER_PASSWORD)
    drop_database(postgres_superuser_url, name)


@pytest.fixture
def scratch_database(postgres_superuser_url: str) -> Iterator[str]:
    """The name of a database a test may create; dropped afterwards if it did."""
    name = f"crm_scratch_{uuid.uuid4().hex[:12]}"
    yield name
    drop_database(postgres_superuser_url, name)


@pytest.fixture(scope="session")
def app_engine(db_urls: DatabaseUrls) -> Iterator[Engine]:
    engine = engine_for_url(db_urls.app_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def admin_engine(db_urls: DatabaseUrls) -> Iterator[Engine]:
    engine = engine_for_url(db_urls.admin_url)
    yield engine
    engine.dispose()


@dataclass
class TenantData:
    """A tenant with one row in every table; `rows` maps table name to that row's id."""

    tenant_id: uuid.UUID
    rows: dict[str, uuid.UUID] = field(default_factory=dict)
    phone_number_id: str = ""
    firebase_uid: str = ""


def seed_tenant(engine: Engine, label: str) -> TenantData:
    """Create a tenant through the platform path, then fill it through its own session."""
    unique = uuid.uuid4().hex[:10]
    tenant_id = create_tenant(f"Tenant {label}", f"{label}-{unique}", engine=engine)
    data = TenantData(tenant_id, {"tenants": tenant_id}, f"pn-{unique}", f"fb-{unique}")
    now = datetime.now(UTC)
    with tenant_session(tenant_id, engine=engine) as session:

        def add(table: str, row: object) -> None:
            session.add(row)
            session.flush()
            data.rows[table] = row.id  # type: ignore[attr-defined]

        add(
            "outlets",
            Outlet(
                tenant_id=tenant_id,
                name=f"Outlet {label}",
                phone_number_id=data.phone_number_id,
                display_phone_number="+62 811 0000",
                waba_id=f"waba-{unique}",
                access_token_ciphertext=b"secret-" + label.encode(),
            ),
        )
        outlet_id = data.rows["outlets"]
        add(
            "users",
            User(
                tenant_id=tenant_id,
                firebase_uid=data.firebase_uid,
                email=f"{unique}@example.com",
                display_name=f"Agent {label}",
                role="agent",
                outlet_id=outlet_id,
            ),
        )
        add(
            "customers",
            Customer(
                tenant_id=tenant_id,
                bsuid=f"bsuid-{unique}",
                phone_number="+628111111",
                profile_name=f"Customer {label}",
            ),
        )
        add(
            "conversations",
            Conversation(
                tenant_id=tenant_id,
                outlet_id=outlet_id,
                customer_id=data.rows["customers"],
                assigned_user_id=data.rows["users"],
                handoff_reason=f"reason {label}",
                last_message_at=now,
            ),
        )
        add(
            "messages",
            Message(
                tenant_id=tenant_id,
                conversation_id=data.rows["conversations"],
                outlet_id=outlet_id,
                direction="inbound",
                sender_type="customer",
                wa_message_id=f"wamid.{unique}",
                type="text",
                body=f"hello from {label}",
                status="received",
                customer_sent_at=now,
            ),
        )
        add(
            "subscriptions",
            Subscription(
                tenant_id=tenant_id,
                plan="growth",
                status="active",
                monthly_message_quota=1000,
                current_period_start=now,
                current_period_end=now + timedelta(days=30),
            ),
        )
        add(
            "usage_records",
            UsageRecord(tenant_id=tenant_id, period_start=date(2026, 1, 1), metric="messages", quantity=7),
        )
        add(
            "deposit_ledger",
            DepositLedgerEntry(tenant_id=tenant_id, amount_minor=100_000, kind="topup", reference=f"topup-{unique}"),
        )
        add(
            "invoices",
            Invoice(
                tenant_id=tenant_id,
                period_start=date(2026, 1, 1),
                period_end=date(2026, 1, 31),
                plan="growth",
                subtotal_minor=50_000,
                amount_minor=50_000,
            ),
        )
        add(
            "billable_messages",
            BillableMessage(tenant_id=tenant_id, key=f"reply:{unique}", period_start=date(2026, 1, 1), kind="included"),
        )
        add("knowledge_bases", KnowledgeBase(tenant_id=tenant_id, name=f"KB {label}"))
        add(
            "documents",
            Document(
                tenant_id=tenant_id,
                knowledge_base_id=data.rows["knowledge_bases"],
                bucket="docs",
                object_name=f"{unique}/menu.pdf",
                generation=1,
                content_type="application/pdf",
                size_bytes=1234,
            ),
        )
        add("audit_log", AuditLogEntry(tenant_id=tenant_id, actor_type="system", action="tenant.seeded"))
    return data


@pytest.fixture
def tenant_factory(app_engine: Engine) -> Callable[[str], TenantData]:
    return lambda label: seed_tenant(app_engine, label)


@pytest.fixture
def tenant_a(tenant_factory: Callable[[str], TenantData]) -> TenantData:
    return tenant_factory("a")


@pytest.fixture
def tenant_b(tenant_factory: Callable[[str], TenantData]) -> TenantData:
    return tenant_factory("b")
