"""database-migrate's work on a server shaped like Cloud SQL: nobody is superuser, crm_owner is
a password user with CREATEROLE and CREATEDB (as Cloud SQL makes it, a member of
cloudsqlsuperuser), the database belongs to cloudsqlsuperuser, and each function logs in as an
IAM user "fn-<function>@<project>.iam" that Terraform created with no privileges.

A server of its own, since the roles are cluster-wide and the suite's server has crm_app as a
login role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import functions_framework
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from emulators.postgres import start_postgres
from shared.cloud.declaration import REPO_ROOT
from shared.cloud.settings import settings
from shared.db.bootstrap import prepare_cloud_sql
from shared.db.engine import engine_for_url
from shared.db.migrate import upgrade_with
from shared.db.platform import create_tenant
from shared.db.tenancy import tenant_session

CONVERSATION_USER = "fn-conversation@whatsapp-crm-prod.iam"
WEBHOOK_USER = "fn-whatsapp-webhook@whatsapp-crm-prod.iam"


@pytest.fixture(scope="module")
def cloud_sql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("cloud-sql")
    server = start_postgres(root / "data", root / "logs")
    superuser = create_engine(server.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with superuser.connect() as connection:
        for statement in (
            "CREATE ROLE cloudsqlsuperuser NOLOGIN CREATEROLE CREATEDB",
            "CREATE ROLE crm_owner LOGIN PASSWORD 'owner-pw' CREATEROLE CREATEDB IN ROLE cloudsqlsuperuser",
            "CREATE DATABASE whatsapp_crm OWNER cloudsqlsuperuser",  # google_sql_database
            f'CREATE ROLE "{CONVERSATION_USER}" LOGIN',  # google_sql_user, CLOUD_IAM_SERVICE_ACCOUNT
            'CREATE ROLE "someone-else@whatsapp-crm-prod.iam" LOGIN',  # not one of our functions
        ):
            connection.exec_driver_sql(statement)
    superuser.dispose()
    try:
        yield server.url.rsplit("@", 1)[1].rsplit("/", 1)[0]  # host:port
    finally:
        server.stop()


def engine_as(address: str, user: str, password: str = "") -> Engine:
    credentials = user.replace("@", "%40") + (f":{password}" if password else "")
    return engine_for_url(f"postgresql+pg8000://{credentials}@{address}/whatsapp_crm", pool_size=1)


def test_migrate_makes_each_function_user_a_crm_app_member_and_reaches_head(cloud_sql: str) -> None:
    owner = engine_as(cloud_sql, "crm_owner", "owner-pw")
    result = prepare_cloud_sql(owner, "whatsapp_crm")
    assert result["revision"] == upgrade_with(owner)  # at head: nothing left to run
    assert result["crm_app_members"] == [CONVERSATION_USER]
    with owner.connect() as connection:
        assert (
            connection.execute(text("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'crm_app'")).scalar_one() is False
        )
        datdba = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'whatsapp_crm'"
        assert connection.execute(text(datdba)).scalar_one() == "crm_owner"
    owner.dispose()

    function = engine_as(cloud_sql, CONVERSATION_USER)
    first = create_tenant("Kopi Satu", f"kopi-{uuid.uuid4().hex[:8]}", engine=function)
    second = create_tenant("Kopi Dua", f"kopi-{uuid.uuid4().hex[:8]}", engine=function)
    with tenant_session(first, engine=function) as session:
        # Row-level security holds for a member as for crm_app itself: one tenant's rows only.
        assert session.execute(text("SELECT id FROM tenants")).scalars().all() == [first]
    with tenant_session(second, engine=function) as session:
        assert session.execute(text("SELECT id FROM tenants")).scalars().all() == [second]
    with function.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 0  # no tenant set
    function.dispose()


def test_a_role_nobody_granted_reads_nothing(cloud_sql: str) -> None:
    owner = engine_as(cloud_sql, "crm_owner", "owner-pw")
    prepare_cloud_sql(owner, "whatsapp_crm")
    owner.dispose()
    stranger = engine_as(cloud_sql, "someone-else@whatsapp-crm-prod.iam")
    with pytest.raises(DBAPIError, match="permission denied"), stranger.connect() as connection:
        connection.execute(text("SELECT count(*) FROM tenants"))
    stranger.dispose()


def test_a_function_added_later_is_granted_on_the_next_run(cloud_sql: str) -> None:
    superuser_address = cloud_sql
    admin = create_engine(
        f"postgresql+pg8000://postgres@{superuser_address}/postgres", poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE ROLE "{WEBHOOK_USER}" LOGIN')
    admin.dispose()
    owner = engine_as(cloud_sql, "crm_owner", "owner-pw")
    again = prepare_cloud_sql(owner, "whatsapp_crm")  # idempotent: a second run changes only that
    owner.dispose()
    assert again["crm_app_members"] == [CONVERSATION_USER, WEBHOOK_USER]
    webhook = engine_as(cloud_sql, WEBHOOK_USER)
    with webhook.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM outlets")).scalar_one() == 0
    webhook.dispose()


def test_the_database_migrate_function_does_it_when_called(cloud_sql: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployed entry point, loaded as Cloud Run loads it, with the owner's connection from
    the environment (on Cloud SQL: INSTANCE_CONNECTION_NAME and DATABASE_OWNER_PASSWORD)."""
    monkeypatch.setenv("DATABASE_ADMIN_URL", f"postgresql+pg8000://crm_owner:owner-pw@{cloud_sql}/whatsapp_crm")
    monkeypatch.setenv("DB_NAME", "whatsapp_crm")
    settings.cache_clear()
    try:
        app = functions_framework.create_app("migrate_database", str(REPO_ROOT / "functions/database-migrate/main.py"))
        client = app.test_client()
        assert client.get("/").status_code == 405  # only a POST migrates
        answer = client.post("/")
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert CONVERSATION_USER in answer.get_json()["crm_app_members"]
        assert answer.get_json()["revision"]
    finally:
        settings.cache_clear()
