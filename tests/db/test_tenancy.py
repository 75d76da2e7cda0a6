"""tenant_session: one transaction, a bound tenant id, and nothing left on pooled connections."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError, InvalidRequestError

from shared.db.engine import engine_for_url
from shared.db.models import Customer, Message
from shared.db.tenancy import tenant_session

CURRENT = text("SELECT current_setting('app.current_tenant_id', true)")


@pytest.fixture
def one_connection_engine(db_urls):
    """A pool of exactly one connection, so every checkout reuses the same server session."""
    engine = engine_for_url(db_urls.app_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def test_tenant_setting_does_not_leak_to_next_checkout(one_connection_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=one_connection_engine) as session:
        backend = session.scalar(text("SELECT pg_backend_pid()"))
        assert session.scalar(CURRENT) == str(tenant_a.tenant_id)
        assert session.scalar(select(func.count()).select_from(Message)) == 1

    with one_connection_engine.connect() as connection:
        assert connection.scalar(text("SELECT pg_backend_pid()")) == backend  # the same pooled session
        assert connection.scalar(CURRENT) in ("", None)
        assert connection.scalar(select(func.count()).select_from(Message)) == 0


def failing_request(engine, tenant_id: uuid.UUID, customer: Customer | None = None) -> None:
    with tenant_session(tenant_id, engine=engine) as session:
        if customer is not None:
            session.add(customer)
        session.flush()
        session.scalar(text("SELECT 1"))
        raise RuntimeError("the request failed after its writes")


def test_tenant_setting_does_not_leak_after_an_error(one_connection_engine, tenant_a) -> None:
    with pytest.raises(RuntimeError):
        failing_request(one_connection_engine, tenant_a.tenant_id)
    with one_connection_engine.connect() as connection:
        assert connection.scalar(CURRENT) in ("", None)
        assert connection.scalar(select(func.count()).select_from(Message)) == 0


def test_commits_on_success_and_rolls_back_on_error(app_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        session.add(Customer(tenant_id=tenant_a.tenant_id, bsuid="kept"))
    discarded = Customer(tenant_id=tenant_a.tenant_id, bsuid="discarded")
    with pytest.raises(RuntimeError):
        failing_request(app_engine, tenant_a.tenant_id, discarded)
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        bsuids = set(session.scalars(select(Customer.bsuid)))
    assert {"kept"} <= bsuids
    assert "discarded" not in bsuids


def test_no_second_transaction_after_an_explicit_commit(app_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        session.commit()
        with pytest.raises(InvalidRequestError, match="closed transaction"):
            session.scalar(CURRENT)


def test_objects_stay_readable_after_the_block(app_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        customer = Customer(tenant_id=tenant_a.tenant_id, phone_number="+62812")
        session.add(customer)
    assert isinstance(customer.id, uuid.UUID)
    assert customer.created_at is not None


def test_tenant_id_is_sent_as_a_bound_parameter(app_engine, tenant_a) -> None:
    statements: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
        statements.append((statement, parameters))

    event.listen(app_engine, "before_cursor_execute", record)
    try:
        with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
            session.scalar(text("SELECT 1"))
    finally:
        event.remove(app_engine, "before_cursor_execute", record)
    set_config = [(s, p) for s, p in statements if "set_config" in s]
    assert len(set_config) == 1
    statement, parameters = set_config[0]
    assert str(tenant_a.tenant_id) not in statement
    assert str(tenant_a.tenant_id) in str(parameters)


@pytest.mark.parametrize("tenant_id", ["not-a-uuid", None, 42])
def test_tenant_session_rejects_anything_but_a_uuid(app_engine, tenant_id) -> None:
    with pytest.raises(TypeError), tenant_session(tenant_id, engine=app_engine):
        pass


@pytest.mark.parametrize(
    "payload",
    [
        "' OR '1'='1",
        "{a}') OR true --",
        "{a}', false); SELECT set_config('app.current_tenant_id', '{b}', false); --",
        "{a},{b}",
        "{a} OR tenant_id IS NOT NULL",
    ],
)
def test_injected_tenant_value_errors_and_shows_nothing(app_engine, tenant_a, tenant_b, payload) -> None:
    """Even a raw connection that binds an attacker's string gets a cast error, not rows."""
    value = payload.format(a=tenant_a.tenant_id, b=tenant_b.tenant_id)
    with app_engine.connect() as connection:
        connection.execute(text("SELECT set_config('app.current_tenant_id', :tenant_id, true)"), {"tenant_id": value})
        assert connection.scalar(CURRENT) == value  # stored verbatim: it was data, never SQL
        with pytest.raises(DBAPIError, match="invalid input syntax for type uuid"):
            connection.execute(text("SELECT body FROM messages")).all()
