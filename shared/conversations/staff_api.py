"""The agent-actions API: staff read conversations and act on them (take over, write to the
customer, hand back to the AI, resolve). Dashboards with Firestore listeners read there; any
client can read here, from the same documents.

A conversation of another tenant, or of another outlet for an outlet-scoped agent, is simply
not found (404), never "forbidden", so ids cannot be probed. A dashboard that retries a
message it is not sure went out sends the same `Idempotency-Key`: the customer gets it once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from shared.api.auth import ACTING_ROLES, EVERY_ROLE, Staff
from shared.api.errors import WINDOW_CLOSED, ApiError
from shared.api.pages import decode_cursor, encode_cursor
from shared.api.routes import Route, StaffApi
from shared.billing import limits
from shared.conversations import dashboard, inbox
from shared.conversations.staff import AgentMessage, queue_agent_message, resolve, return_to_ai, take_over
from shared.db.models import CONVERSATION_STATUSES
from shared.whatsapp.graph import CAPTIONED_MEDIA_TYPES, MEDIA_TYPES

log = logging.getLogger(__name__)

MAX_TEXT = 4096  # WhatsApp's limit for a text message body
MAX_CAPTION = 1024  # and for a media caption
MAX_FILENAME = 240
MAX_COMPONENTS = 10  # header, body, buttons: a template has a handful at most
PAGE_SIZE, MAX_PAGE_SIZE = 50, 100
WINDOW_CLOSED_MESSAGE = (
    "the customer last wrote more than 24 hours ago: WhatsApp delivers only an approved template until they write again"
)
ConversationStatus = Literal["active", "handed_off", "resolved", "expired"]
Action = Literal["take-over", "return-to-ai", "resolve"]
assert set(ConversationStatus.__args__) == set(CONVERSATION_STATUSES)  # type: ignore[attr-defined]


# Requests


class ConversationPath(BaseModel):
    conversation_id: uuid.UUID


class IdempotencyHeader(BaseModel):
    idempotency_key: str | None = Field(
        None,
        alias="Idempotency-Key",
        pattern=r"^[0-9A-Za-z_.:-]{1,128}$",
        description="Send the same key when retrying a message you are not sure went out: it goes out once.",
    )


class ConversationsQuery(BaseModel):
    outlet_id: uuid.UUID | None = None
    status: ConversationStatus | None = None
    limit: int = Field(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=256, description="`next_cursor` of the page before.")


class MessagesQuery(BaseModel):
    limit: int = Field(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=256, description="`next_cursor` of the page before.")


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must not be blank")
    return value


class Media(BaseModel):
    """Media already uploaded to WhatsApp, by the id it gave."""

    type: str = Field(json_schema_extra={"enum": list[JsonValue](sorted(MEDIA_TYPES))})
    id: str = Field(pattern=r"^[0-9A-Za-z_.:-]{1,128}$", description="The id WhatsApp gave the uploaded media.")
    caption: str | None = Field(None, min_length=1, max_length=MAX_CAPTION)
    filename: str | None = Field(None, min_length=1, max_length=MAX_FILENAME)

    _blank = field_validator("caption", "filename")(_not_blank)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in MEDIA_TYPES:
            raise ValueError(f"must be one of {', '.join(sorted(MEDIA_TYPES))}")
        return value

    @model_validator(mode="after")
    def _fits_the_type(self) -> Media:
        if self.caption is not None and self.type not in CAPTIONED_MEDIA_TYPES:
            raise ValueError(f"WhatsApp allows no caption on {self.type}")
        if self.filename is not None and self.type != "document":
            raise ValueError("only a document has a filename")
        return self


class TemplateComponent(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str


class Template(BaseModel):
    """An approved template: the one kind WhatsApp delivers once the 24-hour window closed."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$", description="The approved template's name.")
    language: str = Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$", description='Its language code, e.g. "id" or "en_US".')
    components: list[TemplateComponent] | None = Field(None, min_length=1, max_length=MAX_COMPONENTS)


class AgentMessageBody(BaseModel):
    """Exactly one of `text`, `media` or `template`."""

    text: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    media: Media | None = None
    template: Template | None = None

    _blank = field_validator("text")(_not_blank)

    @model_validator(mode="after")
    def _exactly_one(self) -> AgentMessageBody:
        if sum(part is not None for part in (self.text, self.media, self.template)) != 1:
            raise ValueError('send exactly one of {"text": ...}, {"media": {...}} or {"template": {...}}')
        return self

    def content(self) -> AgentMessage:
        if self.media is not None:
            payload: dict[str, Any] = {"media_id": self.media.id}
            if self.media.filename is not None:
                payload["filename"] = self.media.filename
            return AgentMessage(self.media.type, self.media.caption, payload)
        if self.template is not None:
            template: dict[str, Any] = {"template": self.template.name, "language": self.template.language}
            if self.template.components is not None:
                template["components"] = [c.model_dump() for c in self.template.components]
            return AgentMessage("template", None, template)
        return AgentMessage("text", self.text)


# Responses: the documents the dashboard mirror writes to Firestore


class CustomerView(BaseModel):
    id: uuid.UUID
    name: str | None
    username: str | None
    phone: str | None
    bsuid: str | None


class ConversationView(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    outlet_id: uuid.UUID
    status: ConversationStatus
    handoff_reason: str | None
    customer: CustomerView
    last_message: str | None
    last_message_at: datetime | None
    window_expires_at: datetime | None = Field(description="When free-form messages stop being delivered.")
    updated_at: datetime


class MessageView(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    outlet_id: uuid.UUID
    conversation_id: uuid.UUID
    direction: Literal["inbound", "outbound"]
    sender_type: Literal["customer", "llm", "agent", "system"]
    type: str
    body: str | None
    template: str | None
    status: str
    error_code: int | None
    error_title: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None


class ConversationPage(BaseModel):
    conversations: list[ConversationView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class ConversationDetail(BaseModel):
    conversation: ConversationView
    messages: list[MessageView] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for older messages; null when there are none.")


class MessageQueued(BaseModel):
    message_id: uuid.UUID
    status: Literal["queued"]


class ActionDone(BaseModel):
    conversation_id: uuid.UUID
    action: Action


# Handlers


def _outlets(staff: Staff, asked: uuid.UUID | None = None) -> tuple[uuid.UUID, ...] | None:
    """The outlets a read may cover: the asked one, within the staff member's own scope."""
    if staff.outlet_id is None:
        return None if asked is None else (asked,)
    return (staff.outlet_id,) if asked in (None, staff.outlet_id) else ()


def _visible(staff: Staff, conversation_id: uuid.UUID) -> dict[str, Any]:
    found = inbox.conversation(staff.tenant_id, conversation_id, outlet_ids=_outlets(staff))
    if found is None:
        raise ApiError(404, "no such conversation")
    return found


def list_conversations(staff: Staff, query: ConversationsQuery) -> ConversationPage:
    """The conversations the caller may see, newest activity first."""
    page = inbox.conversations(
        staff.tenant_id,
        outlet_ids=_outlets(staff, query.outlet_id),
        status=query.status,
        limit=query.limit,
        after=decode_cursor(query.cursor),
    )
    return ConversationPage.model_validate(
        {"conversations": page.items, "next_cursor": encode_cursor(page.last) if page.last else None}
    )


def get_conversation(staff: Staff, path: ConversationPath, query: MessagesQuery) -> ConversationDetail:
    """One conversation with a page of its messages, newest first."""
    conversation = _visible(staff, path.conversation_id)
    page = inbox.messages(staff.tenant_id, path.conversation_id, limit=query.limit, after=decode_cursor(query.cursor))
    return ConversationDetail.model_validate(
        {
            "conversation": conversation,
            "messages": page.items,
            "next_cursor": encode_cursor(page.last) if page.last else None,
        }
    )


def send_message(
    staff: Staff, path: ConversationPath, header: IdempotencyHeader, body: AgentMessageBody
) -> MessageQueued:
    """Write to the customer (text and media only within the 24-hour window; templates always)."""
    conversation = _visible(staff, path.conversation_id)
    content = body.content()
    closes = conversation["window_expires_at"]
    if content.needs_window and (closes is None or closes <= datetime.now(UTC)):
        raise ApiError(409, WINDOW_CLOSED_MESSAGE, WINDOW_CLOSED, [{"whatsapp_code": 131047}])
    message_id = queue_agent_message(
        staff.tenant_id, path.conversation_id, content, staff.user_id, header.idempotency_key
    )
    return MessageQueued(message_id=message_id, status="queued")


def _act(staff: Staff, conversation_id: uuid.UUID, action: Action) -> ActionDone:
    _visible(staff, conversation_id)
    done = {"take-over": take_over, "return-to-ai": return_to_ai, "resolve": resolve}[action](
        staff.tenant_id, conversation_id, staff.user_id
    )
    if not done:
        # Often a retry whose first attempt changed the state and then failed to tell the
        # dashboard: show it the state that stands, so it stops offering the action.
        dashboard.mirror(staff.tenant_id, conversation_id)
        raise ApiError(409, f"cannot {action} a conversation in its current state")
    log.info("agent action", extra={"action": action, "conversation_id": str(conversation_id)})
    return ActionDone(conversation_id=conversation_id, action=action)


def take_over_conversation(staff: Staff, path: ConversationPath) -> ActionDone:
    """Take an active conversation from the AI: it stays silent until handed back."""
    return _act(staff, path.conversation_id, "take-over")


def return_conversation_to_ai(staff: Staff, path: ConversationPath) -> ActionDone:
    """Hand a conversation an agent has back to the AI."""
    return _act(staff, path.conversation_id, "return-to-ai")


def resolve_conversation(staff: Staff, path: ConversationPath) -> ActionDone:
    """Close the conversation; the customer's next message opens a fresh one."""
    return _act(staff, path.conversation_id, "resolve")


CONVERSATION = "/conversations/<uuid:conversation_id>"
api = StaffApi(
    "agent-actions",
    "Staff read conversations and act on them. Authenticate with a Firebase ID token.",
    [
        Route("GET", "/conversations", list_conversations, EVERY_ROLE, audit="conversation.list"),
        Route("GET", CONVERSATION, get_conversation, EVERY_ROLE, audit="conversation.read"),
        Route("POST", f"{CONVERSATION}/take-over", take_over_conversation, ACTING_ROLES, errors=(409,)),
        Route("POST", f"{CONVERSATION}/messages", send_message, ACTING_ROLES, status=202, errors=(409,)),
        Route("POST", f"{CONVERSATION}/return-to-ai", return_conversation_to_ai, ACTING_ROLES, errors=(409,)),
        Route("POST", f"{CONVERSATION}/resolve", resolve_conversation, ACTING_ROLES, errors=(409,)),
    ],
    rate_limit=limits.requests_per_minute,
)
