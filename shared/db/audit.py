"""The audit log: who did what, when, in which tenant. Append-only (a trigger refuses UPDATE
and DELETE). Write it in the same transaction as the change where there is one."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from shared.db.models import AuditLogEntry


def record(
    session: Session,
    tenant_id: uuid.UUID,
    action: str,
    *,
    actor_type: str,  # user | system | platform
    actor_id: str | None,
    target_type: str | None = None,
    target_id: object | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLogEntry(
            tenant_id=tenant_id,
            actor_type=actor_type,
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            details=details or {},
        )
    )
