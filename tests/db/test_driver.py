"""The tuned pg8000 (shared.db.driver) gives the same answers and errors as pg8000 itself, in
one round trip per statement."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pg8000
import pg8000.core
import pytest
from sqlalchemy import Connection, Engine, exc, text

from shared.db import driver
from shared.db.bootstrap import DatabaseUrls
from shared.db.engine import engine_for_url


@pytest.fixture
def engine(db_urls: DatabaseUrls) -> Iterator[Engine]:
    engine = engine_for_url(db_urls.admin_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def test_installed_pg8000_is_one_the_pipelined_execute_was_checked_against(engine: Engine) -> None:
    """A pg8000 upgrade lands here first: read its core.execute_unnamed, then extend CHECKED_VERSIONS."""
    assert driver.internals_checked(), pg8000.__version__
    assert pg8000.core.CoreConnection.execute_unnamed is driver._execute_pipelined


@pytest.fixture
def flushes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the writes pg8000 sends to the server (one per round trip)."""
    counted: list[int] = []
    real = pg8000.core._flush

    def counting(sock: object) -> None:
        counted.append(1)
        real(sock)

    monkeypatch.setattr(pg8000.core, "_flush", counting)
    return counted


def test_a_statement_with_parameters_is_one_round_trip(engine: Engine, flushes: list[int]) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1")).scalar_one()  # opens the transaction
        flushes.clear()
        assert connection.execute(text("SELECT CAST(:a AS int) + 1"), {"a": 41}).scalar_one() == 42
        assert len(flushes) == 1


def test_values_of_every_kind_come_back_unchanged(engine: Engine) -> None:
    some_id = uuid.uuid4()
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT CAST(:id AS uuid), CAST(:text AS text), CAST(:none AS text), CAST(:n AS numeric),"
                " CAST(:doc AS jsonb), CAST(:at AS timestamptz), CAST(:ints AS int[]), CAST(:flag AS boolean)"
            ),
            {
                "id": some_id,
                "text": "kopi susu 'gula aren' %s :x ☕",
                "none": None,
                "n": Decimal("12500.50"),
                "doc": '{"a": [1, "dua"]}',
                "at": datetime(2026, 11, 25, 8, 30, 1, 123456, tzinfo=UTC),
                "ints": [1, 2, 3],
                "flag": True,
            },
        ).one()
    assert row == (
        some_id,
        "kopi susu 'gula aren' %s :x ☕",
        None,
        Decimal("12500.50"),
        {"a": [1, "dua"]},
        datetime(2026, 11, 25, 8, 30, 1, 123456, tzinfo=UTC),
        [1, 2, 3],
        True,
    )


def test_timestamps_parse_in_any_session_time_zone_and_beyond_python(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SET TIME ZONE 'Asia/Jakarta'"))
        jakarta, historic, naive, infinite, before_christ = connection.execute(
            text(
                "SELECT timestamptz '2026-11-25 01:35:05.12345+00', timestamptz '1890-01-01 00:00:00+00',"
                " timestamp '2026-11-25 01:35:05', timestamptz 'infinity', timestamptz '0044-03-15 00:00:00+00 BC'"
            )
        ).one()
    assert jakarta == datetime(2026, 11, 25, 1, 35, 5, 123450, tzinfo=UTC)
    assert jakarta.utcoffset() == timedelta(hours=7)
    assert historic == datetime(1890, 1, 1, tzinfo=UTC)  # local mean time, an offset with seconds
    assert historic.utcoffset() == timedelta(hours=7, minutes=7, seconds=12)
    assert naive == datetime(2026, 11, 25, 1, 35, 5)
    assert naive.tzinfo is None
    assert infinite == "infinity"
    assert isinstance(before_christ, str | datetime)  # pg8000's own fallback, not an exception
    assert jakarta.tzinfo == timezone(timedelta(hours=7))


class Unprintable:
    def __str__(self) -> str:
        raise ValueError("unprintable")


def test_errors_are_raised_as_before_and_the_connection_stays_usable(engine: Engine) -> None:
    with engine.connect() as connection:
        with pytest.raises(exc.ProgrammingError, match="syntax error"):
            connection.execute(text("SELEC CAST(:a AS int)"), {"a": 1})
        connection.rollback()
        with pytest.raises(exc.ProgrammingError, match="invalid input syntax"):  # refused at Bind
            connection.execute(text("SELECT CAST(:a AS int)"), {"a": "not a number"})
        connection.rollback()
        with pytest.raises(ValueError, match="unprintable"):  # fails before anything is sent
            connection.execute(text("SELECT CAST(:a AS text)"), {"a": Unprintable()})
        connection.rollback()
        connection.execute(text("CREATE TEMP TABLE once (id int PRIMARY KEY)"))
        connection.execute(text("INSERT INTO once VALUES (:id)"), {"id": 1})
        with pytest.raises(exc.IntegrityError):
            connection.execute(text("INSERT INTO once VALUES (:id)"), {"id": 1})
        connection.rollback()
        assert connection.execute(text("SELECT CAST(:a AS int) * 2"), {"a": 21}).scalar_one() == 42


def test_the_remembered_placeholder_rewrite_keeps_quoted_percent_signs(engine: Engine) -> None:
    query = text("SELECT CAST(:a AS text) || '%' || CAST(:b AS text)")
    with engine.connect() as connection:
        assert connection.execute(query, {"a": "10", "b": "x"}).scalar_one() == "10%x"
        assert connection.execute(query, {"a": "20", "b": "y"}).scalar_one() == "20%y"


def test_another_engine_on_the_same_database_is_tuned_too(db_urls: DatabaseUrls) -> None:
    other = engine_for_url(db_urls.app_url, pool_size=1, max_overflow=0)
    try:
        with other.connect() as connection:
            at = connection.execute(text("SELECT now()")).scalar_one()
        assert isinstance(at, datetime)
        assert at.tzinfo is not None
    finally:
        other.dispose()


def _prepared_on_server(connection: Connection) -> int:
    return connection.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()


def test_a_repeated_statement_is_prepared_once_and_then_only_bound(engine: Engine, flushes: list[int]) -> None:
    query = text("SELECT CAST(:a AS int) * 3")
    with engine.connect() as connection:
        before = _prepared_on_server(connection)
        results = [connection.execute(query, {"a": n}).scalar_one() for n in range(5)]
        assert results == [0, 3, 6, 9, 12]
        assert _prepared_on_server(connection) == before + 1
        flushes.clear()
        assert connection.execute(query, {"a": 7}).scalar_one() == 21
        assert len(flushes) == 1


def test_a_schema_change_under_a_prepared_statement_fails_once_then_works(engine: Engine) -> None:
    """DDL that changes a prepared statement's result type: the error reaches the caller (whose
    transaction is broken anyway, so it retries), and the retry prepares the statement anew."""
    query = text("SELECT * FROM drinks WHERE price > :floor ORDER BY name")
    with engine.connect() as connection:
        connection.execute(text("CREATE TEMP TABLE drinks (name text, price int)"))
        connection.execute(text("INSERT INTO drinks VALUES ('kopi susu', 18000), ('teh tarik', 15000)"))
        for _ in range(3):
            assert len(connection.execute(query, {"floor": 0}).all()) == 2
        connection.commit()
        connection.execute(text("ALTER TABLE drinks ADD COLUMN size text DEFAULT 'besar'"))
        connection.commit()
        with pytest.raises(exc.DBAPIError, match="0A000"):
            connection.execute(query, {"floor": 0})
        connection.rollback()
        assert connection.execute(query, {"floor": 16000}).all() == [("kopi susu", 18000, "besar")]


def test_prepared_statements_per_connection_are_bounded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "PREPARED_PER_CONNECTION", 5)
    with engine.connect() as connection:
        before = _prepared_on_server(connection)
        for n in range(20):
            for _ in range(2):
                assert connection.execute(text(f"SELECT CAST(:a AS int) + {n}"), {"a": 1}).scalar_one() == n + 1
        assert _prepared_on_server(connection) - before <= 5
