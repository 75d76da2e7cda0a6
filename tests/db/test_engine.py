"""get_engine: configuration precedence, caching, and no secrets in what it logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.pool import NullPool

from shared.cloud.settings import settings
from shared.db import engine as engine_module
from shared.db.engine import engine_for_url, get_engine, normalize_url, reset_engine
from shared.db.models import Message
from shared.db.tenancy import tenant_session


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Environment changes take effect for settings() and get_engine(), and are undone after."""
    for name in ("DATABASE_URL", "INSTANCE_CONNECTION_NAME"):
        monkeypatch.delenv(name, raising=False)
    settings.cache_clear()
    reset_engine()
    yield monkeypatch
    reset_engine()
    monkeypatch.undo()
    settings.cache_clear()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@h:5432/d",
        "postgres://u:p@h:5432/d",
        "postgresql+pg8000://u:p@h:5432/d",
    ],
)
def test_urls_are_driven_by_pg8000(url) -> None:
    assert normalize_url(url) == "postgresql+pg8000://u:p@h:5432/d"


def test_other_drivers_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme"):
        normalize_url("postgresql+psycopg://u@h/d")


def test_database_url_gives_a_cached_app_engine(configured, db_urls, tenant_a, caplog) -> None:
    configured.setenv("DATABASE_URL", db_urls.app_url.replace("postgresql+pg8000://", "postgresql://"))
    with caplog.at_level(logging.INFO, logger="shared.db.engine"):
        engine = get_engine()
    assert get_engine() is engine
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT current_user")) == "crm_app"
    with tenant_session(tenant_a.tenant_id) as session:  # the default engine
        assert session.scalar(select(func.count()).select_from(Message)) == 1
    assert "crm_app:***@" in caplog.text
    assert make_url(db_urls.app_url).password not in caplog.text

    reset_engine()
    assert get_engine() is not engine


def test_no_configuration_is_a_clear_error(configured) -> None:
    with pytest.raises(RuntimeError, match="run scripts/dev"):
        get_engine()


def test_a_connection_closed_while_idle_is_replaced_unseen(db_urls, postgres_superuser_url, monkeypatch) -> None:
    """No ping per transaction, yet a pooled connection the server dropped while it idled
    (Cloud SQL maintenance, a throttled Cloud Run instance) never reaches application code."""
    engine = engine_for_url(db_urls.app_url, pool_size=1, max_overflow=0)
    superuser = create_engine(normalize_url(postgres_superuser_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            first_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with superuser.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
        monkeypatch.setattr(engine_module, "IDLE_CHECK_AFTER", 0.0)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != first_pid
    finally:
        engine.dispose()
        superuser.dispose()
