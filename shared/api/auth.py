"""Who is calling a staff API: the Firebase user their ID token proves, and what our users
table says they are.

Tenant, role and outlet come from our users table, never from the token's custom claims, the
URL or the body: a token whose claims were edited still acts for its real tenant only.

Platform operators (our own staff) are the exception: they belong to no tenant, and their
`platform_operator` claim is set only by `scripts/admin` with the Admin SDK, never through an
API a tenant can reach. Tokens are checked for revocation, so removing a staff member ends
their session at once.
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
MANAGING_ROLES = frozenset({"owner", "admin"})
EVERY_ROLE = frozenset(ROLES)
OPERATOR = "operator"  # a platform operator: routes under /api/v1/platform only
OPERATOR_CLAIM = "platform_operator"
OPERATORS = frozenset({OPERATOR})


@dataclass(frozen=True, slots=True)
class Staff:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    outlet_id: uuid.UUID | None  # an agent scoped to one outlet sees only that outlet

    def sees_outlet(self, outlet_id: uuid.UUID) -> bool:
        return self.outlet_id is None or self.outlet_id == outlet_id


@dataclass(frozen=True, slots=True)
class Operator:
    """One of our own staff, acting on any tenant named in the URL."""

    firebase_uid: str
    role: str = OPERATOR


@cache
def firebase_app() -> Any:
    """The Admin SDK app staff logins are checked and managed with."""
    import firebase_admin

    return firebase_admin.initialize_app(options={"projectId": settings().google_cloud_project}, name="staff-api")


def authenticate(authorization: str | None, *, operators: bool = False) -> Staff | Operator:
    """Who is behind `Authorization: Bearer <Firebase ID token>`, or ApiError 401. On an
    operator route (`operators`), an operator; elsewhere the staff member our users table names."""
    from firebase_admin import auth

    if not authorization or not authorization.startswith("Bearer "):
        raise ApiError(401, "send Authorization: Bearer <Firebase ID token>")
    try:
        claims = auth.verify_id_token(
            authorization.removeprefix("Bearer ").strip(), app=firebase_app(), check_revoked=True
        )
    except Exception as exc:  # expired, revoked, disabled, malformed, wrong project: all the same to the caller
        raise ApiError(401, "invalid ID token") from exc
    uid = str(claims["uid"])
    if operators and claims.get(OPERATOR_CLAIM) is True:
        return Operator(uid)
    route = platform.user_for_firebase_uid(uid)
    if route is None or route.tenant_status != "active":
        raise ApiError(401, "this login is not staff of an active tenant")
    return Staff(route.user_id, route.tenant_id, route.role, route.outlet_id)
