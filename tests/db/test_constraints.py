"""Constraints the application relies on instead of checking in memory."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from shared.db.models import AuditLogEntry, Conversation, Customer, Message, Outlet
from shared.db.tenancy import tenant_session


def inbound(tenant, wa_message_id: str, outlet_id=None) -> Message:
    return Message(
        tenant_id=tenant.tenant_id,
        conversation_id=tenant.rows["conversations"],
        outlet_id=outlet_id or tenant.rows["outlets"],
        direction="inbound",
        sender_type="customer",
        wa_message_id=wa_message_id,
        type="text",
        body="hi",
        status="received",
    )


def test_webhook_redelivery_of_a_message_is_rejected(app_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        session.add(inbound(tenant_a, "wamid.same"))
    with (
        pytest.raises(IntegrityError, match="uq_messages_outlet_id_wa_message_id"),
        tenant_session(tenant_a.tenant_id, engine=app_engine) as session,
    ):
        session.add(inbound(tenant_a, "wamid.same"))


def test_same_wa_message_id_on_another_outlet_is_fine(app_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        other = Outlet(
            tenant_id=tenant_a.tenant_id,
            name="Second",
            waba_id="w",
            phone_number_id=f"{tenant_a.phone_number_id}-2",
            display_phone_number="+62",
        )
        session.add(other)
        session.flush()
        session.add_all([inbound(tenant_a, "wamid.both"), inbound(tenant_a, "wamid.both", other.id)])
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        assert session.scalar(select(func.count()).where(Message.wa_message_id == "wamid.both")) == 2


def conversation(tenant, status: str) -> Conversation:
    return Conversation(
        tenant_id=tenant.tenant_id,
        outlet_id=tenant.rows["outlets"],
        customer_id=tenant.rows["customers"],
        status=status,
    )


@pytest.mark.parametrize("status", ["active", "handed_off"])
def test_only_one_open_conversation_per_outlet_and_customer(app_engine, tenant_a, status) -> None:
    # The seeded conversation is active.
    with (
        pytest.raises(IntegrityError, match="uq_conversations_open_outlet_id_customer_id"),
        tenant_session(tenant_a.tenant_id, engine=app_engine) as session,
    ):
        session.add(conversation(tenant_a, status))


def test_new_conversation_opens_once_the_old_one_is_closed(app_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        session.execute(update(Conversation).values(status="resolved"))
        session.add_all([conversation(tenant_a, "expired"), conversation(tenant_a, "active")])
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        statuses = sorted(session.scalars(select(Conversation.status)))
    assert statuses == ["active", "expired", "resolved"]


def test_customer_identified_by_bsuid_alone_is_fine(app_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        session.add(Customer(tenant_id=tenant_a.tenant_id, bsuid="only-bsuid", parent_bsuid="parent"))
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        assert session.scalar(select(Customer.phone_number).where(Customer.bsuid == "only-bsuid")) is None


def test_customer_without_bsuid_or_phone_is_rejected(app_engine, tenant_a) -> None:
    with (
        pytest.raises(DBAPIError, match='violates check constraint "ck_customers_identified"'),
        tenant_session(tenant_a.tenant_id, engine=app_engine) as session,
    ):
        session.add(Customer(tenant_id=tenant_a.tenant_id, profile_name="anonymous"))


@pytest.mark.parametrize("field", ["bsuid", "phone_number"])
def test_customer_identity_is_unique_within_a_tenant_only(app_engine, tenant_a, tenant_b, field) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        session.add(Customer(tenant_id=tenant_a.tenant_id, **{field: "shared-identity"}))
    with tenant_session(tenant_b.tenant_id, engine=app_engine) as session:  # another tenant: fine
        session.add(Customer(tenant_id=tenant_b.tenant_id, **{field: "shared-identity"}))
    with (
        pytest.raises(IntegrityError, match=f"uq_customers_tenant_id_{field}"),
        tenant_session(tenant_a.tenant_id, engine=app_engine) as session,
    ):
        session.add(Customer(tenant_id=tenant_a.tenant_id, **{field: "shared-identity"}))


def test_only_customers_send_inbound_messages(app_engine, tenant_a) -> None:
    message = inbound(tenant_a, "wamid.llm")
    message.sender_type = "llm"
    with (
        pytest.raises(DBAPIError, match='violates check constraint "ck_messages_sender_direction"'),
        tenant_session(tenant_a.tenant_id, engine=app_engine) as session,
    ):
        session.add(message)


def test_unknown_status_is_rejected(app_engine, tenant_a) -> None:
    with (
        pytest.raises(DBAPIError, match='violates check constraint "ck_messages_status"'),
        tenant_session(tenant_a.tenant_id, engine=app_engine) as session,
    ):
        session.execute(update(Message).values(status="lost"))


def test_updated_at_follows_updates(app_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        before = session.scalar(select(Customer.updated_at))
    time.sleep(0.01)
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        session.execute(update(Customer).values(profile_name="renamed"))
        after, created = session.execute(select(Customer.updated_at, Customer.created_at)).one()
    assert after > before
    assert created == before


@pytest.mark.parametrize("table", ["audit_log", "deposit_ledger"])
@pytest.mark.parametrize("statement", ["UPDATE {} SET created_at = now()", "DELETE FROM {}"])
def test_append_only_tables_refuse_the_app_role(app_engine, tenant_a, table, statement) -> None:
    with (
        pytest.raises(DBAPIError, match=f"permission denied for table {table}"),
        tenant_session(tenant_a.tenant_id, engine=app_engine) as session,
    ):
        session.execute(text(statement.format(table)))


@pytest.mark.parametrize("table", ["audit_log", "deposit_ledger"])
@pytest.mark.parametrize("statement", ["UPDATE {} SET created_at = now()", "DELETE FROM {}", "TRUNCATE {}"])
def test_append_only_tables_refuse_even_the_owner(admin_engine, tenant_a, table, statement) -> None:
    with admin_engine.connect() as connection:
        connection.execute(text("SELECT set_config('app.current_tenant_id', :t, true)"), {"t": str(tenant_a.tenant_id)})
        assert connection.scalar(text(f"SELECT count(*) FROM {table}")) == 1  # noqa: S608 - fixed names
        with pytest.raises(DBAPIError, match=f"{table} is append-only"):
            connection.execute(text(statement.format(table)))


def test_audit_log_accepts_inserts(app_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        session.add(
            AuditLogEntry(
                tenant_id=tenant_a.tenant_id,
                actor_type="user",
                actor_id="u1",
                action="conversation.handoff",
                details={"reason": "asked for a human"},
            )
        )
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        assert session.scalar(select(func.count()).select_from(AuditLogEntry)) == 2
