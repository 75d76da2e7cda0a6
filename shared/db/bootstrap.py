"""Create the roles and the database on a PostgreSQL server we are superuser of, then migrate.

For the local runtime (scripts/dev) and the tests. On Cloud SQL, where nobody is superuser,
`prepare_cloud_sql` does the same as crm_owner (a password user Terraform creates), and each
function logs in as its own IAM user, a member of crm_app: ops run it after each deploy through
the database-migrate function (README, "Deploy").

Roles:
- crm_owner: owns the database and the tables, runs migrations; subject to row-level
  security like everyone else (the tables FORCE it).
- crm_app: what the application connects as; no superuser, no BYPASSRLS, no DDL.
- crm_platform: NOLOGIN; owns the platform functions (shared/db/platform.py). crm_owner may
  SET ROLE to it, to manage those functions, but does not inherit its read policies.

Role names are constants, yet every identifier and literal is still quoted, by the server
(`format('%I')`, `format('%L')`), since utility statements take no bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from shared.db.engine import normalize_url
from shared.db.migrate import upgrade, upgrade_with

OWNER_ROLE = "crm_owner"
APP_ROLE = "crm_app"
PLATFORM_ROLE = "crm_platform"

_RESTRICTED = "NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION"
_ROLES = {
    OWNER_ROLE: f"LOGIN {_RESTRICTED}",
    APP_ROLE: f"LOGIN {_RESTRICTED}",
    PLATFORM_ROLE: f"NOLOGIN {_RESTRICTED}",
}
_LOCK_KEY = 0x63726D5F626F6F74  # serialises concurrent bootstraps (two test runs, two dev shells)


@dataclass(frozen=True)
class DatabaseUrls:
    admin_url: str  # crm_owner: migrations only
    app_url: str  # crm_app: the application (DATABASE_URL)

    def __repr__(self) -> str:
        def hidden(url: str) -> str:
            return make_url(url).render_as_string(hide_password=True)

        return f"DatabaseUrls(admin_url={hidden(self.admin_url)!r}, app_url={hidden(self.app_url)!r})"


def _execute(connection: Connection, template: str, *values: str) -> None:
    """Run a utility statement whose identifiers (%I) and literals (%L) the server quotes."""
    arguments = {f"v{i}": value for i, value in enumerate(values)}
    placeholders = "".join(f", CAST(:{name} AS text)" for name in arguments)
    statement = connection.execute(
        text(f"SELECT format(:template{placeholders})"), {"template": template, **arguments}
    ).scalar_one()
    connection.exec_driver_sql(statement)


def _exists(connection: Connection, catalog_query: str, name: str) -> bool:
    return connection.execute(text(catalog_query), {"name": name}).first() is not None


def _ensure_role(connection: Connection, role: str, password: str | None) -> None:
    """Create the role, or reset its attributes if it exists; set the password only if given."""
    verb = "ALTER" if _exists(connection, "SELECT 1 FROM pg_roles WHERE rolname = :name", role) else "CREATE"
    _execute(connection, f"{verb} ROLE %I {_ROLES[role]}", role)
    if password is not None:
        _execute(connection, "ALTER ROLE %I PASSWORD %L", role, password)


def prepare_database(
    superuser_url: str,
    db_name: str,
    app_password: str | None = None,
    owner_password: str | None = None,
) -> DatabaseUrls:
    """Idempotently create the roles and `db_name`, migrate it to head, and return its URLs."""
    superuser = make_url(normalize_url(superuser_url))
    urls = DatabaseUrls(
        admin_url=superuser.set(username=OWNER_ROLE, password=owner_password, database=db_name).render_as_string(
            hide_password=False
        ),
        app_url=superuser.set(username=APP_ROLE, password=app_password, database=db_name).render_as_string(
            hide_password=False
        ),
    )
    # CREATE DATABASE refuses to run inside a transaction block.
    engine = create_engine(superuser, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            try:
                _ensure_role(connection, OWNER_ROLE, owner_password)
                _ensure_role(connection, APP_ROLE, app_password)
                _ensure_role(connection, PLATFORM_ROLE, None)
                _execute(connection, "GRANT %I TO %I WITH INHERIT FALSE, SET TRUE", PLATFORM_ROLE, OWNER_ROLE)
                if not _exists(connection, "SELECT 1 FROM pg_database WHERE datname = :name", db_name):
                    _execute(connection, "CREATE DATABASE %I OWNER %I", db_name, OWNER_ROLE)
                _execute(connection, "REVOKE ALL ON DATABASE %I FROM PUBLIC", db_name)
                _execute(connection, "GRANT CONNECT ON DATABASE %I TO %I", db_name, APP_ROLE)
                upgrade(urls.admin_url)
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
    finally:
        engine.dispose()
    return urls


# Cloud SQL names IAM service-account users "<account>@<project>.iam"; ours are fn-<function>.
_FUNCTION_USERS = r"^fn-[a-z0-9-]+@[a-z0-9-]+\.iam$"


def prepare_cloud_sql(owner: Engine, db_name: str) -> dict[str, object]:
    """Idempotently, as crm_owner on Cloud SQL: crm_app and crm_platform as NOLOGIN group roles,
    every function's IAM user made a member of crm_app, the database owned by crm_owner and
    closed to PUBLIC, then the migrations to head. Returns the revision and the members."""
    with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
        try:
            for role in (APP_ROLE, PLATFORM_ROLE):
                if not _exists(connection, "SELECT 1 FROM pg_roles WHERE rolname = :name", role):
                    _execute(connection, f"CREATE ROLE %I NOLOGIN {_RESTRICTED}", role)
            owner_role = connection.execute(text("SELECT current_user")).scalar_one()
            may_set = "SELECT 1 WHERE pg_has_role(current_user, :name, 'SET')"
            if not _exists(connection, may_set, PLATFORM_ROLE):  # granted once (locally by prepare_database)
                _execute(connection, "GRANT %I TO %I WITH INHERIT FALSE, SET TRUE", PLATFORM_ROLE, owner_role)
            _execute(connection, "ALTER DATABASE %I OWNER TO %I", db_name, owner_role)
            _execute(connection, "REVOKE ALL ON DATABASE %I FROM PUBLIC", db_name)
            _execute(connection, "GRANT CONNECT ON DATABASE %I TO %I", db_name, APP_ROLE)
            members = list(
                connection.execute(
                    text("SELECT rolname FROM pg_roles WHERE rolname ~ :pattern ORDER BY rolname"),
                    {"pattern": _FUNCTION_USERS},
                ).scalars()
            )
            for member in members:
                _execute(connection, "GRANT %I TO %I", APP_ROLE, member)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
    return {"revision": upgrade_with(owner), "crm_app_members": members}
