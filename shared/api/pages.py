"""Cursor pagination for staff APIs: a page ends with an opaque cursor naming the last item's
sort key, and the next page starts after it, so items written meanwhile neither repeat nor
shift the pages (as offsets would)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from shared.api.errors import ApiError

Key = tuple[datetime, uuid.UUID]  # (a timestamp, the id that breaks its ties)


def encode_cursor(key: Key) -> str:
    raw = json.dumps([key[0].isoformat(), str(key[1])], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Key | None:
    """The key a cursor names; 400 for one this API did not hand out."""
    if cursor is None:
        return None
    try:
        at, key_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("a cursor's time has its zone")
        return moment, uuid.UUID(key_id)
    except (binascii.Error, UnicodeDecodeError, TypeError, ValueError) as exc:
        detail = {"loc": ["query", "cursor"], "message": "not a cursor this API handed out", "type": "cursor"}
        raise ApiError(400, "query.cursor: not a cursor this API handed out", details=[detail]) from exc
