"""What staff do to a conversation from the dashboard: take it over, write to the customer
(text, media by id, or a template once the 24-hour window has closed), hand it back to the
AI, resolve it.

Dashboards read through Firestore; they act through this HTTP API. The caller is who their
Firebase ID token says, and their tenant, role and outlet come from our users table, not
from the token's claims: a token whose claims were edited still acts for its real tenant.
A conversation of another tenant, or of another outlet for an outlet-scoped agent, is
simply not found (404), never "forbidden", so ids cannot be probed. A dashboard that retries
a message it is not sure went out sends the same `Idempotency-Key`: the customer gets it once.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from shared.cloud import logs
from shared.cloud.settings import settings
from shared.conversations import dashboard
from shared.conversations.staff import AgentMessage, queue_agent_message, resolve, return_to_ai, take_over
from shared.db import platform
from shared.db.models import Conversation
from shared.db.tenancy import tenant_session
from shared.whatsapp.graph import CAPTIONED_MEDIA_TYPES, MEDIA_TYPES
from shared.whatsapp.window import window_open

log = logging.getLogger(__name__)

ACTING_ROLES = frozenset({"owner", "admin", "agent"})  # viewers only read
MAX_TEXT = 4096  # WhatsApp's limit for a text message body
MAX_CAPTION = 1024  # and for a media caption
MAX_FILENAME = 240
MAX_COMPONENTS = 10  # header, body, buttons: a template has a handful at most
WINDOW_CLOSED = (
    "the customer last wrote more than 24 hours ago: WhatsApp delivers only an approved template until they write again"
)
_MEDIA_ID = _IDEMPOTENCY_KEY = re.compile(r"^[0-9A-Za-z_.:-]{1,128}$")
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
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
        conversation = _visible(staff, uuid.UUID(route["id"]))
        if conversation is None:
            return {"error": "no such conversation"}, 404
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.match(key):
            return {"error": "Idempotency-Key must be 1 to 128 letters, digits, '-', '_', '.' or ':'"}, 400
        return _act(staff, conversation, route["action"], request.get_json(silent=True), key)


def _visible(staff: Staff, conversation_id: uuid.UUID) -> Conversation | None:
    with tenant_session(staff.tenant_id) as session:
        conversation = session.get(Conversation, conversation_id)
    return conversation if conversation is not None and staff.outlet_id in (None, conversation.outlet_id) else None


def _act(staff: Staff, conversation: Conversation, action: str, body: Any, key: str | None) -> Response:
    tenant, user, conversation_id = staff.tenant_id, staff.user_id, conversation.id
    if action == "messages":
        try:
            content = agent_message(body)
        except ValueError as exc:
            return {"error": str(exc)}, 400
        if content.needs_window and not window_open(conversation.last_customer_message_at):
            return {"error": WINDOW_CLOSED, "code": 131047}, 409
        message_id = queue_agent_message(tenant, conversation_id, content, user, key)
        return {"message_id": str(message_id), "status": "queued"}, 202
    done = {
        "take-over": take_over,
        "return-to-ai": return_to_ai,
        "resolve": resolve,
    }[action](tenant, conversation_id, user)
    if not done:
        # Often a retry whose first attempt changed the state and then failed to tell the
        # dashboard: show it the state that stands, so it stops offering the action.
        dashboard.mirror(tenant, conversation_id)
        return {"error": f"cannot {action} a conversation in its current state"}, 409
    log.info("agent action", extra={"action": action, "conversation_id": str(conversation_id)})
    return {"conversation_id": str(conversation_id), "action": action}, 200


def agent_message(body: Any) -> AgentMessage:
    """Check a `messages` body before anything is stored: exactly one of
    {"text": "..."}, {"media": {"type", "id", "caption"?, "filename"?}} or
    {"template": {"name", "language", "components"?}}. ValueError says what is wrong."""
    kinds = [kind for kind in ("text", "media", "template") if isinstance(body, dict) and kind in body]
    if len(kinds) != 1:
        raise ValueError('send exactly one of {"text": ...}, {"media": {...}} or {"template": {...}}')
    value = body[kinds[0]]
    if kinds[0] == "text":
        return AgentMessage("text", _text(value, "text", MAX_TEXT))
    if not isinstance(value, dict):
        raise ValueError(f"{kinds[0]} must be an object")
    if kinds[0] == "media":
        return _media(value)
    return _template(value)


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValueError(f"{name} must be text of 1 to {limit} characters")
    return value


def _media(value: dict[str, Any]) -> AgentMessage:
    media_type, media_id = value.get("type"), value.get("id")
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"media.type must be one of {', '.join(sorted(MEDIA_TYPES))}")
    if not isinstance(media_id, str) or not _MEDIA_ID.match(media_id):
        raise ValueError("media.id must be the id WhatsApp gave the uploaded media")
    caption = value.get("caption")
    if caption is not None:
        if media_type not in CAPTIONED_MEDIA_TYPES:
            raise ValueError(f"WhatsApp allows no caption on {media_type}")
        caption = _text(caption, "media.caption", MAX_CAPTION)
    payload: dict[str, Any] = {"media_id": media_id}
    if value.get("filename") is not None:
        if media_type != "document":
            raise ValueError("only a document has a filename")
        payload["filename"] = _text(value["filename"], "media.filename", MAX_FILENAME)
    return AgentMessage(media_type, caption, payload)


def _template(value: dict[str, Any]) -> AgentMessage:
    name, language, components = value.get("name"), value.get("language"), value.get("components")
    if not isinstance(name, str) or not _TEMPLATE_NAME.match(name):
        raise ValueError("template.name must be an approved template's name (lowercase letters, digits, _)")
    if not isinstance(language, str) or not _LANGUAGE.match(language):
        raise ValueError('template.language must be the template\'s language code, e.g. "id" or "en_US"')
    payload: dict[str, Any] = {"template": name, "language": language}
    if components is not None:
        if (
            not isinstance(components, list)
            or not components
            or len(components) > MAX_COMPONENTS
            or not all(isinstance(c, dict) and isinstance(c.get("type"), str) for c in components)
        ):
            raise ValueError(f"template.components must be 1 to {MAX_COMPONENTS} objects, each with a type")
        payload["components"] = components
    return AgentMessage("template", None, payload)
