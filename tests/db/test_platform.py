"""The platform functions: the only cross-tenant path, and only as wide as their purpose."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from shared.db import platform
from shared.db.models import Tenant
from shared.db.tenancy import tenant_session

FUNCTIONS = [
    "platform_outlet_for_phone_number(text)",
    "platform_user_for_firebase_uid(text)",
    "platform_tenant_ids(text)",
    "platform_create_tenant(text, text, text, text)",
]


def test_outlet_route(app_engine, tenant_a, tenant_b) -> None:
    route = platform.outlet_for_phone_number(tenant_b.phone_number_id, engine=app_engine)
    assert route == platform.OutletRoute(
        tenant_id=tenant_b.tenant_id,
        outlet_id=tenant_b.rows["outlets"],
        tenant_status="active",
        outlet_status="active",
    )
    assert platform.outlet_for_phone_number("unknown-number", engine=app_engine) is None


def test_outlet_route_reports_a_suspended_tenant(app_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        session.execute(update(Tenant).values(status="suspended"))
    route = platform.outlet_for_phone_number(tenant_a.phone_number_id, engine=app_engine)
    assert route is not None
    assert route.tenant_status == "suspended"


def test_user_route(app_engine, tenant_a, tenant_b) -> None:
    assert platform.user_for_firebase_uid(tenant_a.firebase_uid, engine=app_engine) == platform.UserRoute(
        tenant_id=tenant_a.tenant_id,
        user_id=tenant_a.rows["users"],
        role="agent",
        outlet_id=tenant_a.rows["outlets"],
        tenant_status="active",
    )
    assert platform.user_for_firebase_uid("someone-else", engine=app_engine) is None


def test_tenant_ids_lists_all_tenants_and_filters_by_status(app_engine, tenant_a, tenant_b) -> None:
    with tenant_session(tenant_b.tenant_id, engine=app_engine) as session:
        session.execute(update(Tenant).values(status="suspended"))
    assert {tenant_a.tenant_id, tenant_b.tenant_id} <= set(platform.tenant_ids(engine=app_engine))
    suspended = platform.tenant_ids("suspended", engine=app_engine)
    assert tenant_b.tenant_id in suspended
    assert tenant_a.tenant_id not in suspended


def test_create_tenant_is_visible_only_to_itself(app_engine, tenant_a) -> None:
    slug = f"new-{uuid.uuid4().hex[:8]}"
    tenant_id = platform.create_tenant("New Shop", slug, timezone="Asia/Makassar", engine=app_engine)
    with tenant_session(tenant_id, engine=app_engine) as session:
        created = session.execute(select(Tenant)).scalar_one()
    seen = (created.id, created.name, created.slug, created.timezone, created.default_language)
    assert seen == (tenant_id, "New Shop", slug, "Asia/Makassar", "id")
    assert created.status == "active"
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        assert session.get(Tenant, tenant_id) is None


@pytest.mark.parametrize(
    ("slug", "error"),
    [
        ("taken", "uq_tenants_slug"),
        ("Not A Slug", "ck_tenants_slug"),
        ("-leading-hyphen", "ck_tenants_slug"),
    ],
)
def test_create_tenant_rejects_taken_or_malformed_slugs(app_engine, slug, error) -> None:
    taken = f"taken-{uuid.uuid4().hex[:8]}"
    platform.create_tenant("First", taken, engine=app_engine)
    with pytest.raises(DBAPIError, match=error):
        platform.create_tenant("Second", taken if slug == "taken" else slug, engine=app_engine)


def test_create_tenant_restores_the_callers_tenant(app_engine, tenant_a) -> None:
    with tenant_session(tenant_a.tenant_id, engine=app_engine) as session:
        slug = f"n-{uuid.uuid4().hex[:8]}"
        session.execute(text("SELECT platform_create_tenant('Nested', :slug)"), {"slug": slug})
        current = session.scalar(text("SELECT current_setting('app.current_tenant_id', true)"))
        assert current == str(tenant_a.tenant_id)
        assert set(session.scalars(select(Tenant.id))) == {tenant_a.tenant_id}


def test_functions_are_definer_owned_by_platform_role_and_pinned(admin_engine) -> None:
    with admin_engine.connect() as connection:
        for signature in FUNCTIONS:
            owner, definer, config, public = connection.execute(
                text(
                    "SELECT pg_get_userbyid(proowner), prosecdef, proconfig, "
                    "       EXISTS (SELECT 1 FROM aclexplode(proacl) WHERE grantee = 0) "
                    "FROM pg_proc WHERE oid = to_regprocedure(:signature)"
                ),
                {"signature": signature},
            ).one()
            assert (owner, definer, config, public) == (
                "crm_platform",
                True,
                ["search_path=public, pg_temp"],
                False,
            ), signature
            can_execute = {
                role: connection.scalar(
                    text("SELECT has_function_privilege(:role, to_regprocedure(:signature), 'EXECUTE')"),
                    {"role": role, "signature": signature},
                )
                for role in ("crm_app", "crm_owner")
            }
            assert can_execute == {"crm_app": True, "crm_owner": False}, signature


def test_platform_role_reads_only_routing_columns(admin_engine) -> None:
    checks = {
        ("outlets", "phone_number_id"): True,
        ("outlets", "access_token_ciphertext"): False,
        ("tenants", "status"): True,
        ("tenants", "settings"): False,
        ("users", "firebase_uid"): True,
        ("users", "email"): False,
    }
    with admin_engine.connect() as connection:
        seen = {
            (table, column): connection.scalar(
                text("SELECT has_column_privilege('crm_platform', :table, :column, 'SELECT')"),
                {"table": table, "column": column},
            )
            for table, column in checks
        }
        tables = {
            table: connection.scalar(
                text("SELECT has_table_privilege('crm_platform', :table, 'SELECT')"),
                {"table": table},
            )
            for table in ("messages", "customers", "conversations", "audit_log")
        }
    assert seen == checks
    assert tables == dict.fromkeys(tables, False)
