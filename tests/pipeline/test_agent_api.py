"""Staff acting on conversations through the agent-actions function, with real ID tokens
from the Auth emulator; and what they must not be able to do."""

from __future__ import annotations

import base64
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from google.cloud import firestore
from sqlalchemy import select, update

from emulators.stack import LocalStack
from shared.db.models import AuditLogEntry, Conversation, Message
from shared.db.tenancy import tenant_session
from tests.pipeline.driver import ACCEPTED, Meta, id_token, new_customer, wait_for
from tests.pipeline.test_conversations import add_outbound, conversations_of, messages_of, settled


def act(
    stack: LocalStack,
    conversation_id: object,
    action: str,
    token: str | None,
    idempotency_key: str | None = None,
    **body: object,
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    url = f"{stack.info['functions']['agent-actions']}/conversations/{conversation_id}/{action}"
    return requests.post(url, json=body or None, headers=headers, timeout=10)


@pytest.fixture
def conversation(meta: Meta, demo_tenant: uuid.UUID) -> tuple[dict[str, str], uuid.UUID]:
    customer = new_customer()
    meta.say(customer, "hello")
    settled(meta, customer, 1)
    [found] = conversations_of(demo_tenant, customer)
    return customer, found.id


def test_an_agent_takes_over_writes_and_resolves(
    stack: LocalStack, meta: Meta, demo_tenant: uuid.UUID, conversation: tuple[dict[str, str], uuid.UUID]
) -> None:
    customer, conversation_id = conversation
    agent = id_token(stack, "agent@kopinusantara.test")
    assert act(stack, conversation_id, "take-over", agent).status_code == 200
    assert conversations_of(demo_tenant, customer)[0].status == "handed_off"
    question = meta.say(customer, "are you a bot?")
    wait_for(lambda: [m for m in messages_of(demo_tenant, conversation_id) if m.wa_message_id == question])

    def reads_of_question() -> list[dict[str, Any]]:
        return [c for c in meta.calls("mark_read") if c["body"]["message_id"] == question]

    assert reads_of_question() == []  # nobody answered it yet
    written = act(stack, conversation_id, "messages", agent, text="Bukan kak, saya Dewi dari Kopi Nusantara 🙂")
    assert written.status_code == 202
    sends = wait_for(lambda: (len(meta.sends_to(customer)) == 2 and meta.sends_to(customer)) or None)
    assert sends[-1]["body"]["text"]["body"].startswith("Bukan kak")  # the AI said nothing in between
    [read] = wait_for(reads_of_question)  # the agent answered it: blue ticks, no "typing..."
    assert "typing_indicator" not in read["body"]
    assert act(stack, conversation_id, "resolve", agent).status_code == 200
    assert act(stack, conversation_id, "resolve", agent).status_code == 409  # already resolved
    with tenant_session(demo_tenant) as session:
        actions = list(
            session.scalars(
                select(AuditLogEntry.action)
                .where(AuditLogEntry.target_id == str(conversation_id))
                .order_by(AuditLogEntry.created_at)
            )
        )
    assert actions == ["conversation.take_over", "conversation.agent_message", "conversation.resolve"]


def test_a_refused_action_puts_the_dashboard_right(
    stack: LocalStack, demo_tenant: uuid.UUID, conversation: tuple[dict[str, str], uuid.UUID]
) -> None:
    """The first resolve committed but its dashboard write was lost, so the dashboard still
    offers "resolve": the retry is refused (409) and the dashboard shows the conversation
    resolved."""
    _, conversation_id = conversation
    agent = id_token(stack, "agent@kopinusantara.test")
    assert act(stack, conversation_id, "resolve", agent).status_code == 200
    shown = firestore.Client(project=stack.info["project"]).document(
        f"tenants/{demo_tenant}/conversations/{conversation_id}"
    )
    shown.update({"status": "active"})  # the write that was lost
    assert act(stack, conversation_id, "resolve", agent).status_code == 409
    assert (shown.get().to_dict() or {})["status"] == "resolved"


def test_return_to_ai_only_from_handoff(stack: LocalStack, conversation: tuple[dict[str, str], uuid.UUID]) -> None:
    _, conversation_id = conversation
    admin = id_token(stack, "admin@kopinusantara.test")
    assert act(stack, conversation_id, "return-to-ai", admin).status_code == 409
    assert act(stack, conversation_id, "take-over", admin).status_code == 200
    assert act(stack, conversation_id, "return-to-ai", admin).status_code == 200


def test_viewers_read_but_do_not_act(stack: LocalStack, conversation: tuple[dict[str, str], uuid.UUID]) -> None:
    _, conversation_id = conversation
    assert act(stack, conversation_id, "take-over", id_token(stack, "viewer@kopinusantara.test")).status_code == 403


def test_no_or_bad_token_is_401(stack: LocalStack, conversation: tuple[dict[str, str], uuid.UUID]) -> None:
    _, conversation_id = conversation
    assert act(stack, conversation_id, "resolve", None).status_code == 401
    assert act(stack, conversation_id, "resolve", "not-a-token").status_code == 401


def test_another_tenants_conversation_is_not_found(
    stack: LocalStack, conversation: tuple[dict[str, str], uuid.UUID]
) -> None:
    owner = id_token(stack, "owner@kopinusantara.test")
    assert act(stack, uuid.uuid4(), "resolve", owner).status_code == 404
    assert act(stack, "not-a-uuid", "resolve", owner).status_code == 404


def test_edited_claims_do_not_change_the_tenant(
    stack: LocalStack, conversation: tuple[dict[str, str], uuid.UUID]
) -> None:
    """The emulator accepts unsigned tokens, so forge one: same user, someone else's tenant.
    The API takes the tenant from our users table, so it still acts for the real tenant."""
    _, conversation_id = conversation
    header, payload, _ = id_token(stack, "owner@kopinusantara.test").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tenant_id"] = str(uuid.uuid4())
    claims["role"] = "owner"
    forged = ".".join([header, base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("="), ""])
    answer = act(stack, conversation_id, "take-over", forged)
    assert answer.status_code == 200  # acted on its own tenant's conversation, not the forged one


def _agent_messages(tenant: uuid.UUID, conversation_id: uuid.UUID) -> list[Message]:
    return [m for m in messages_of(tenant, conversation_id) if m.sender_type == "agent"]


def _sent(tenant: uuid.UUID, conversation_id: uuid.UUID) -> list[Message] | None:
    found = _agent_messages(tenant, conversation_id)
    return found if found and all(m.status in ACCEPTED for m in found) else None


def test_outside_the_window_an_agent_sends_a_template_and_no_text(
    stack: LocalStack, meta: Meta, demo_tenant: uuid.UUID, conversation: tuple[dict[str, str], uuid.UUID]
) -> None:
    customer, conversation_id = conversation
    with tenant_session(demo_tenant) as session:  # the customer last wrote a day and a bit ago
        session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(last_customer_message_at=datetime.now(UTC) - timedelta(hours=25))
        )
    agent = id_token(stack, "agent@kopinusantara.test")
    refused = act(stack, conversation_id, "messages", agent, text="Halo kak, pesanannya sudah siap")
    assert refused.status_code == 409
    assert refused.json()["error"]["details"] == [{"whatsapp_code": 131047}]
    assert "template" in refused.json()["error"]["message"]
    refused_media = act(stack, conversation_id, "messages", agent, media={"type": "image", "id": "1479537139650973"})
    assert refused_media.status_code == 409
    assert _agent_messages(demo_tenant, conversation_id) == []  # nothing stored, nothing queued

    components = [{"type": "body", "parameters": [{"type": "text", "text": "Kopi Susu Gula Aren"}]}]
    template = {"name": "order_ready", "language": "id", "components": components}
    assert act(stack, conversation_id, "messages", agent, template=template).status_code == 202
    [message] = wait_for(lambda: _sent(demo_tenant, conversation_id))
    assert (message.type, message.body, message.payload["template"]) == ("template", None, "order_ready")
    [call] = meta.sends_to(customer)[1:]  # after the AI's answer to "hello"
    assert call["body"]["type"] == "template"
    assert call["body"]["template"] == {"name": "order_ready", "language": {"code": "id"}, "components": components}
    assert call["wamid"] == message.wa_message_id


def test_an_agent_sends_media_by_id(
    stack: LocalStack, meta: Meta, demo_tenant: uuid.UUID, conversation: tuple[dict[str, str], uuid.UUID]
) -> None:
    customer, conversation_id = conversation
    agent = id_token(stack, "agent@kopinusantara.test")
    menu = {"type": "document", "id": "1812493586026451", "caption": "Menu Desember", "filename": "menu.pdf"}
    assert act(stack, conversation_id, "messages", agent, media=menu).status_code == 202
    wait_for(lambda: _sent(demo_tenant, conversation_id))
    sticker = {"type": "sticker", "id": "sticker.1"}
    assert act(stack, conversation_id, "messages", agent, media=sticker).status_code == 202
    sent = wait_for(lambda: (len(found := _sent(demo_tenant, conversation_id) or []) == 2 and found) or None)
    assert [(m.type, m.body) for m in sent] == [("document", "Menu Desember"), ("sticker", None)]
    calls = meta.sends_to(customer)[1:]
    assert [c["body"]["type"] for c in calls] == ["document", "sticker"]
    assert calls[0]["body"]["document"] == {key: menu[key] for key in ("id", "caption", "filename")}
    assert calls[1]["body"]["sticker"] == {"id": "sticker.1"}


def test_a_retried_message_with_the_same_idempotency_key_goes_out_once(
    stack: LocalStack, meta: Meta, demo_tenant: uuid.UUID, conversation: tuple[dict[str, str], uuid.UUID]
) -> None:
    """The dashboard lost the answer and sends again, twice at once even: one message, one send."""
    customer, conversation_id = conversation
    agent = id_token(stack, "agent@kopinusantara.test")
    key = f"dashboard-{uuid.uuid4()}"
    with ThreadPoolExecutor(3) as pool:
        answers = list(
            pool.map(
                lambda _: act(stack, conversation_id, "messages", agent, key, text="Sudah kami kirim ya kak"), range(3)
            )
        )
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len({a.json()["message_id"] for a in answers}) == 1
    other = act(stack, conversation_id, "messages", agent, f"dashboard-{uuid.uuid4()}", text="Sudah kami kirim ya kak")
    assert other.json()["message_id"] != answers[0].json()["message_id"]  # another key is another message
    wait_for(lambda: (len(found := _sent(demo_tenant, conversation_id) or []) == 2 and found) or None)
    time.sleep(1)
    assert len(meta.sends_to(customer)) == 3  # the AI's answer to "hello", then the two agent messages
    assert act(stack, conversation_id, "messages", agent, "not a key!", text="hi").status_code == 400


def test_a_retry_queues_the_send_its_first_attempt_never_queued(
    stack: LocalStack, meta: Meta, demo_tenant: uuid.UUID, conversation: tuple[dict[str, str], uuid.UUID]
) -> None:
    """The first request stored its message, then failed before queueing the send (Cloud
    Tasks unreachable) and answered 500: the dashboard's retry with the same key queues it."""
    customer, conversation_id = conversation
    key = f"dashboard-{uuid.uuid4()}"
    [found] = conversations_of(demo_tenant, customer)
    first = add_outbound(  # what the first request left behind
        demo_tenant, found, "Pesanan kakak sudah siap diambil", payload={"by": None, "idempotency_key": key}
    )
    agent = id_token(stack, "agent@kopinusantara.test")
    again = act(stack, conversation_id, "messages", agent, key, text="Pesanan kakak sudah siap diambil")
    assert again.status_code == 202
    assert again.json()["message_id"] == str(first)
    [sent] = wait_for(lambda: _sent(demo_tenant, conversation_id))
    assert sent.id == first
    time.sleep(1)
    assert [c["body"]["text"]["body"] for c in meta.sends_to(customer)][1:] == ["Pesanan kakak sudah siap diambil"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": "   "},
        {"text": "x" * 5000},
        {"text": 42},
        {"text": "hi", "template": {"name": "order_ready", "language": "id"}},
        {"media": "1479537139650973"},
        {"media": {"type": "hologram", "id": "1"}},
        {"media": {"type": "image"}},
        {"media": {"type": "image", "id": "../../me"}},
        {"media": {"type": "sticker", "id": "1", "caption": "no captions on stickers"}},
        {"media": {"type": "image", "id": "1", "filename": "only documents have one.png"}},
        {"media": {"type": "image", "id": "1", "caption": "x" * 1025}},
        {"template": {"name": "Order Ready", "language": "id"}},
        {"template": {"name": "order_ready"}},
        {"template": {"name": "order_ready", "language": "Indonesian"}},
        {"template": {"name": "order_ready", "language": "id", "components": "body"}},
        {"template": {"name": "order_ready", "language": "id", "components": [{"parameters": []}]}},
        {"template": {"name": "order_ready", "language": "id", "components": []}},
    ],
)
def test_bad_message_bodies_are_400_and_store_nothing(
    stack: LocalStack, demo_tenant: uuid.UUID, conversation: tuple[dict[str, str], uuid.UUID], body: dict[str, Any]
) -> None:
    _, conversation_id = conversation
    agent = id_token(stack, "agent@kopinusantara.test")
    answer = act(stack, conversation_id, "messages", agent, **body)
    assert answer.status_code == 400
    assert answer.json()["error"]
    assert _agent_messages(demo_tenant, conversation_id) == []
