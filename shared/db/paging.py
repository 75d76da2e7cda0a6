"""Keyset pages, newest first: the rows after a cursor's (timestamp, id), so rows written
meanwhile neither repeat nor shift a page (shared.api.pages encodes the cursor)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session


def newest_first(
    session: Session,
    query: Select[Any],
    created_at: InstrumentedAttribute[Any],
    row_id: InstrumentedAttribute[Any],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Any]:
    if after is not None:
        query = query.where(tuple_(created_at, row_id) < tuple_(*after))
    return list(session.scalars(query.order_by(created_at.desc(), row_id.desc()).limit(limit)))
