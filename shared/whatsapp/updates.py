"""Typed events from a WhatsApp Cloud API webhook delivery.

One POST can carry several entries, each with several changes, each with messages and
statuses for one business phone number; every one of them becomes an event that carries its
`phone_number_id`, so the caller can route it to the outlet that owns that number.

Customers are identified by phone number and/or business-scoped user ID (BSUID): since the
2026 username rollout the phone may be absent, so neither is assumed. A single item we cannot
use (no identity, no id, bad timestamp) is reported in `rejected`; it never fails the batch.
Only a delivery whose top level is not a WhatsApp Business Account webhook raises.

Events survive a JSON round trip so they can travel through Pub/Sub unchanged:
`event.to_json_dict()` gives `{"kind": "message" | "status" | "identity_change", "data": {...}}`
and `event_from_json_dict` rebuilds the same dataclass.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import UnionType
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

WHATSAPP_OBJECT = "whatsapp_business_account"
MESSAGES_FIELD = "messages"

_MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
# Older payloads (and pywa) call a number change `customer_changed_number`: the same event.
_IDENTITY_CHANGE_TYPES = {
    "user_changed_number": "user_changed_number",
    "customer_changed_number": "user_changed_number",
    "user_changed_user_id": "user_changed_user_id",
}
# Body of a system message: "User <name> changed from <old> to <new>".
_SYSTEM_BODY = re.compile(r"^User (?P<name>.+?) changed from (?P<old>\S+) to (?P<new>\S+)\s*$")


class MalformedWebhook(ValueError):
    """The delivery is not a WhatsApp Business Account webhook at all."""


# Building blocks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerIdentity:
    """Who the customer is, as far as this payload tells: any field may be missing."""

    bsuid: str | None = None
    parent_bsuid: str | None = None
    phone: str | None = None
    username: str | None = None
    profile_name: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One entry of an `errors` array in a message or status."""

    code: int | None
    title: str | None = None
    message: str | None = None
    details: str | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """An image, audio, video, document or sticker; the bytes are fetched later by `id`."""

    id: str
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool = False


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Reaction:
    """A reaction to one of the conversation's messages; no emoji means it was removed."""

    message_id: str
    emoji: str | None


@dataclass(frozen=True, slots=True)
class InteractiveReply:
    """The customer tapped a reply button or list row (or answered a Flow: `nfm_reply`, kept raw)."""

    type: str
    id: str | None = None
    title: str | None = None
    description: str | None = None
    raw: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TemplateButton:
    """A quick-reply button of one of our templates was tapped."""

    payload: str | None
    text: str | None


@dataclass(frozen=True, slots=True)
class MessageContext:
    """What the message replies to, whether it was forwarded, or which product it asks about."""

    message_id: str | None = None
    from_phone: str | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False
    referred_product: dict[str, Any] | None = None


# Events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message a customer sent to one of our numbers.

    `supported` is False for types we do not understand (including future ones); `raw` then
    keeps the original so nothing the customer sent is lost.
    """

    event_kind: ClassVar[str] = "message"

    phone_number_id: str
    display_phone_number: str | None
    id: str
    timestamp: datetime
    type: str
    customer: CustomerIdentity
    supported: bool = True
    text: str | None = None
    media: Media | None = None
    location: Location | None = None
    reaction: Reaction | None = None
    interactive: InteractiveReply | None = None
    button: TemplateButton | None = None
    contacts: tuple[dict[str, Any], ...] = ()
    order: dict[str, Any] | None = None
    context: MessageContext | None = None
    referral: dict[str, Any] | None = None
    errors: tuple[ErrorDetail, ...] = ()
    raw: dict[str, Any] | None = None

    @property
    def text_for_ai(self) -> str | None:
        """What the assistant should read, or None when there is nothing to read."""
        if self.text is not None:
            return self.text
        if self.media is not None:
            return self.media.caption
        if self.button is not None:
            return self.button.text or self.button.payload
        if self.interactive is not None:
            return self.interactive.title
        if self.location is not None:
            place = ", ".join(part for part in (self.location.name, self.location.address) if part)
            coordinates = f"({self.location.latitude},{self.location.longitude})"
            return f"location: {place} {coordinates}" if place else f"location: {coordinates}"
        if self.reaction is not None:
            return self.reaction.emoji
        return None

    def to_json_dict(self) -> dict[str, Any]:
        return _tagged(self)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """What happened to a message we sent: sent, delivered, read, failed, or a newer status."""

    event_kind: ClassVar[str] = "status"

    phone_number_id: str
    display_phone_number: str | None
    id: str
    status: str
    timestamp: datetime
    recipient: CustomerIdentity
    conversation: dict[str, Any] | None = None
    pricing: dict[str, Any] | None = None
    errors: tuple[ErrorDetail, ...] = ()
    biz_opaque_callback_data: str | None = None

    @property
    def error_code(self) -> int | None:
        return self.errors[0].code if self.errors else None

    @property
    def error_title(self) -> str | None:
        return self.errors[0].title if self.errors else None

    def to_json_dict(self) -> dict[str, Any]:
        return _tagged(self)


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """The customer changed phone number or BSUID: re-key them, keep the conversation.

    `kind` is Meta's system type: `user_changed_number` (new phone, and a new BSUID
    since a BSUID is tied to the number) or `user_changed_user_id` (a new BSUID and no phone:
    Meta sends it when the user's number changed and may not be shared with us).
    """

    event_kind: ClassVar[str] = "identity_change"

    phone_number_id: str
    display_phone_number: str | None
    id: str
    timestamp: datetime
    kind: str
    old: CustomerIdentity
    new_phone: str | None = None
    new_bsuid: str | None = None
    new_parent_bsuid: str | None = None
    body: str | None = None

    @property
    def new(self) -> CustomerIdentity:
        """The customer after the change: the new identifiers, the old ones where unchanged.

        The BSUID is regenerated with a phone change, so a number change never keeps the old
        BSUID even when the webhook does not tell the new one. Either change ends the old
        phone number: it is someone else's now, or about to be, and is never written to again.
        """
        number_changed = self.kind == "user_changed_number"
        return CustomerIdentity(
            bsuid=self.new_bsuid or (None if number_changed else self.old.bsuid),
            parent_bsuid=self.new_parent_bsuid or (None if number_changed else self.old.parent_bsuid),
            phone=self.new_phone,
            username=self.old.username,
            profile_name=self.old.profile_name,
        )

    def to_json_dict(self) -> dict[str, Any]:
        return _tagged(self)


Event = InboundMessage | StatusUpdate | IdentityChange
_EVENT_CLASSES: dict[str, type[InboundMessage] | type[StatusUpdate] | type[IdentityChange]] = {
    cls.event_kind: cls for cls in (InboundMessage, StatusUpdate, IdentityChange)
}


@dataclass(frozen=True, slots=True)
class IgnoredChange:
    """A change for a webhook field we do not handle (templates, account updates, ...)."""

    field: str
    entry_id: str | None
    phone_number_id: str | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """One item we could not turn into an event, with why, for the logs."""

    reason: str
    phone_number_id: str | None
    raw: Any


@dataclass(frozen=True, slots=True)
class WebhookBatch:
    """Everything one delivery carried, events in payload order."""

    events: tuple[Event, ...]
    ignored: tuple[IgnoredChange, ...]
    rejected: tuple[Rejected, ...]

    @property
    def messages(self) -> tuple[InboundMessage, ...]:
        return tuple(e for e in self.events if isinstance(e, InboundMessage))

    @property
    def statuses(self) -> tuple[StatusUpdate, ...]:
        return tuple(e for e in self.events if isinstance(e, StatusUpdate))

    @property
    def identity_changes(self) -> tuple[IdentityChange, ...]:
        return tuple(e for e in self.events if isinstance(e, IdentityChange))


# Parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Change:
    phone_number_id: str
    display_phone_number: str | None
    contacts: tuple[Mapping[str, Any], ...]


class _Skip(Exception):
    """This one item is unusable; the message says why."""


def parse_webhook(payload: dict[str, Any]) -> WebhookBatch:
    """Parse a decoded webhook body; raises MalformedWebhook only for a wrong top level."""
    if not isinstance(payload, dict):
        raise MalformedWebhook(f"webhook body must be a JSON object, not {type(payload).__name__}")
    if payload.get("object") != WHATSAPP_OBJECT:
        raise MalformedWebhook(f"webhook object is {payload.get('object')!r}, expected {WHATSAPP_OBJECT!r}")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise MalformedWebhook(f"webhook entry must be a list, not {type(entries).__name__}")

    events: list[Event] = []
    ignored: list[IgnoredChange] = []
    rejected: list[Rejected] = []
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            rejected.append(Rejected("entry without a changes list", None, entry))
            continue
        entry_id = _str(entry.get("id"))
        for change in changes:
            _parse_change(change, entry_id, events, ignored, rejected)
    return WebhookBatch(tuple(events), tuple(ignored), tuple(rejected))


def _parse_change(
    change: Any,
    entry_id: str | None,
    events: list[Event],
    ignored: list[IgnoredChange],
    rejected: list[Rejected],
) -> None:
    if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
        rejected.append(Rejected("change without a value object", None, change))
        return
    value: dict[str, Any] = change["value"]
    metadata = _dict(value.get("metadata")) or {}
    phone_number_id = _str(metadata.get("phone_number_id"))
    field = _str(change.get("field")) or ""
    if field != MESSAGES_FIELD:
        ignored.append(IgnoredChange(field, entry_id, phone_number_id))
        return
    if phone_number_id is None:
        rejected.append(Rejected("messages change without metadata.phone_number_id", None, change))
        return

    contacts = value.get("contacts")
    ctx = _Change(
        phone_number_id=phone_number_id,
        display_phone_number=_str(metadata.get("display_phone_number")),
        contacts=tuple(c for c in contacts if isinstance(c, dict)) if isinstance(contacts, list) else (),
    )
    for key, parse in (("messages", _parse_message), ("statuses", _parse_status)):
        items = value.get(key, [])
        if not isinstance(items, list):
            rejected.append(Rejected(f"{key} is not a list", phone_number_id, items))
            continue
        for item in items:
            try:
                if not isinstance(item, dict):
                    raise _Skip(f"{key} item is not an object")
                events.append(parse(item, ctx))
            except _Skip as skip:
                rejected.append(Rejected(str(skip), phone_number_id, item))
    errors = value.get("errors")
    for raw_error in errors if isinstance(errors, list) else ():
        # Errors that concern the whole change rather than one message (rare).
        error = _error(raw_error)
        reason = f"webhook-level error {error.code}: {error.title or error.message}"
        rejected.append(Rejected(reason, phone_number_id, raw_error))


def _parse_message(msg: dict[str, Any], ctx: _Change) -> InboundMessage | IdentityChange:
    message_id = _str(msg.get("id"))
    if message_id is None:
        raise _Skip("message without an id")
    timestamp = _timestamp(msg.get("timestamp"))
    msg_type = _str(msg.get("type")) or "unknown"
    system = _dict(msg.get("system"))
    if msg_type == "system" and system is not None and _str(system.get("type")) in _IDENTITY_CHANGE_TYPES:
        return _identity_change(msg, system, message_id, timestamp, ctx)
    if msg.get("group_id") is not None:
        raise _Skip("a message in a WhatsApp group: groups are not handled (never answered one to one)")

    customer = _sender(msg, ctx.contacts)
    if customer.bsuid is None and customer.phone is None:
        raise _Skip("message has neither a phone number nor a business-scoped user ID")

    fields: dict[str, Any] = {}
    block = msg.get(msg_type)
    supported = _content(msg_type, block, fields)
    return InboundMessage(
        phone_number_id=ctx.phone_number_id,
        display_phone_number=ctx.display_phone_number,
        id=message_id,
        timestamp=timestamp,
        type=msg_type,
        customer=customer,
        supported=supported,
        context=_context(msg.get("context")),
        referral=_dict(msg.get("referral")),
        errors=_errors(msg.get("errors")),
        raw=None if supported else msg,
        **fields,
    )


def _content(msg_type: str, block: Any, fields: dict[str, Any]) -> bool:
    """Fill the type's field from its block; False when we cannot understand it."""
    if msg_type == "contacts":
        return _contacts(block, fields)
    if not isinstance(block, dict):
        return False
    if msg_type == "text":
        body = block.get("body")
        if isinstance(body, str):
            fields["text"] = body
            return True
        return False
    if msg_type in _MEDIA_TYPES:
        media_id = _str(block.get("id"))
        if media_id is None:
            return False
        fields["media"] = Media(
            id=media_id,
            mime_type=_str(block.get("mime_type")),
            sha256=_str(block.get("sha256")),
            caption=_str(block.get("caption")),
            filename=_str(block.get("filename")),
            voice=block.get("voice") is True,
        )
        return True
    if msg_type == "location":
        latitude, longitude = _float(block.get("latitude")), _float(block.get("longitude"))
        if latitude is None or longitude is None:
            return False
        fields["location"] = Location(
            latitude, longitude, name=_str(block.get("name")), address=_str(block.get("address"))
        )
        return True
    if msg_type == "reaction":
        target = _str(block.get("message_id"))
        if target is None:
            return False
        fields["reaction"] = Reaction(target, _str(block.get("emoji")))
        return True
    if msg_type == "interactive":
        return _interactive(block, fields)
    if msg_type == "button":
        fields["button"] = TemplateButton(_str(block.get("payload")), _str(block.get("text")))
        return True
    if msg_type == "order":
        fields["order"] = block
        return True
    return False  # unknown, future or system types: kept raw


def _contacts(block: Any, fields: dict[str, Any]) -> bool:
    if not isinstance(block, list) or not block:
        return False
    fields["contacts"] = tuple(c for c in block if isinstance(c, dict))
    return True


def _interactive(block: dict[str, Any], fields: dict[str, Any]) -> bool:
    kind = _str(block.get("type")) or "unknown"
    reply = block.get(kind)
    if not isinstance(reply, dict):
        return False
    if kind in ("button_reply", "list_reply"):
        fields["interactive"] = InteractiveReply(
            type=kind,
            id=_str(reply.get("id")),
            title=_str(reply.get("title")),
            description=_str(reply.get("description")),
        )
        return True
    fields["interactive"] = InteractiveReply(type=kind, raw=reply)
    return kind == "nfm_reply"


def _identity_change(
    msg: dict[str, Any], system: dict[str, Any], message_id: str, timestamp: datetime, ctx: _Change
) -> IdentityChange:
    kind = _IDENTITY_CHANGE_TYPES[str(system["type"])]
    body = _str(system.get("body"))
    from_body = _SYSTEM_BODY.match(body or "")
    old_bsuid = _str(system.get("previous_user_id")) or _str(msg.get("from_user_id"))
    if old_bsuid is None and kind == "user_changed_user_id" and from_body:
        old_bsuid = from_body.group("old")  # payloads from before previous_user_id existed
    old = CustomerIdentity(
        bsuid=old_bsuid,
        parent_bsuid=_str(system.get("previous_parent_user_id")) or _str(msg.get("from_parent_user_id")),
        phone=_str(msg.get("from")) or _str(system.get("customer")),
        profile_name=from_body.group("name") if from_body else None,
    )
    if old.bsuid is None and old.phone is None:
        raise _Skip(f"{kind} without the customer's previous phone number or BSUID")
    new_phone = _str(system.get("wa_id")) or _str(system.get("new_wa_id"))
    new_bsuid = _str(system.get("user_id"))
    if kind == "user_changed_user_id" and new_bsuid is None:
        raise _Skip("user_changed_user_id without the new BSUID (system.user_id)")
    if kind == "user_changed_number" and new_phone is None and new_bsuid is None:
        raise _Skip("user_changed_number without the new phone number (system.wa_id)")
    return IdentityChange(
        phone_number_id=ctx.phone_number_id,
        display_phone_number=ctx.display_phone_number,
        id=message_id,
        timestamp=timestamp,
        kind=kind,
        old=old,
        new_phone=new_phone if kind == "user_changed_number" else None,
        new_bsuid=new_bsuid,
        new_parent_bsuid=_str(system.get("parent_user_id")),
        body=body,
    )


def _parse_status(status: dict[str, Any], ctx: _Change) -> StatusUpdate:
    message_id = _str(status.get("id"))
    if message_id is None:
        raise _Skip("status without a message id")
    state = _str(status.get("status"))
    if state is None:
        raise _Skip("status without a status value")
    if status.get("recipient_type") == "group":
        raise _Skip("status of a message to a WhatsApp group: groups are not handled")
    phone = _str(status.get("recipient_id"))
    bsuid = _str(status.get("recipient_user_id"))
    contact = _match_contact(ctx.contacts, bsuid, phone)
    recipient = _merge(phone, bsuid, _str(status.get("recipient_parent_user_id")), contact)
    return StatusUpdate(
        phone_number_id=ctx.phone_number_id,
        display_phone_number=ctx.display_phone_number,
        id=message_id,
        status=state,
        timestamp=_timestamp(status.get("timestamp")),
        recipient=recipient,
        conversation=_dict(status.get("conversation")),
        pricing=_dict(status.get("pricing")),
        errors=_errors(status.get("errors")),
        biz_opaque_callback_data=_str(status.get("biz_opaque_callback_data")),
    )


def _sender(msg: Mapping[str, Any], contacts: Sequence[Mapping[str, Any]]) -> CustomerIdentity:
    phone = _str(msg.get("from"))
    bsuid = _str(msg.get("from_user_id"))
    contact = _match_contact(contacts, bsuid, phone)
    return _merge(phone, bsuid, _str(msg.get("from_parent_user_id")), contact)


def _match_contact(
    contacts: Sequence[Mapping[str, Any]], bsuid: str | None, phone: str | None
) -> Mapping[str, Any] | None:
    """The contacts[] entry describing this customer.

    Matched by BSUID or phone; a lone entry is taken when it contradicts neither.
    """
    for contact in contacts:
        if (bsuid and _str(contact.get("user_id")) == bsuid) or (phone and _str(contact.get("wa_id")) == phone):
            return contact
    if len(contacts) == 1:
        only = contacts[0]
        other_bsuid, other_phone = _str(only.get("user_id")), _str(only.get("wa_id"))
        if not (bsuid and other_bsuid and other_bsuid != bsuid) and not (
            phone and other_phone and other_phone != phone
        ):
            return only
    return None


def _merge(
    phone: str | None, bsuid: str | None, parent: str | None, contact: Mapping[str, Any] | None
) -> CustomerIdentity:
    if contact is None:
        return CustomerIdentity(bsuid=bsuid, parent_bsuid=parent, phone=phone)
    profile = _dict(contact.get("profile")) or {}
    return CustomerIdentity(
        bsuid=bsuid or _str(contact.get("user_id")),
        parent_bsuid=parent or _str(contact.get("parent_user_id")),
        phone=phone or _str(contact.get("wa_id")),
        username=_str(profile.get("username")),
        profile_name=_str(profile.get("name")),
    )


def _context(raw: Any) -> MessageContext | None:
    if not isinstance(raw, dict):
        return None
    return MessageContext(
        message_id=_str(raw.get("id")),
        from_phone=_str(raw.get("from")),
        forwarded=raw.get("forwarded") is True,
        frequently_forwarded=raw.get("frequently_forwarded") is True,
        referred_product=_dict(raw.get("referred_product")),
    )


def _errors(raw: Any) -> tuple[ErrorDetail, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(_error(e) for e in raw if isinstance(e, dict))


def _error(raw: Any) -> ErrorDetail:
    if not isinstance(raw, dict):
        return ErrorDetail(code=None, message=str(raw))
    data = _dict(raw.get("error_data")) or {}
    code = raw.get("code")
    return ErrorDetail(
        code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        title=_str(raw.get("title")),
        message=_str(raw.get("message")),
        details=_str(data.get("details")),
    )


def _timestamp(raw: Any) -> datetime:
    """Meta sends Unix seconds as a string."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise _Skip(f"timestamp {raw!r} is not Unix seconds")
    try:
        return datetime.fromtimestamp(int(raw), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise _Skip(f"timestamp {raw!r} is not Unix seconds") from None


def _str(value: Any) -> str | None:
    """A non-empty string; numbers (a phone sent as a JSON number) become strings."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


# JSON round trip ---------------------------------------------------------------------------


def _tagged(event: Event) -> dict[str, Any]:
    return {"kind": event.event_kind, "data": _encode(event)}


def event_from_json_dict(data: Mapping[str, Any]) -> Event:
    """Rebuild the event `to_json_dict` produced; ValueError for anything else."""
    cls = _EVENT_CLASSES.get(str(data.get("kind")))
    if cls is None:
        raise ValueError(f"unknown event kind {data.get('kind')!r}")
    fields = data.get("data")
    if not isinstance(fields, Mapping):
        raise ValueError(f"{cls.event_kind} event without a data object")
    try:
        event = _decode(cls, fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a valid {cls.event_kind} event: {exc}") from exc
    assert isinstance(event, cls)
    return event


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value  # str, int, float, bool, None, and raw JSON dicts


def _decode(tp: Any, value: Any) -> Any:
    origin = get_origin(tp)
    if origin is UnionType or origin is Union:
        if value is None:
            return None
        (inner,) = (arg for arg in get_args(tp) if arg is not type(None))
        return _decode(inner, value)
    if origin is tuple:
        return tuple(_decode(get_args(tp)[0], v) for v in value)
    if tp is datetime:
        return datetime.fromisoformat(value)
    if tp is float:
        return float(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _field_types(tp)
        return tp(**{name: _decode(hint, value[name]) for name, hint in hints.items() if name in value})
    return value


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """Resolved field annotations of a dataclass: resolving them is slow, and they never change."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}
