"""What staff do to a conversation from the dashboard: take it over, write to the customer,
hand it back to the AI, resolve it.

Dashboards read through Firestore; they act through this HTTP API. The caller is who their
Firebase ID token says, and their tenant, role and outlet come from our users table, not
from the token's claims: a token whose claims were edited still acts for its real tenant.
A conversation of another tenant, or of another outlet for an outlet-scoped agent, is
simply not found (404), never "forbidden", so ids cannot be probed.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from shared import conversations, logs
from shared.config import settings
from shared.db import platform
from shared.db.models import Conversation
from shared.db.tenancy import tenant_session

log = logging.getLogger(__name__)

ACTING_ROLES = frozenset({"owner", "admin", "agent"})  # viewers only read
MAX_TEXT = 4096  # WhatsApp's limit for a text message body
_ROUTE = re.compile(r"^/conversations/(?P<id>[0-9a-fA-F-]{36})/(?P<action>take-over|messages|return-to-ai|resolve)$")
Response = tuple[dict[str, Any], int]


@dataclass(frozen=True, slots=True)
class Staff:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    outlet_id: uuid.UUID | None


class Unauthorized(Exception):
    """No valid Firebase ID token, or a Firebase user who is nobody's staff."""


@cache
def _firebase_app() -> Any:
    import firebase_admin

    return firebase_admin.initialize_app(options={"projectId": settings().google_cloud_project}, name="agent-api")


def authenticate(authorization: str | None) -> Staff:
    from firebase_admin import auth

    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("send Authorization: Bearer <Firebase ID token>")
    try:
        claims = auth.verify_id_token(authorization.removeprefix("Bearer ").strip(), app=_firebase_app())
    except Exception as exc:  # expired, revoked, malformed, wrong project: all the same to the caller
        raise Unauthorized("invalid ID token") from exc
    route = platform.user_for_firebase_uid(str(claims["uid"]))
    if route is None or route.tenant_status != "active":
        raise Unauthorized("this login is not staff of an active tenant")
    return Staff(route.user_id, route.tenant_id, route.role, route.outlet_id)


def handle(request: Any) -> Response:
    if request.method != "POST":
        return {"error": "method not allowed"}, 405
    try:
        staff = authenticate(request.headers.get("Authorization"))
    except Unauthorized as exc:
        return {"error": str(exc)}, 401
    with logs.tenant_scope(staff.tenant_id):
        if staff.role not in ACTING_ROLES:
            return {"error": f"a {staff.role} cannot act on conversations"}, 403
        route = _ROUTE.match(request.path)
        if route is None:
            return {"error": "no such action"}, 404
        conversation_id = uuid.UUID(route["id"])
        if not _visible(staff, conversation_id):
            return {"error": "no such conversation"}, 404
        return _act(staff, conversation_id, route["action"], request.get_json(silent=True))


def _visible(staff: Staff, conversation_id: uuid.UUID) -> bool:
    with tenant_session(staff.tenant_id) as session:
        conversation = session.get(Conversation, conversation_id)
        return conversation is not None and staff.outlet_id in (None, conversation.outlet_id)


def _act(staff: Staff, conversation_id: uuid.UUID, action: str, body: Any) -> Response:
    tenant, user = staff.tenant_id, staff.user_id
    if action == "messages":
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            return {"error": f'send {{"text": ...}} with 1 to {MAX_TEXT} characters'}, 400
        message_id = conversations.queue_agent_message(tenant, conversation_id, text, user)
        return {"message_id": str(message_id), "status": "queued"}, 202
    done = {
        "take-over": conversations.take_over,
        "return-to-ai": conversations.return_to_ai,
        "resolve": conversations.resolve,
    }[action](tenant, conversation_id, user)
    if not done:
        return {"error": f"cannot {action} a conversation in its current state"}, 409
    log.info("agent action", extra={"action": action, "conversation_id": str(conversation_id)})
    return {"conversation_id": str(conversation_id), "action": action}, 200
