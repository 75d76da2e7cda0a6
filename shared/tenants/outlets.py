"""Outlets and their WhatsApp numbers.

Connecting a number does what Meta needs, before anything is stored: the access token must
read the number (`GET /{phone-number-id}`), and our app is subscribed to the business
account's webhooks (`POST /{waba-id}/subscribed_apps`). Only then is the token encrypted
(Cloud KMS in production) and the outlet written; the webhook routes the number from that
moment (unknown numbers are never cached). The token is never returned or logged.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.billing import limits
from shared.cloud import outbound
from shared.cloud.settings import settings
from shared.db.models import KnowledgeBase, Outlet, Tenant
from shared.db.tenancy import tenant_session
from shared.sending.access_tokens import encrypt_access_token
from shared.whatsapp.errors import AccessTokenInvalid, GraphError, GraphNetworkError, InvalidParameter, PermissionDenied
from shared.whatsapp.graph import GraphClient

log = logging.getLogger(__name__)
_session = outbound.session()


class OutletError(Exception):
    """Refused: `status` 404 (not this tenant's), 409 (number taken), 422 (Meta said no), 503."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def outlet_view(outlet: Outlet) -> dict[str, Any]:
    return {
        "id": outlet.id,
        "name": outlet.name,
        "status": outlet.status,
        "phone_number_id": outlet.phone_number_id,
        "display_phone_number": outlet.display_phone_number,
        "waba_id": outlet.waba_id,
        "verified_name": outlet.settings.get("verified_name"),
        "access_token_set": outlet.access_token_ciphertext is not None,
        "knowledge_base_ids": outlet.settings.get("knowledge_base_ids"),
        "business_hours": outlet.settings.get("business_hours"),
        "created_at": outlet.created_at,
        "updated_at": outlet.updated_at,
    }


def list_outlets(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    with tenant_session(tenant_id) as session:
        return [outlet_view(o) for o in session.scalars(select(Outlet).order_by(Outlet.created_at, Outlet.id))]


def _verify(phone_number_id: str, waba_id: str, access_token: str) -> dict[str, Any]:
    """Meta's view of the number with this token, and the webhook subscription; 422 or 503."""
    config = settings()
    graph = GraphClient(config.whatsapp_graph_api_url, config.whatsapp_graph_api_version, access_token, _session)
    try:
        number = graph.phone_number(phone_number_id)
        graph.subscribe_app(waba_id)
    except AccessTokenInvalid as error:
        raise OutletError(422, "Meta refused the access token (code 190): create a new system-user token") from error
    except (InvalidParameter, PermissionDenied) as error:
        raise OutletError(
            422, f"this token cannot see phone number {phone_number_id} or business account {waba_id} ({error.code})"
        ) from error
    except GraphNetworkError as error:
        raise OutletError(503, "Meta's Graph API could not be reached: try again") from error
    except GraphError as error:
        raise OutletError(422, f"Meta refused the connection: {error.title or error.code}") from error
    log.info("WhatsApp number verified", extra={"phone_number_id": phone_number_id})
    return number


def connect(tenant_id: uuid.UUID, name: str, phone_number_id: str, waba_id: str, access_token: str) -> dict[str, Any]:
    """A new outlet with its number connected; nothing is stored unless Meta accepts the token."""
    with tenant_session(tenant_id) as session:
        limits.check_new_outlet(session, session.get_one(Tenant, tenant_id))
    number = _verify(phone_number_id, waba_id, access_token)
    ciphertext = encrypt_access_token(access_token)
    try:
        with tenant_session(tenant_id) as session:
            limits.check_new_outlet(session, session.get_one(Tenant, tenant_id))  # again, under the lock
            outlet = Outlet(
                tenant_id=tenant_id,
                name=name,
                phone_number_id=phone_number_id,
                display_phone_number=str(number.get("display_phone_number") or phone_number_id),
                waba_id=waba_id,
                access_token_ciphertext=ciphertext,
                settings={"verified_name": number.get("verified_name")},
            )
            session.add(outlet)
            session.flush()
            session.refresh(outlet)
            return outlet_view(outlet)
    except IntegrityError as error:
        raise OutletError(409, "this WhatsApp number is already connected to an outlet") from error


def _outlet(session: Session, outlet_id: uuid.UUID) -> Outlet:
    outlet = session.get(Outlet, outlet_id, with_for_update=True)
    if outlet is None:
        raise OutletError(404, "no such outlet")
    return outlet


def reconnect(tenant_id: uuid.UUID, outlet_id: uuid.UUID, access_token: str) -> dict[str, Any]:
    """A new access token for the outlet's number (the old one expired or was rotated)."""
    with tenant_session(tenant_id) as session:
        outlet = _outlet(session, outlet_id)
        phone_number_id, waba_id = outlet.phone_number_id, outlet.waba_id
    _verify(phone_number_id, waba_id, access_token)
    ciphertext = encrypt_access_token(access_token)
    with tenant_session(tenant_id) as session:
        outlet = _outlet(session, outlet_id)
        outlet.access_token_ciphertext = ciphertext
        session.flush()
        session.refresh(outlet)
        return outlet_view(outlet)


def update(tenant_id: uuid.UUID, outlet_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
    """Name, the knowledge bases it answers from (null: all of the tenant's), business hours."""
    with tenant_session(tenant_id) as session:
        outlet = _outlet(session, outlet_id)
        if "name" in changes:
            outlet.name = changes["name"]
        outlet_settings = dict(outlet.settings)
        if "knowledge_base_ids" in changes:
            wanted = changes["knowledge_base_ids"]
            if wanted is not None:
                found = set(session.scalars(select(KnowledgeBase.id).where(KnowledgeBase.id.in_(wanted))))
                if found != set(wanted):
                    raise OutletError(404, "no such knowledge base")
                outlet_settings["knowledge_base_ids"] = [str(kb) for kb in wanted]
            else:
                outlet_settings.pop("knowledge_base_ids", None)
        if "business_hours" in changes:
            outlet_settings["business_hours"] = changes["business_hours"]
        outlet.settings = outlet_settings
        session.flush()
        session.refresh(outlet)
        return outlet_view(outlet)


def set_active(tenant_id: uuid.UUID, outlet_id: uuid.UUID, active: bool) -> dict[str, Any]:
    """Deactivate (its number's messages are no longer answered) or activate it again (the
    tier's outlet limit counts active outlets)."""
    with tenant_session(tenant_id) as session:
        outlet = _outlet(session, outlet_id)
        if active and outlet.status != "active":
            limits.check_new_outlet(session, session.get_one(Tenant, tenant_id))
        outlet.status = "active" if active else "disabled"
        session.flush()
        session.refresh(outlet)
        return outlet_view(outlet)
