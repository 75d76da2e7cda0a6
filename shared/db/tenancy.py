"""The one way application code talks to tenant data: `with tenant_session(tenant_id) as session`.

Row-level security policies compare every row's tenant with the transaction-local setting
`app.current_tenant_id`. This helper sets it, as a bound parameter, first thing in the one
transaction it opens; `set_config(..., true)` ends with that transaction, so a pooled
connection never carries one request's tenant into the next. Without the setting a query
sees no rows and can insert none: forgetting this helper fails closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from shared.db.engine import get_engine

_SET_TENANT = text("SELECT set_config('app.current_tenant_id', :tenant_id, true)")


@contextmanager
def tenant_session(tenant_id: uuid.UUID, *, engine: Engine | None = None) -> Iterator[Session]:
    """Yield a Session whose transaction sees only `tenant_id`'s rows; commit on success.

    One transaction: commit on leaving normally, roll back on an exception; SQLAlchemy refuses
    statements after an explicit commit() or rollback() inside the block, so no second,
    tenant-less transaction can start. Loaded objects stay readable after the block
    (expire_on_commit=False) because reloading them outside a tenant transaction finds nothing.
    """
    if not isinstance(tenant_id, uuid.UUID):
        raise TypeError(f"tenant_id must be a uuid.UUID, not {type(tenant_id).__name__}")
    with Session(engine or get_engine(), expire_on_commit=False) as session, session.begin():
        session.execute(_SET_TENANT, {"tenant_id": str(tenant_id)})
        yield session
