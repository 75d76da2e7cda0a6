"""Tenant A attacks tenant B's rows in every table, as crm_app, and gets nothing.

Each table is attacked by id, by tenant, and with a "forgotten WHERE"; writes that must be
refused are paired with the same write on A's own data, which must succeed, so a test
cannot pass merely because the statement was broken.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from shared.db.models import Base
from shared.db.tenancy import tenant_session

TABLES = sorted(Base.metadata.tables)
APPEND_ONLY = {"audit_log", "deposit_ledger", "billable_messages"}
WRITABLE = [name for name in TABLES if name not in APPEND_ONLY]
# A column per table that an attacker would like to overwrite, and the value they write.
MARKERS: dict[str, tuple[str, object]] = {
    "tenants": ("name", "pwned"),
    "outlets": ("name", "pwned"),
    "users": ("display_name", "pwned"),
    "customers": ("profile_name", "pwned"),
    "conversations": ("handoff_reason", "pwned"),
    "messages": ("body", "pwned"),
    "subscriptions": ("monthly_message_quota", 666),
    "usage_records": ("quantity", 666),
    "invoices": ("amount_minor", 666),
    "knowledge_bases": ("name", "pwned"),
    "documents": ("error", "pwned"),
}


def key(table: str) -> str:
    return "id" if table == "tenants" else "tenant_id"


def new_row(table: str, owner) -> dict[str, object]:
    """Values of a valid new row of `table` belonging to `owner`, referencing its parents."""
    unique = uuid.uuid4().hex[:10]
    rows, tenant_id = owner.rows, owner.tenant_id
    now = datetime.now(UTC)
    values: dict[str, dict[str, object]] = {
        "tenants": {"id": uuid.uuid4(), "name": "New", "slug": f"new-{unique}"},
        "outlets": {
            "name": "New",
            "phone_number_id": f"pn-{unique}",
            "display_phone_number": "+62",
            "waba_id": "waba",
        },
        "users": {
            "firebase_uid": f"fb-{unique}",
            "email": "new@example.com",
            "role": "viewer",
            "outlet_id": rows["outlets"],
        },
        "customers": {"bsuid": f"bsuid-{unique}"},
        "conversations": {
            "outlet_id": rows["outlets"],
            "customer_id": rows["customers"],
            "status": "resolved",
        },
        "messages": {
            "conversation_id": rows["conversations"],
            "outlet_id": rows["outlets"],
            "direction": "outbound",
            "sender_type": "llm",
            "type": "text",
            "status": "queued",
        },
        "subscriptions": {
            "plan": "enterprise",
            "status": "trialing",
            "monthly_message_quota": 10,
            "current_period_start": now,
            "current_period_end": now + timedelta(days=30),
        },
        "usage_records": {"period_start": date(2026, 2, 1), "metric": f"m-{unique}"},
        "deposit_ledger": {"amount_minor": -5, "kind": "charge", "reference": f"ref-{unique}"},
        "billable_messages": {"key": f"reply:{unique}", "period_start": date(2026, 2, 1), "kind": "overage"},
        "invoices": {
            "period_start": date(2000, 1, 1) + timedelta(days=uuid.uuid4().int % 9000),
            "period_end": date(2030, 1, 1),
            "plan": "starter",
            "subtotal_minor": 1,
            "amount_minor": 1,
        },
        "knowledge_bases": {"name": "New", "outlet_id": rows["outlets"]},
        "documents": {
            "knowledge_base_id": rows["knowledge_bases"],
            "bucket": "docs",
            "object_name": f"new-{unique}",
            "generation": 1,
            "content_type": "text/plain",
            "size_bytes": 1,
        },
        "audit_log": {"actor_type": "user", "action": "attack"},
    }
    row = values[table]
    if table != "tenants":
        row["tenant_id"] = tenant_id
    return row


def count_rows(engine: Engine, tenant_id: uuid.UUID, table: str) -> int:
    with tenant_session(tenant_id, engine=engine) as session:
        return session.scalar(select(func.count()).select_from(Base.metadata.tables[table])) or 0


def marker_of(engine: Engine, tenant, table: str) -> object:
    column, _ = MARKERS[table]
    t = Base.metadata.tables[table]
    with tenant_session(tenant.tenant_id, engine=engine) as session:
        return session.execute(select(t.c[column]).where(t.c.id == tenant.rows[table])).scalar_one()


def test_every_table_is_seeded_and_covered(tenant_a) -> None:
    assert set(tenant_a.rows) == set(TABLES)
    assert set(MARKERS) == set(WRITABLE)


@pytest.mark.parametrize("table", TABLES)
def test_select_sees_only_own_rows(app_engine, tenant_a, tenant_b, table) -> None:
    t = Base.metadata.tables[table]
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        tenants_seen = set(session.execute(select(t.c[key(table)])).scalars())
        by_id = session.execute(select(t).where(t.c.id == tenant_b.rows[table])).all()
        by_tenant = session.execute(select(t).where(t.c[key(table)] == tenant_b.tenant_id)).all()
    assert tenants_seen == {tenant_a.tenant_id}
    assert by_id == []
    assert by_tenant == []


def test_forgotten_where_select_returns_only_own_messages(app_engine, tenant_a, tenant_b) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        bodies = set(session.execute(text("SELECT body FROM messages")).scalars())
    assert bodies == {"hello from a"}


@pytest.mark.parametrize("table", WRITABLE)
def test_update_of_other_tenant_touches_nothing(app_engine, tenant_a, tenant_b, table) -> None:
    t = Base.metadata.tables[table]
    column, value = MARKERS[table]
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        change = update(t).values({column: value})
        by_id = session.execute(change.where(t.c.id == tenant_b.rows[table]))
        by_tenant = session.execute(change.where(t.c[key(table)] == tenant_b.tenant_id))
        own = session.execute(change.where(t.c.id == tenant_a.rows[table]))
    assert (by_id.rowcount, by_tenant.rowcount, own.rowcount) == (0, 0, 1)
    assert marker_of(app_engine, tenant_b, table) != value
    assert marker_of(app_engine, tenant_a, table) == value


@pytest.mark.parametrize("table", WRITABLE)
def test_forgotten_where_update_touches_only_own_rows(app_engine, tenant_a, tenant_b, table) -> None:
    t = Base.metadata.tables[table]
    column, value = MARKERS[table]
    own_rows = count_rows(app_engine, tenant_a.tenant_id, table)
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        result = session.execute(update(t).values({column: value}))
    assert result.rowcount == own_rows
    assert marker_of(app_engine, tenant_a, table) == value
    assert marker_of(app_engine, tenant_b, table) != value


def test_forgotten_where_raw_update_of_messages(app_engine, tenant_a, tenant_b) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        result = session.execute(text("UPDATE messages SET body = 'x'"))
    assert result.rowcount == 1
    assert marker_of(app_engine, tenant_b, "messages") == "hello from b"


@pytest.mark.parametrize("table", WRITABLE)
def test_delete_of_other_tenant_touches_nothing(app_engine, tenant_a, tenant_b, table) -> None:
    t = Base.metadata.tables[table]
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        by_id = session.execute(delete(t).where(t.c.id == tenant_b.rows[table]))
        by_tenant = session.execute(delete(t).where(t.c[key(table)] == tenant_b.tenant_id))
    assert (by_id.rowcount, by_tenant.rowcount) == (0, 0)
    assert count_rows(app_engine, tenant_b.tenant_id, table) == 1


# Tables nothing else references (customers cascades to conversations and messages).
@pytest.mark.parametrize("table", ["messages", "documents", "subscriptions", "usage_records", "invoices", "customers"])
def test_forgotten_where_delete_removes_only_own_rows(app_engine, tenant_a, tenant_b, table) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        result = session.execute(delete(Base.metadata.tables[table]))
    assert result.rowcount == 1
    assert count_rows(app_engine, tenant_a.tenant_id, table) == 0
    assert count_rows(app_engine, tenant_b.tenant_id, table) == 1
    if table == "customers":  # the cascade stayed inside tenant A too
        assert count_rows(app_engine, tenant_a.tenant_id, "messages") == 0
        assert count_rows(app_engine, tenant_b.tenant_id, "messages") == 1


@pytest.mark.parametrize("table", TABLES)
def test_insert_for_other_tenant_is_refused(app_engine, tenant_a, tenant_b, table) -> None:
    t = Base.metadata.tables[table]
    own = new_row(table, tenant_a)
    with tenant_session(own[key(table)], engine=app_engine) as session:  # the control: allowed
        if table == "subscriptions":
            session.execute(delete(t))  # one per tenant: the control replaces it
        session.execute(insert(t).values(own))

    foreign = new_row(table, tenant_b)
    foreign[key(table)] = tenant_b.tenant_id
    with (
        pytest.raises(DBAPIError, match="new row violates row-level security policy"),
        tenant_session(tenant_a.tenant_id, engine=app_engine) as session,
    ):
        session.execute(insert(t).values(foreign))
    assert count_rows(app_engine, tenant_b.tenant_id, table) == 1


@pytest.mark.parametrize("table", WRITABLE)
def test_update_cannot_move_a_row_to_another_tenant(app_engine, tenant_a, tenant_b, table) -> None:
    t = Base.metadata.tables[table]
    move = update(t).where(t.c.id == tenant_a.rows[table]).values({key(table): tenant_b.tenant_id})
    with (
        pytest.raises(DBAPIError, match="new row violates row-level security policy"),
        tenant_session(tenant_a.tenant_id, engine=app_engine) as session,
    ):
        session.execute(move)


@pytest.mark.parametrize("table", TABLES)
def test_without_tenant_nothing_is_visible_or_insertable(app_engine, tenant_a, table) -> None:
    t = Base.metadata.tables[table]
    with app_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(t)) == 0
        with pytest.raises(DBAPIError, match="row-level security"):
            connection.execute(insert(t).values(new_row(table, tenant_a)))


@pytest.mark.parametrize("table", TABLES)
def test_unknown_tenant_sees_nothing(app_engine, tenant_a, table) -> None:
    assert count_rows(app_engine, uuid.uuid4(), table) == 0


def test_owner_role_is_filtered_too(admin_engine, tenant_a) -> None:
    """FORCE ROW LEVEL SECURITY: connecting as the table owner by mistake does not leak."""
    with admin_engine.connect() as connection:
        counts = {
            name: connection.scalar(select(func.count()).select_from(Base.metadata.tables[name])) for name in TABLES
        }
    assert counts == dict.fromkeys(TABLES, 0)


def test_reference_to_another_tenants_row_is_refused(app_engine, tenant_a, tenant_b) -> None:
    """Composite foreign keys: A cannot attach B's customer to A's conversation by its UUID."""
    with (
        pytest.raises(DBAPIError, match="fk_conversations_tenant_id_customer_id_customers"),
        tenant_session(tenant_a.tenant_id, engine=app_engine) as session,
    ):
        session.execute(
            insert(Base.metadata.tables["conversations"]).values(
                tenant_id=tenant_a.tenant_id,
                outlet_id=tenant_a.rows["outlets"],
                customer_id=tenant_b.rows["customers"],
                status="resolved",
            )
        )
