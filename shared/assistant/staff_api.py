"""The assistant API: "suggest a reply" for a conversation, for agents and above.

The suggestion comes from the same retrieval, prompt, model and grounding guard as the AI's
own replies, for the customer's latest messages, and is only shown to the agent: nothing is
stored or sent. `/llm/stream` sends the reply's text as it is written (server-sent events),
then the whole suggestion, then `[DONE]`. While billing has suspended the AI, it answers 429.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Literal

from flask import Response, stream_with_context
from pydantic import BaseModel, Field

from shared.api.auth import ACTING_ROLES, Staff
from shared.api.errors import SERVICE_SUSPENDED, ApiError
from shared.api.routes import Route, StaffApi
from shared.assistant import context, replies
from shared.billing import limits, quota
from shared.db.models import Conversation, Tenant
from shared.db.tenancy import tenant_session


class SuggestRequest(BaseModel):
    conversation_id: uuid.UUID


class Suggestion(BaseModel):
    reply: str = Field(description="The suggested text, WhatsApp-formatted (the fallback when unsure).")
    parts: list[str] = Field(description="As it would be sent: at most two WhatsApp messages.")
    grounded: bool = Field(description="False when it is the fallback: nothing in the documents answers it.")
    low_confidence: str | None = Field(
        description="Why not grounded: no_passages, not_in_documents, ungrounded or provider_failed."
    )
    wants_human: bool
    language: str
    sources: list[str]
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: Decimal | None


class SuggestionEvent(BaseModel):
    """One server-sent event: text pieces first, then the whole suggestion."""

    type: Literal["delta", "suggestion"]
    text: str | None = None
    suggestion: Suggestion | None = None


def _question(staff: Staff, conversation_id: uuid.UUID) -> replies.Question:
    with tenant_session(staff.tenant_id) as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None or not staff.sees_outlet(conversation.outlet_id):
            raise ApiError(404, "no such conversation")
        turn = context.latest_turn(session, conversation_id)
        if turn is None:
            raise ApiError(409, "the customer has not written anything to answer")
        texts, since = turn
        tenant = session.get_one(Tenant, staff.tenant_id)
        if not quota.may_reply(session, tenant).allowed:
            raise ApiError(429, "the AI is suspended: the message quota and the deposit are used up", SERVICE_SUSPENDED)
        return context.question(session, tenant, conversation, texts, since)


def _suggestion(answer: replies.Answer) -> Suggestion:
    return Suggestion(
        reply=answer.text,
        parts=list(answer.parts),
        grounded=answer.low_confidence is None and not answer.wants_human,
        low_confidence=answer.low_confidence,
        wants_human=answer.wants_human,
        language=answer.language,
        sources=list(answer.sources),
        model=answer.model,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        cost_usd=answer.cost_usd,
    )


def generate(staff: Staff, body: SuggestRequest) -> Suggestion:
    """Suggest a reply to the customer's latest messages."""
    return _suggestion(replies.answer(_question(staff, body.conversation_id)))


def stream(staff: Staff, body: SuggestRequest) -> SuggestionEvent:
    """The same suggestion, streamed as server-sent events."""
    question = _question(staff, body.conversation_id)  # 404 and 409 before the stream starts

    def events() -> Iterator[str]:
        for piece in replies.stream(question):
            if isinstance(piece, replies.Answer):
                event = SuggestionEvent(type="suggestion", suggestion=_suggestion(piece))
            else:
                event = SuggestionEvent(type="delta", text=piece)
            yield f"data: {json.dumps(event.model_dump(mode='json', exclude_none=True), ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    response = Response(stream_with_context(events()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response  # type: ignore[return-value]


api = StaffApi(
    "assistant-api",
    'The AI\'s "suggest a reply" for agents. Authenticate with a Firebase ID token.',
    [
        Route("POST", "/api/v1/llm/generate", generate, ACTING_ROLES, errors=(409, 429), audit="conversation.suggest"),
        Route(
            "POST",
            "/api/v1/llm/stream",
            stream,
            ACTING_ROLES,
            errors=(409, 429),
            event_stream=True,
            audit="conversation.suggest",
        ),
    ],
    rate_limit=limits.requests_per_minute,
)
