"""When a human must take over a conversation.

Three reasons: the customer asks for a person (keywords in English and Bahasa Indonesia,
extendable per tenant, or a button whose id asks for an agent), or the AI has been unsure
too often (three low-confidence replies among the last six messages since the AI last
took over). Counting only since the AI last took over is what stops a conversation that an
agent returned to the AI from bouncing straight back to the agents.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.orm import Session

from shared.assistant import replies
from shared.cloud import pubsub
from shared.conversations import hours
from shared.db.models import Conversation, Message, Outlet, Tenant
from shared.whatsapp.updates import InboundMessage

log = logging.getLogger(__name__)

DEFAULT_KEYWORDS: tuple[str, ...] = (
    # English
    "human",
    "real person",
    "talk to a person",
    "speak to a person",
    "talk to someone",
    "speak to someone",
    "talk to an agent",
    "speak to an agent",
    "customer service",
    "customer support",
    "live agent",
    "operator",
    "complaint",
    "i want to complain",
    # Bahasa Indonesia (formal and everyday)
    "manusia",
    "bicara dengan manusia",
    "bicara sama orang",
    "ngomong sama orang",
    "minta cs",
    "hubungi cs",
    "panggil cs",
    "customer servis",
    "layanan pelanggan",
    "petugas",
    "minta admin",
    "hubungi admin",
    "bicara dengan admin",
    "komplain",
    "keluhan",
    "mau komplain",
    "saya mau komplain",
)
HANDOFF_BUTTON_IDS = frozenset({"handoff", "talk_to_agent", "human_agent", "hubungi_cs"})
LOW_CONFIDENCE = 0.5
LOW_CONFIDENCE_LIMIT = 3
LOOKBACK = 6


@dataclass(frozen=True, slots=True)
class RecentMessage:
    """One message of the conversation as the low-confidence rule sees it, newest last."""

    sender_type: str  # customer | llm | agent | system
    confidence: float | None = None
    ai_resumed: bool = False  # a system marker: an agent handed the conversation back to the AI


def _normalize(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(re.findall(r"[a-z0-9]+", folded))


@functools.lru_cache(maxsize=1024)  # the same keywords for every message: fold each once
def _normalized_keyword(keyword: str) -> str:
    return _normalize(keyword)


def keyword_requested(text: str | None, extra_keywords: Iterable[str] = ()) -> str | None:
    """The keyword the text asks for a person with, matched on whole words, or None."""
    if not text:
        return None
    words = f" {_normalize(text)} "
    for keyword in (*extra_keywords, *DEFAULT_KEYWORDS):
        needle = _normalized_keyword(keyword)
        if needle and f" {needle} " in words:
            return keyword
    return None


def button_requested(button_id: str | None) -> bool:
    return button_id is not None and button_id.casefold() in HANDOFF_BUTTON_IDS


def too_many_low_confidence(history: Sequence[RecentMessage]) -> bool:
    """Three low-confidence AI replies among the last six messages since the AI last resumed."""
    since_resume: list[RecentMessage] = []
    for message in reversed(history):
        if message.ai_resumed:
            break
        since_resume.append(message)
    window = since_resume[:LOOKBACK]
    unsure = sum(
        1 for m in window if m.sender_type == "llm" and m.confidence is not None and m.confidence < LOW_CONFIDENCE
    )
    return unsure >= LOW_CONFIDENCE_LIMIT


HANDOFF_NOTICE = {
    "en": "Got it — I'm connecting you with our team. A staff member will reply here shortly.",
    "id": "Baik, kami hubungkan dengan tim kami. Staf kami akan segera membalas di sini.",
}


def asks_for_a_person(event: InboundMessage, tenant_settings: dict[str, Any]) -> str | None:
    if event.interactive is not None and button_requested(event.interactive.id):
        return "requested:button"
    if event.button is not None and button_requested(event.button.payload):
        return "requested:button"
    extra = tenant_settings.get("handoff_keywords") or []
    keyword = keyword_requested(event.text_for_ai, extra)
    return f"keyword:{keyword}" if keyword else None


def hand_off(
    session: Session, tenant: Tenant, conversation: Conversation, reason: str, language_hint: list[str]
) -> None:
    """Give the conversation to the agents: the AI stays silent until they return it. The
    customer is told (outside the outlet's business hours, also when staff are back), and
    conversation.handed_off is published inside the transaction (a failed commit may publish
    twice; subscribers key on conversation and time)."""
    conversation.status = "handed_off"
    conversation.handoff_reason = reason
    conversation.handed_off_at = func.now()
    language = replies.detect_language(language_hint, tenant.default_language)
    notice = (tenant.settings.get("handoff_notice") or {}).get(language) or HANDOFF_NOTICE[language]
    outlet = session.get(Outlet, conversation.outlet_id)
    away = hours.away_notice(outlet.settings if outlet else {}, datetime.now(UTC), tenant.timezone, language)
    if away:
        notice = f"{notice} {away}"
    session.add(
        Message(
            tenant_id=tenant.id,
            conversation_id=conversation.id,
            outlet_id=conversation.outlet_id,
            direction="outbound",
            sender_type="system",
            type="text",
            body=notice,
            status="queued",
            created_at=func.clock_timestamp(),  # sent in this order: see _answer
            payload={"reason": "handoff_notice"},
        )
    )
    session.flush()
    pubsub.publish([handed_off_event(tenant.id, conversation, reason)])
    log.info("conversation handed off", extra={"conversation_id": str(conversation.id), "reason": reason})


def handed_off_event(tenant_id: uuid.UUID, conversation: Conversation, reason: str) -> pubsub.Outgoing:
    return pubsub.Outgoing(
        pubsub.CONVERSATION_HANDED_OFF,
        {
            "tenant_id": str(tenant_id),
            "conversation_id": str(conversation.id),
            "outlet_id": str(conversation.outlet_id),
            "reason": reason,
            "at": datetime.now(UTC).isoformat(),
        },
        attributes={"tenant_id": str(tenant_id)},
    )
