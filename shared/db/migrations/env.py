"""Alembic environment: online migrations only, over the URL (or engine) shared.db.migrate passes in.

The URL travels in `config.attributes`, not in the ini options, so that a password holding
`%` survives ConfigParser interpolation and no alembic.ini is needed.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from shared.db.migrate import COMPARE_OPTIONS
from shared.db.models import Base

if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported: run them against a database")

# An engine of the caller's (Cloud SQL through its connector), or one of our own for the URL.
given = context.config.attributes.get("engine")
engine = given or create_engine(context.config.attributes["url"], poolclass=NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, **COMPARE_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()
if given is None:
    engine.dispose()
