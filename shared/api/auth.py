"""Who is calling a staff API: the Firebase user their ID token proves, and what our users
table says they are.

Tenant, role and outlet come from our users table, never from the token's custom claims, the
URL or the body: a token whose claims were edited still acts for its real tenant only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from shared.api.errors import ApiError
from shared.cloud.settings import settings
from shared.db import platform

ROLES = ("owner", "admin", "agent", "viewer")
ACTING_ROLES = frozenset({"owner", "admin", "agent"})  # viewers only read
EVERY_ROLE = frozenset(ROLES)


@dataclass(frozen=True, slots=True)
class Staff:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    outlet_id: uuid.UUID | None  # an agent scoped to one outlet sees only that outlet

    def sees_outlet(self, outlet_id: uuid.UUID) -> bool:
        return self.outlet_id is None or self.outlet_id == outlet_id


@cache
def _firebase_app() -> Any:
    import firebase_admin

    return firebase_admin.initialize_app(options={"projectId": settings().google_cloud_project}, name="staff-api")


def authenticate(authorization: str | None) -> Staff:
    """The staff member behind `Authorization: Bearer <Firebase ID token>`, or ApiError 401."""
    from firebase_admin import auth

    if not authorization or not authorization.startswith("Bearer "):
        raise ApiError(401, "send Authorization: Bearer <Firebase ID token>")
    try:
        claims = auth.verify_id_token(authorization.removeprefix("Bearer ").strip(), app=_firebase_app())
    except Exception as exc:  # expired, revoked, malformed, wrong project: all the same to the caller
        raise ApiError(401, "invalid ID token") from exc
    route = platform.user_for_firebase_uid(str(claims["uid"]))
    if route is None or route.tenant_status != "active":
        raise ApiError(401, "this login is not staff of an active tenant")
    return Staff(route.user_id, route.tenant_id, route.role, route.outlet_id)
