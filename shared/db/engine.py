"""The process-wide SQLAlchemy engine of the application role (crm_app).

Where the database is, in order of precedence:
1. DATABASE_URL: any PostgreSQL URL, driven by pg8000 (local runtime, tests, a proxy);
2. INSTANCE_CONNECTION_NAME: Cloud SQL through the Cloud SQL Python Connector (Cloud Run);
3. otherwise an error: start the local runtime (scripts/dev) or set DATABASE_URL.

The engine is created once per process, on first use, because a Cloud Run instance serves
many requests and each engine owns a pool of connections.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from shared.cloud.settings import Settings, settings
from shared.db.driver import tune_pg8000

log = logging.getLogger(__name__)

_DRIVERS = {"postgresql", "postgres", "postgresql+pg8000"}

IDLE_CHECK_AFTER = 10.0  # seconds a pooled connection may idle before it is checked on checkout

_lock = threading.Lock()
_engine: Engine | None = None
_connector: Any = None  # google.cloud.sql.connector.Connector, when connecting through it


def normalize_url(url: str) -> str:
    """Return `url` with the pg8000 driver; reject other drivers rather than half-work with them."""
    parsed = make_url(url)
    if parsed.drivername not in _DRIVERS:
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: use postgresql:// or postgresql+pg8000://"
        )
    return parsed.set(drivername="postgresql+pg8000").render_as_string(hide_password=False)


def _pool_options(cfg: Settings) -> dict[str, Any]:
    # Cloud SQL and idle Cloud Run instances drop connections: recycle them before they do.
    return {"pool_size": cfg.db_pool_size, "max_overflow": 2, "pool_timeout": 30, "pool_recycle": 1800}


def _prepare(engine: Engine) -> Engine:
    tune_pg8000(engine)
    _check_idle_connections(engine)
    return engine


def _check_idle_connections(engine: Engine) -> None:
    """SQLAlchemy's pool_pre_ping, but only for connections that idled: a busy instance's
    connections are known to be alive, and a ping per transaction was a round trip each."""

    @event.listens_for(engine, "checkin")
    def idle_from_now(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def check_if_idled(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", time.monotonic()) <= IDLE_CHECK_AFTER:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except (engine.dialect.loaded_dbapi.Error, OSError) as error:  # the pool replaces it, tries again
            raise exc.DisconnectionError("pooled connection was closed while idle") from error


def engine_for_url(url: str, **options: Any) -> Engine:
    """An engine for a URL with our pool defaults; `options` override them (tests use a tiny pool)."""
    return _prepare(create_engine(normalize_url(url), **{**_pool_options(settings()), **options}))


def _cloud_sql_engine(cfg: Settings, instance: str, user: str, password: SecretStr | None) -> tuple[Engine, Any]:
    """Connect through the Cloud SQL connector: IAM-authorised TLS, no IP allow-lists."""
    from google.cloud.sql.connector import Connector

    # "lazy" refreshes certificates on demand: Cloud Run throttles CPU between requests.
    connector = Connector(ip_type=os.environ.get("DB_IP_TYPE", "PRIVATE"), refresh_strategy="lazy")
    auth: dict[str, Any] = {"password": password.get_secret_value()} if password else {"enable_iam_auth": True}

    def connect() -> Any:
        return connector.connect(instance, "pg8000", user=user, db=cfg.db_name, **auth)

    engine = _prepare(create_engine("postgresql+pg8000://", creator=connect, **_pool_options(cfg)))
    log.info("database engine: Cloud SQL %s, database %s, user %s", instance, cfg.db_name, user)
    return engine, connector


@contextlib.contextmanager
def owner_engine() -> Iterator[Engine]:
    """The owner role (crm_owner), for migrations only: DATABASE_ADMIN_URL, or on Cloud SQL the
    password user Terraform creates (DATABASE_OWNER_PASSWORD). Disposed when the block ends."""
    cfg = settings()
    connector = None
    if cfg.database_admin_url is not None:
        engine = engine_for_url(cfg.database_admin_url.get_secret_value(), pool_size=1)
    elif cfg.instance_connection_name and cfg.database_owner_password:
        engine, connector = _cloud_sql_engine(
            cfg, cfg.instance_connection_name, cfg.db_owner_user, cfg.database_owner_password
        )
    else:
        raise RuntimeError("no owner role configured: set DATABASE_ADMIN_URL, or DATABASE_OWNER_PASSWORD on Cloud SQL")
    try:
        yield engine
    finally:
        engine.dispose()
        if connector is not None:
            connector.close()


def get_engine() -> Engine:
    """The application role's engine, created on first call and then shared by the process."""
    global _engine, _connector
    with _lock:
        if _engine is None:
            cfg = settings()
            if cfg.database_url is not None:
                _engine = engine_for_url(cfg.database_url.get_secret_value())
                log.info("database engine: %s", _engine.url.render_as_string(hide_password=True))
            elif cfg.instance_connection_name:
                _engine, _connector = _cloud_sql_engine(cfg, cfg.instance_connection_name, cfg.db_user, cfg.db_password)
            else:
                raise RuntimeError(
                    "no database configured: run scripts/dev (it starts PostgreSQL and exports "
                    "DATABASE_URL), or set DATABASE_URL or INSTANCE_CONNECTION_NAME"
                )
        return _engine


def reset_engine() -> None:
    """Close the pool (and the Cloud SQL connector) so the next get_engine() reads settings anew."""
    global _engine, _connector
    with _lock:
        if _engine is not None:
            _engine.dispose()
        if _connector is not None:
            _connector.close()
        _engine = None
        _connector = None
