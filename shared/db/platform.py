"""The narrow platform path: the only reads and writes that cross tenants.

Each is a SECURITY DEFINER function created by the migration and owned by crm_platform, a
role nobody logs in as, which may read a few columns of tenants, outlets and users and no
other table. Routing a webhook, resolving a signed-in user and looping tenants in a
scheduler job need these facts before any tenant is known; everything after that runs in
`shared.db.tenancy.tenant_session`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, text

from shared.db.engine import get_engine


@dataclass(frozen=True)
class OutletRoute:
    """Where a webhook for one WhatsApp phone number belongs."""

    tenant_id: uuid.UUID
    outlet_id: uuid.UUID
    tenant_status: str
    outlet_status: str


@dataclass(frozen=True)
class UserRoute:
    """Which tenant a Firebase user works for, and as what."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    outlet_id: uuid.UUID | None
    tenant_status: str


def outlet_for_phone_number(phone_number_id: str, *, engine: Engine | None = None) -> OutletRoute | None:
    """Route a webhook by Meta's phone_number_id; None for a number no tenant has registered."""
    with (engine or get_engine()).begin() as connection:
        row = connection.execute(
            text(
                "SELECT tenant_id, outlet_id, tenant_status, outlet_status "
                "FROM platform_outlet_for_phone_number(:phone_number_id)"
            ),
            {"phone_number_id": phone_number_id},
        ).one_or_none()
    return None if row is None else OutletRoute(*row)


def user_for_firebase_uid(firebase_uid: str, *, engine: Engine | None = None) -> UserRoute | None:
    """Find the tenant of a signed-in staff member; None for a Firebase user we do not know."""
    with (engine or get_engine()).begin() as connection:
        row = connection.execute(
            text(
                "SELECT tenant_id, user_id, role, outlet_id, tenant_status "
                "FROM platform_user_for_firebase_uid(:firebase_uid)"
            ),
            {"firebase_uid": firebase_uid},
        ).one_or_none()
    return None if row is None else UserRoute(*row)


def create_tenant(
    name: str,
    slug: str,
    *,
    timezone: str = "Asia/Jakarta",
    default_language: str = "id",
    engine: Engine | None = None,
) -> uuid.UUID:
    """Create a tenant and return its id; add its users and outlets in its tenant_session.

    A taken slug raises sqlalchemy.exc.IntegrityError; a malformed one fails the slug CHECK,
    which pg8000 reports as ProgrammingError: catch sqlalchemy.exc.DBAPIError for both.
    """
    with (engine or get_engine()).begin() as connection:
        tenant_id: uuid.UUID = connection.execute(
            text("SELECT platform_create_tenant(:name, :slug, :timezone, :default_language)"),
            {"name": name, "slug": slug, "timezone": timezone, "default_language": default_language},
        ).scalar_one()
    return tenant_id


def tenant_ids(status: str | None = None, *, engine: Engine | None = None) -> list[uuid.UUID]:
    """Every tenant's id (or those with `status`), for jobs that then work per tenant."""
    with (engine or get_engine()).begin() as connection:
        return list(
            connection.execute(text("SELECT * FROM platform_tenant_ids(:status)"), {"status": status}).scalars()
        )
