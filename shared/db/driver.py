"""pg8000, made cheaper per statement.

pg8000 is the driver the Cloud SQL Python Connector speaks (pure Python, no libpq). As
shipped, every statement with parameters costs three round trips to the server (Parse+Sync,
Describe+Sync, Bind+Execute+Sync), its SQL text is rescanned character by character on every
execution to rewrite `%s` placeholders, and timestamps are parsed with strptime. A customer
message runs dozens of statements through the pipeline, so this was most of the function
host's CPU. `tune_pg8000()` changes three things, without changing any result:

- Parse, Describe, Bind, Execute and Sync go out in one write and are answered in one read:
  the extended-query protocol allows this pipelining, and an error still ends at the Sync
  (the server skips the rest), raised exactly as before;
- a SQL text a connection runs again becomes a named prepared statement on that connection
  (as psycopg and asyncpg do), so PostgreSQL stops parsing, rewriting (row-level security)
  and planning it from scratch every time; at most `PREPARED_PER_CONNECTION` are kept, and
  when a schema change invalidates them (SQLSTATE 0A000) they are forgotten and the error
  raised, for the caller's retry;
- the placeholder rewrite of each SQL text is remembered (SQLAlchemy sends the same texts,
  from its compiled cache, again and again);
- timestamps are parsed with `datetime.fromisoformat` (PostgreSQL's text form is ISO 8601),
  falling back to pg8000's own parser for what Python cannot represent (infinity, BC years).

The first two replace pg8000 internals, so they are applied only to the pg8000 versions they
were checked against (`CHECKED_VERSIONS`); other versions run unchanged, and
tests/db/test_driver.py fails so that someone checks the new one.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

import pg8000
import pg8000.converters
import pg8000.core
import pg8000.dbapi
import pg8000.legacy
from pg8000.core import BIND, DESCRIBE, EXECUTE_MSG, NULL_BYTE, PARSE, STATEMENT, SYNC_MSG, H_pack, i_pack
from pg8000.exceptions import DatabaseError
from sqlalchemy import Engine, event

log = logging.getLogger(__name__)

CHECKED_VERSIONS = ("1.31.",)  # pg8000 releases whose internals the pipelined execute matches
TIMESTAMP_OID, TIMESTAMPTZ_OID = 1114, 1184
PREPARE_AFTER = 2  # executions of one SQL text on one connection before it is prepared
PREPARED_PER_CONNECTION = 256  # SQL texts remembered per connection (prepared or counted)
STALE_PREPARED = frozenset({"0A000", "26000"})  # result type changed by DDL; no such statement

_lock = threading.Lock()
_original_convert_paramstyle = pg8000.dbapi.convert_paramstyle
_original_execute_unnamed = pg8000.core.CoreConnection.execute_unnamed


def internals_checked() -> bool:
    return str(pg8000.__version__).startswith(CHECKED_VERSIONS)


def tune_pg8000(engine: Engine) -> None:
    """Make `engine`'s pg8000 connections cheaper per statement (see the module docstring)."""
    with _lock:
        if internals_checked():
            pg8000.core.CoreConnection.execute_unnamed = _execute_pipelined
            pg8000.legacy.convert_paramstyle = _convert_paramstyle
            pg8000.dbapi.convert_paramstyle = _convert_paramstyle
        else:
            log.warning("pg8000 %s: not a version the pipelined execute was checked with", pg8000.__version__)
    if not event.contains(engine, "connect", _register_timestamp_parsers):
        event.listen(engine, "connect", _register_timestamp_parsers)


def _execute_pipelined(
    self: pg8000.core.CoreConnection, statement: str, vals: Any = (), oids: Any = (), stream: Any = None
) -> pg8000.core.Context:
    """pg8000's execute_unnamed in one round trip instead of three, prepared once repeated."""
    if stream is not None:  # COPY: keep pg8000's own sequence
        return _original_execute_unnamed(self, statement, vals=vals, oids=oids, stream=stream)
    params = pg8000.core.make_params(self.py_types, vals)  # first: a bad value leaves nothing half-sent
    known: OrderedDict[tuple[str, tuple[int, ...]], Any] = self.__dict__.setdefault("_crm_statements", OrderedDict())
    key = (statement, tuple(oids))
    entry = known.get(key, 0)
    if isinstance(entry, int) and entry + 1 < PREPARE_AFTER:
        _remember(self, known, key, entry + 1)
        return _run_unnamed(self, statement, params, oids)
    if isinstance(entry, int):
        entry = self.prepare_statement(statement, oids)  # (name, columns, input_funcs)
        _remember(self, known, key, entry)
    else:
        known.move_to_end(key)
    try:
        return self.execute_named(entry[0], params, entry[1], entry[2], statement)
    except DatabaseError as error:
        if isinstance(error.args[0], dict) and error.args[0].get("C") in STALE_PREPARED:
            known.clear()  # prepare afresh on the next attempt
        raise


def _remember(self: pg8000.core.CoreConnection, known: OrderedDict[Any, Any], key: Any, entry: Any) -> None:
    known[key] = entry
    known.move_to_end(key)
    while len(known) > PREPARED_PER_CONNECTION:
        _, oldest = known.popitem(last=False)
        if not isinstance(oldest, int):
            self.close_prepared_statement(oldest[0])


def _run_unnamed(self: pg8000.core.CoreConnection, statement: str, params: Any, oids: Any) -> pg8000.core.Context:
    encoding = self._client_encoding
    parse = bytearray(NULL_BYTE + statement.encode(encoding) + NULL_BYTE + H_pack(len(oids)))
    for oid in oids:
        parse.extend(i_pack(0 if oid == -1 else oid))
    bind = bytearray(NULL_BYTE + NULL_BYTE + H_pack(0) + H_pack(len(params)))
    for value in params:
        if value is None:
            bind.extend(i_pack(-1))
        else:
            encoded = value.encode(encoding)
            bind.extend(i_pack(len(encoded)))
            bind.extend(encoded)
    bind.extend(H_pack(0))  # all results in text format, as pg8000 reads them
    self._send_message(PARSE, parse)
    self._send_message(DESCRIBE, STATEMENT + NULL_BYTE)
    self._send_message(BIND, bind)
    pg8000.core._write(self._sock, EXECUTE_MSG)
    pg8000.core._write(self._sock, SYNC_MSG)
    pg8000.core._flush(self._sock)
    context = pg8000.core.Context(statement)
    self.handle_messages(context)
    return context


@functools.lru_cache(maxsize=2048)
def _converted(style: str, query: str) -> str:
    return str(_original_convert_paramstyle(style, query, ())[0])


def _convert_paramstyle(style: str, query: str, args: Any) -> tuple[str, Any]:
    """pg8000's placeholder rewrite, remembered per SQL text for positional styles (whose values
    pass through unchanged); named styles still go through pg8000 every time."""
    if style in ("format", "qmark", "numeric"):
        return _converted(style, query), args
    return _original_convert_paramstyle(style, query, args)  # type: ignore[no-any-return]


def _parse_timestamp(text: str) -> Any:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return pg8000.converters.timestamp_in(text)


def _parse_timestamptz(text: str) -> Any:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return pg8000.converters.timestamptz_in(text)


def _register_timestamp_parsers(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.register_in_adapter(TIMESTAMP_OID, _parse_timestamp)
    dbapi_connection.register_in_adapter(TIMESTAMPTZ_OID, _parse_timestamptz)
