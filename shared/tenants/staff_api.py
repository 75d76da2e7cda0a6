"""The tenant API: a business, its outlets and WhatsApp numbers, its staff, the assistant's
settings and its audit log; and, for platform operators, creating and suspending tenants.

Tenant, role and outlet come from our users table (see shared.api.auth); operators name the
tenant in the URL. Access tokens go in and never come out: responses say only whether one is set.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from shared.api.auth import EVERY_ROLE, MANAGING_ROLES, OPERATORS, Operator, Staff
from shared.api.errors import ApiError
from shared.api.pages import decode_cursor, encode_cursor
from shared.api.routes import Route, StaffApi
from shared.billing import limits
from shared.conversations.hours import BusinessHours
from shared.db import paging
from shared.db.models import AuditLogEntry
from shared.db.tenancy import tenant_session
from shared.tenants import members, outlets, tenants

Plan = Literal["starter", "growth", "enterprise"]
Language = Literal["id", "en"]
E164 = r"^\+[1-9][0-9]{6,14}$"
EMAIL = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
META_ID = r"^[0-9]{5,25}$"  # Meta's ids are decimal strings
SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


def _not_null(model: BaseModel, *fields: str) -> None:
    """A PATCH may leave these out, but not set them to null: they always have a value."""
    for field in fields:
        if field in model.model_fields_set and getattr(model, field) is None:
            raise ValueError(f"{field} may be left out but not null")


def _refuse(error: members.MemberError | outlets.OutletError | tenants.TenantError) -> ApiError:
    return ApiError(error.status, str(error))


# Tenants --------------------------------------------------------------------------------


class TenantView(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    status: Literal["active", "suspended"]
    timezone: str
    default_language: str
    contact_name: str | None
    contact_email: str | None
    contact_phone: str | None
    created_at: datetime
    updated_at: datetime


class TenantUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    contact_name: str | None = Field(None, max_length=200)
    contact_email: str | None = Field(None, max_length=254, pattern=EMAIL)
    contact_phone: str | None = Field(None, pattern=E164, description="E.164, e.g. +628111000200.")

    @model_validator(mode="after")
    def _named(self) -> TenantUpdate:
        _not_null(self, "name", "status")
        return self


class PlatformTenantUpdate(TenantUpdate):
    status: Literal["active", "suspended"] | None = Field(
        None, description="suspended: its staff cannot sign in and its numbers are not answered."
    )


class TenantCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(pattern=SLUG, description="Lowercase letters, digits and inner hyphens; unique.")
    timezone: str = Field("Asia/Jakarta", description="IANA zone: billing periods and business hours.")
    default_language: Language = "id"
    contact_name: str | None = Field(None, max_length=200)
    contact_email: str | None = Field(None, max_length=254, pattern=EMAIL)
    contact_phone: str | None = Field(None, pattern=E164)
    plan: Plan = "starter"
    owner_email: str = Field(max_length=254, pattern=EMAIL, description="The first owner: invited at once.")
    owner_name: str | None = Field(None, max_length=200)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value not in available_timezones():
            raise ValueError(f"{value!r} is not an IANA time zone")
        return value


class MemberView(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str | None
    role: Literal["owner", "admin", "agent", "viewer"]
    outlet_id: uuid.UUID | None
    created_at: datetime


class TenantCreated(BaseModel):
    tenant: TenantView
    owner: MemberView
    owner_sign_in_link: str | None = Field(description="Give it to the owner: it signs them in.")


class TenantPath(BaseModel):
    tenant_id: uuid.UUID


def create_tenant(operator: Operator, body: TenantCreate) -> TenantCreated:
    """Operators: a new business with its plan and first owner."""
    values = body.model_dump(exclude={"plan", "owner_email", "owner_name"})
    try:
        created = tenants.create(values, body.plan, body.owner_email, body.owner_name, operator.firebase_uid)
    except (tenants.TenantError, members.MemberError) as error:
        raise _refuse(error) from error
    return TenantCreated.model_validate(created)


def platform_get_tenant(operator: Operator, path: TenantPath) -> TenantView:
    """Operators: any tenant."""
    del operator
    try:
        return TenantView.model_validate(tenants.get(path.tenant_id))
    except tenants.TenantError as error:
        raise _refuse(error) from error


def platform_update_tenant(operator: Operator, path: TenantPath, body: PlatformTenantUpdate) -> TenantView:
    """Operators: name, contact or status (suspend a tenant, or make it active again)."""
    del operator
    try:
        return TenantView.model_validate(tenants.update(path.tenant_id, body.model_dump(exclude_unset=True)))
    except tenants.TenantError as error:
        raise _refuse(error) from error


def get_tenant(staff: Staff) -> TenantView:
    """The caller's business."""
    return TenantView.model_validate(tenants.get(staff.tenant_id))


def update_tenant(staff: Staff, body: TenantUpdate) -> TenantView:
    """The business's name and contact."""
    return TenantView.model_validate(tenants.update(staff.tenant_id, body.model_dump(exclude_unset=True)))


# Outlets ---------------------------------------------------------------------------------


class OutletView(BaseModel):
    id: uuid.UUID
    name: str
    status: Literal["active", "disabled"]
    phone_number_id: str
    display_phone_number: str
    waba_id: str
    verified_name: str | None
    access_token_set: bool = Field(description="The token itself is never returned.")
    knowledge_base_ids: list[uuid.UUID] | None
    business_hours: BusinessHours | None
    created_at: datetime
    updated_at: datetime


class OutletList(BaseModel):
    outlets: list[OutletView]


class AccessToken(BaseModel):
    access_token: SecretStr = Field(
        description="A system-user access token with whatsapp_business_messaging and _management."
    )

    @field_validator("access_token")
    @classmethod
    def _plausible(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        if not 20 <= len(token) <= 2048 or any(c.isspace() for c in token):
            raise ValueError("not an access token: 20 to 2,048 characters without spaces")
        return value


class OutletConnect(AccessToken):
    name: str = Field(min_length=1, max_length=200)
    phone_number_id: str = Field(pattern=META_ID, description="From WhatsApp Manager: the number's id, not the number.")
    waba_id: str = Field(pattern=META_ID, description="The WhatsApp Business Account id.")


class OutletUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    knowledge_base_ids: list[uuid.UUID] | None = Field(
        None, max_length=50, description="Answer only from these; null: from all of the tenant's."
    )
    business_hours: BusinessHours | None = Field(None, description="null: always open.")

    @model_validator(mode="after")
    def _named(self) -> OutletUpdate:
        _not_null(self, "name")
        return self


class OutletPath(BaseModel):
    outlet_id: uuid.UUID


def _outlet(call: Any) -> OutletView:
    try:
        return OutletView.model_validate(call())
    except outlets.OutletError as error:
        raise _refuse(error) from error


def list_outlets(staff: Staff) -> OutletList:
    """The business's outlets."""
    return OutletList.model_validate({"outlets": outlets.list_outlets(staff.tenant_id)})


def connect_outlet(staff: Staff, body: OutletConnect) -> OutletView:
    """A new outlet, its WhatsApp number checked with Meta and subscribed to our webhook."""
    token = body.access_token.get_secret_value()
    return _outlet(lambda: outlets.connect(staff.tenant_id, body.name, body.phone_number_id, body.waba_id, token))


def update_outlet(staff: Staff, path: OutletPath, body: OutletUpdate) -> OutletView:
    """Name, knowledge bases, business hours."""
    changes = body.model_dump(exclude_unset=True, mode="json")
    if body.business_hours is not None:
        changes["business_hours"] = body.business_hours.stored()
    if "knowledge_base_ids" in changes and body.knowledge_base_ids is not None:
        changes["knowledge_base_ids"] = body.knowledge_base_ids
    return _outlet(lambda: outlets.update(staff.tenant_id, path.outlet_id, changes))


def replace_access_token(staff: Staff, path: OutletPath, body: AccessToken) -> OutletView:
    """A new access token for the outlet's number, checked with Meta first."""
    token = body.access_token.get_secret_value()
    return _outlet(lambda: outlets.reconnect(staff.tenant_id, path.outlet_id, token))


def deactivate_outlet(staff: Staff, path: OutletPath) -> OutletView:
    """Stop answering the outlet's number."""
    return _outlet(lambda: outlets.set_active(staff.tenant_id, path.outlet_id, False))


def activate_outlet(staff: Staff, path: OutletPath) -> OutletView:
    """Answer the outlet's number again (counts against the plan's outlets)."""
    return _outlet(lambda: outlets.set_active(staff.tenant_id, path.outlet_id, True))


# Assistant settings ----------------------------------------------------------------------


class PerLanguage(BaseModel):
    id: str | None = Field(None, min_length=1, max_length=1000)
    en: str | None = Field(None, min_length=1, max_length=1000)


class AssistantSettings(BaseModel):
    tone: str | None = Field(None, max_length=300, examples=["friendly, warm and concise"])
    reply_language: Literal["auto", "id", "en"] | None = Field(
        None, description="auto (or null): the customer's language."
    )
    fallback_reply: PerLanguage | None = Field(None, description="When the documents do not answer.")
    handoff_notice: PerLanguage | None = Field(None, description="When staff take over.")
    handoff_keywords: list[str] | None = Field(None, max_length=50, description="Words that ask for a person.")
    read_receipts: bool | None = None
    typing_indicator: bool | None = None

    @field_validator("handoff_keywords")
    @classmethod
    def _keywords(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not 1 <= len(k.strip()) <= 60 for k in value):
            raise ValueError("each keyword is 1 to 60 characters")
        return value


def get_assistant_settings(staff: Staff) -> AssistantSettings:
    """How the AI answers: tone, language, fallback and handoff texts, keywords, receipts."""
    return AssistantSettings.model_validate(tenants.assistant_settings(staff.tenant_id))


def update_assistant_settings(staff: Staff, body: AssistantSettings) -> AssistantSettings:
    """Change the given settings; one set to null goes back to the default."""
    changes = body.model_dump(exclude_unset=True, mode="json")
    return AssistantSettings.model_validate(tenants.update_assistant_settings(staff.tenant_id, changes))


# Staff ----------------------------------------------------------------------------------


Role = Literal["owner", "admin", "agent", "viewer"]


class MemberList(BaseModel):
    staff: list[MemberView]


class Invite(BaseModel):
    email: str = Field(max_length=254, pattern=EMAIL)
    display_name: str | None = Field(None, max_length=200)
    role: Role
    outlet_id: uuid.UUID | None = Field(None, description="An agent only: scoped to this outlet.")


class Invitation(BaseModel):
    member: MemberView
    sign_in_link: str | None = Field(description="Give it to them: it signs them in (no email is sent).")
    created: bool = Field(description="False: they were staff already; nothing changed.")


class MemberChange(BaseModel):
    role: Role | None = Field(None, description="Left out: unchanged.")
    outlet_id: uuid.UUID | None = Field(None, description="For an agent; null: every outlet; left out: unchanged.")

    @model_validator(mode="after")
    def _role_given(self) -> MemberChange:
        _not_null(self, "role")
        return self


class MemberPath(BaseModel):
    user_id: uuid.UUID


class Removed(BaseModel):
    id: uuid.UUID


def _may_grant(staff: Staff, role: str | None) -> None:
    if role == "owner" and staff.role != "owner":
        raise ApiError(403, "only an owner may make an owner")


def list_staff(staff: Staff) -> MemberList:
    """Everyone who works for the business, and as what."""
    return MemberList.model_validate({"staff": members.list_members(staff.tenant_id)})


def invite_staff(staff: Staff, body: Invite) -> Invitation:
    """A new staff login: returns the sign-in link to give them."""
    _may_grant(staff, body.role)
    try:
        invited = members.invite(staff.tenant_id, body.email, body.display_name, body.role, body.outlet_id)
    except members.MemberError as error:
        raise _refuse(error) from error
    return Invitation(
        member=MemberView.model_validate(invited.member), sign_in_link=invited.sign_in_link, created=invited.created
    )


def change_staff(staff: Staff, path: MemberPath, body: MemberChange) -> MemberView:
    """A new role or outlet: their sessions end, and they sign in again with the new access."""
    _may_grant(staff, body.role)
    try:
        changed = members.change(staff.tenant_id, path.user_id, staff.role, body.model_dump(exclude_unset=True))
    except members.MemberError as error:
        raise _refuse(error) from error
    return MemberView.model_validate(changed)


def remove_staff(staff: Staff, path: MemberPath) -> Removed:
    """Remove them: login disabled, every session revoked at once."""
    try:
        members.remove(staff.tenant_id, path.user_id, staff.role)
    except members.MemberError as error:
        raise _refuse(error) from error
    return Removed(id=path.user_id)


# Audit log -------------------------------------------------------------------------------


class AuditEntry(BaseModel):
    id: uuid.UUID
    actor_type: Literal["user", "system", "platform"]
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    created_at: datetime


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_cursor: str | None


class AuditQuery(BaseModel):
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=200)
    action: str | None = Field(None, max_length=100, description="Only this action, e.g. conversation.read.")


def list_audit_log(staff: Staff, query: AuditQuery) -> AuditPage:
    """Who did what in the business, newest first."""
    from sqlalchemy import select

    with tenant_session(staff.tenant_id) as session:
        entries = select(AuditLogEntry)
        if query.action:
            entries = entries.where(AuditLogEntry.action == query.action)
        after = decode_cursor(query.cursor)
        rows = paging.newest_first(session, entries, AuditLogEntry.created_at, AuditLogEntry.id, after, query.limit + 1)
    page = rows[: query.limit]
    cursor = encode_cursor((page[-1].created_at, page[-1].id)) if len(rows) > query.limit else None
    return AuditPage(entries=[AuditEntry.model_validate(e, from_attributes=True) for e in page], next_cursor=cursor)


PLATFORM_TENANT = "/api/v1/platform/tenants/<uuid:tenant_id>"
OUTLET = "/api/v1/outlets/<uuid:outlet_id>"
MEMBER = "/api/v1/staff/<uuid:user_id>"
SETTINGS = "/api/v1/settings/assistant"
api = StaffApi(
    "tenant-api",
    "A business, its outlets and WhatsApp numbers, staff, the assistant's settings and audit log; "
    "operators create tenants. Authenticate with a Firebase ID token.",
    [
        Route("POST", "/api/v1/platform/tenants", create_tenant, OPERATORS, status=201, errors=(409,)),
        Route("GET", PLATFORM_TENANT, platform_get_tenant, OPERATORS),
        Route("PATCH", PLATFORM_TENANT, platform_update_tenant, OPERATORS, audit="tenant.update"),
        Route("GET", "/api/v1/tenant", get_tenant, EVERY_ROLE),
        Route("PATCH", "/api/v1/tenant", update_tenant, MANAGING_ROLES, audit="tenant.update"),
        Route("GET", "/api/v1/outlets", list_outlets, EVERY_ROLE),
        Route("POST", "/api/v1/outlets", connect_outlet, MANAGING_ROLES, 201, (409, 422, 503), audit="outlet.connect"),
        Route("PATCH", OUTLET, update_outlet, MANAGING_ROLES, audit="outlet.update"),
        Route(
            "PUT", f"{OUTLET}/access-token", replace_access_token, MANAGING_ROLES, 200, (422, 503), audit="outlet.token"
        ),
        Route("POST", f"{OUTLET}/deactivate", deactivate_outlet, MANAGING_ROLES, audit="outlet.deactivate"),
        Route("POST", f"{OUTLET}/activate", activate_outlet, MANAGING_ROLES, errors=(409,), audit="outlet.activate"),
        Route("GET", SETTINGS, get_assistant_settings, EVERY_ROLE),
        Route(
            "PATCH", "/api/v1/settings/assistant", update_assistant_settings, MANAGING_ROLES, audit="settings.update"
        ),
        Route("GET", "/api/v1/staff", list_staff, MANAGING_ROLES, audit="staff.list"),
        Route("POST", "/api/v1/staff", invite_staff, MANAGING_ROLES, 201, (409,), audit="staff.invite"),
        Route("PATCH", MEMBER, change_staff, MANAGING_ROLES, errors=(409,), audit="staff.change"),
        Route("DELETE", MEMBER, remove_staff, MANAGING_ROLES, errors=(409,), audit="staff.remove"),
        Route("GET", "/api/v1/audit-log", list_audit_log, MANAGING_ROLES),
    ],
    rate_limit=limits.requests_per_minute,
)
