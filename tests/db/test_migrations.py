"""The hand-written migration: it matches the models, secures every table, and reverses cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from shared.db import migrate
from shared.db.bootstrap import prepare_database
from shared.db.engine import normalize_url
from shared.db.models import Base

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG = {
    "columns": "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, "
    "column_default FROM information_schema.columns WHERE table_schema = 'public'",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE connamespace = 'public'::regnamespace",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
}


def catalog(connection: Connection) -> dict[str, set[tuple[object, ...]]]:
    return {
        name: {tuple(row) for row in connection.execute(text(query)) if row[0] != "alembic_version"}
        for name, query in CATALOG.items()
    }


def diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=migrate.COMPARE_OPTIONS)
        return list(compare_metadata(context, Base.metadata))


def superuser_engine(superuser_url: str, database: str | None = None, **options) -> Engine:
    url = make_url(normalize_url(superuser_url))
    return create_engine(url.set(database=database or url.database), poolclass=NullPool, **options)


def test_models_match_the_migration(admin_engine) -> None:
    assert diff(admin_engine) == []


def test_models_match_the_migration_in_detail(postgres_superuser_url, db_urls, scratch_database) -> None:
    """compare_metadata skips CHECK constraints and partial-index predicates; the catalog does not."""
    with superuser_engine(postgres_superuser_url, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{scratch_database}"')
    from_models = superuser_engine(postgres_superuser_url, scratch_database)
    Base.metadata.create_all(from_models)
    with from_models.connect() as connection:
        expected = catalog(connection)
    from_models.dispose()
    migrated = superuser_engine(postgres_superuser_url, make_url(db_urls.app_url).database)
    with migrated.connect() as connection:
        actual = catalog(connection)
    migrated.dispose()
    for name in CATALOG:
        assert actual[name] == expected[name], name
    assert len(expected["constraints"]) > 60  # the comparison saw the schema, not two empty sets


def test_every_table_forces_the_tenant_policy(admin_engine) -> None:
    with admin_engine.connect() as connection:
        tables = dict(
            connection.execute(
                text(
                    "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class "
                    "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'alembic_version'"
                )
            ).all()
        )
        policies = connection.execute(
            text(
                "SELECT tablename, policyname, roles::text[], cmd, qual, with_check FROM pg_policies "
                "WHERE schemaname = 'public'"
            )
        ).all()
    assert tables == dict.fromkeys(Base.metadata.tables, True)
    tenant_policies = {row.tablename: row for row in policies if row.policyname == "tenant_isolation"}
    assert set(tenant_policies) == set(tables)
    for table, policy in tenant_policies.items():
        key = "id" if table == "tenants" else "tenant_id"
        assert policy.roles == ["public"]
        assert policy.cmd == "ALL"
        assert policy.qual == policy.with_check
        assert policy.qual.startswith(f"({key} = (NULLIF(current_setting('app.current_tenant_id'"), table
    others = {
        (row.tablename, row.policyname, tuple(row.roles), row.cmd)
        for row in policies
        if row.policyname != "tenant_isolation"
    }
    assert others == {
        (table, "platform_read", ("crm_platform",), "SELECT") for table in ("tenants", "outlets", "users")
    }


def test_upgrade_downgrade_upgrade(postgres_superuser_url, scratch_database) -> None:
    urls = prepare_database(postgres_superuser_url, scratch_database)  # roles exist: the idempotent path
    admin = create_engine(urls.admin_url, poolclass=NullPool)
    public_objects = text(
        "SELECT (SELECT array_agg(relname::text ORDER BY relname) FROM pg_class "
        "        WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'), "
        "       (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace)"
    )

    migrate.downgrade(urls.admin_url, "base")
    with admin.connect() as connection:
        assert tuple(connection.execute(public_objects).one()) == (["alembic_version"], 0)

    migrate.upgrade(urls.admin_url)
    with admin.connect() as connection:
        tables, functions = connection.execute(public_objects).one()
    assert set(tables) == {*Base.metadata.tables, "alembic_version"}
    assert functions == 6  # four platform functions, two trigger functions
    assert diff(admin) == []
    admin.dispose()
    assert prepare_database(postgres_superuser_url, scratch_database) == urls  # again: a no-op


def test_cli_reports_the_current_revision(db_urls) -> None:
    env = {**os.environ, "DATABASE_ADMIN_URL": db_urls.admin_url, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "shared.db.migrate", "current"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Rev: 0003 (head)" in result.stdout


def test_next_revision_is_numbered() -> None:
    assert migrate.next_revision_id(migrate.alembic_config()) == "0004"
