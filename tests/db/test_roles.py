"""crm_app tries to switch row-level security off, become another role, or change the schema."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db.tenancy import tenant_session

ESCAPES = [
    ("ALTER TABLE messages DISABLE ROW LEVEL SECURITY", "must be owner"),
    ("ALTER TABLE messages NO FORCE ROW LEVEL SECURITY", "must be owner"),
    ("DROP POLICY tenant_isolation ON messages", "must be owner"),
    ("CREATE POLICY open_door ON messages USING (true)", "must be owner"),
    ("ALTER TABLE audit_log DISABLE TRIGGER reject_change", "must be owner"),
    ("SET ROLE crm_owner", "permission denied to set role"),
    ("SET ROLE crm_platform", "permission denied to set role"),
    ("SET SESSION AUTHORIZATION crm_owner", "permission denied to set session authorization"),
    ("ALTER ROLE crm_app BYPASSRLS", "permission denied"),
    ("CREATE TABLE stash (id int)", "permission denied for schema public"),
    ("CREATE TEMPORARY TABLE stash (id int)", "permission denied to create temporary tables"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "permission denied for schema public"),
    ("TRUNCATE messages", "permission denied for table messages"),
    ("SELECT * FROM alembic_version", "permission denied for table alembic_version"),
]


@pytest.mark.parametrize(("statement", "error"), ESCAPES, ids=[s for s, _ in ESCAPES])
def test_app_role_cannot_escape(app_engine, tenant_a, statement, error) -> None:
    with (
        pytest.raises(DBAPIError, match=error),
        tenant_session(tenant_a.tenant_id, engine=app_engine) as session,
    ):
        session.execute(text(statement))


def test_row_security_off_is_an_error_not_a_bypass(app_engine, tenant_a, tenant_b) -> None:
    with app_engine.connect() as connection:
        connection.execute(text("SET row_security = off"))
        with pytest.raises(DBAPIError, match="query would be affected by row-level security policy"):
            connection.execute(text("SELECT count(*) FROM messages"))


def test_roles_have_no_bypass_attributes(admin_engine) -> None:
    with admin_engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin FROM pg_roles "
                "WHERE rolname IN ('crm_owner', 'crm_app', 'crm_platform') ORDER BY rolname"
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("crm_app", False, False, False, False, True),
        ("crm_owner", False, False, False, False, True),
        ("crm_platform", False, False, False, False, False),
    ]


def test_app_role_privileges_are_dml_only(admin_engine) -> None:
    with admin_engine.connect() as connection:
        granted = dict(
            connection.execute(
                text(
                    "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
                    "FROM information_schema.role_table_grants WHERE grantee = 'crm_app' GROUP BY table_name"
                )
            ).all()
        )
    assert granted.pop("audit_log") == "INSERT,SELECT"
    assert granted.pop("deposit_ledger") == "INSERT,SELECT"
    assert granted.pop("billable_messages") == "INSERT,SELECT"
    assert set(granted.values()) == {"DELETE,INSERT,SELECT,UPDATE"}
    assert len(granted) == 11
