"""A business on the platform: created by a platform operator with its plan and first owner,
then kept by its own owners and admins (name, contact, the assistant's settings)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from shared.billing import plans
from shared.db import audit, platform
from shared.db.models import Tenant
from shared.db.tenancy import tenant_session
from shared.tenants import members

log = logging.getLogger(__name__)

CONTACT_FIELDS = ("name", "contact_name", "contact_email", "contact_phone")
# The assistant's settings, kept in tenants.settings (read by the conversation pipeline).
ASSISTANT_FIELDS = (
    "tone",
    "reply_language",
    "fallback_reply",
    "handoff_notice",
    "handoff_keywords",
    "read_receipts",
    "typing_indicator",
)


class TenantError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def tenant_view(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "name": tenant.name,
        "slug": tenant.slug,
        "status": tenant.status,
        "timezone": tenant.timezone,
        "default_language": tenant.default_language,
        "contact_name": tenant.contact_name,
        "contact_email": tenant.contact_email,
        "contact_phone": tenant.contact_phone,
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
    }


def create(
    values: dict[str, Any], plan: str, owner_email: str, owner_name: str | None, operator: str
) -> dict[str, Any]:
    """The tenant, its subscription and its first owner (an invite with a sign-in link)."""
    try:
        tenant_id = platform.create_tenant(
            values["name"], values["slug"], timezone=values["timezone"], default_language=values["default_language"]
        )
    except IntegrityError as error:
        raise TenantError(409, f"the slug {values['slug']!r} is taken") from error
    with tenant_session(tenant_id) as session:
        tenant = session.get_one(Tenant, tenant_id)
        for field in ("contact_name", "contact_email", "contact_phone"):
            setattr(tenant, field, values.get(field))
        plans.change_plan(session, tenant, plan)  # every tenant starts on starter: this upgrades
        audit.record(
            session,
            tenant_id,
            "tenant.create",
            actor_type="platform",
            actor_id=operator,
            target_type="tenant",
            target_id=tenant_id,
            details={"plan": plan},
        )
        session.flush()
        session.refresh(tenant)
        view = tenant_view(tenant)
    owner = members.invite(tenant_id, owner_email, owner_name, "owner")
    log.info("tenant created", extra={"tenant": str(tenant_id), "plan": plan})
    return {"tenant": view, "owner": owner.member, "owner_sign_in_link": owner.sign_in_link}


def get(tenant_id: uuid.UUID) -> dict[str, Any]:
    with tenant_session(tenant_id) as session:
        tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            raise TenantError(404, "no such tenant")
        return tenant_view(tenant)


def update(tenant_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
    """Name and contact (tenant staff), or status too (operators: suspend or reactivate)."""
    with tenant_session(tenant_id) as session:
        tenant = session.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None:
            raise TenantError(404, "no such tenant")
        for field, value in changes.items():
            setattr(tenant, field, value)
        session.flush()
        session.refresh(tenant)
        return tenant_view(tenant)


def assistant_settings(tenant_id: uuid.UUID) -> dict[str, Any]:
    with tenant_session(tenant_id) as session:
        tenant = session.get_one(Tenant, tenant_id)
        return {field: tenant.settings.get(field) for field in ASSISTANT_FIELDS}


def update_assistant_settings(tenant_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge the given settings; a field set to null goes back to the default."""
    with tenant_session(tenant_id) as session:
        tenant = session.get_one(Tenant, tenant_id, with_for_update=True)
        merged = dict(tenant.settings)
        for field, value in changes.items():
            if value is None:
                merged.pop(field, None)
            else:
                merged[field] = value
        tenant.settings = merged
        return {field: merged.get(field) for field in ASSISTANT_FIELDS}
