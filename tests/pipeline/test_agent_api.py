"""Staff acting on conversations through the agent-actions function, with real ID tokens
from the Auth emulator; and what they must not be able to do."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import requests
from sqlalchemy import select

from emulators.stack import LocalStack
from shared.db.models import AuditLogEntry
from shared.db.tenancy import tenant_session
from tests.pipeline.driver import Meta, id_token, new_customer, wait_for
from tests.pipeline.test_conversations import conversations_of, settled


def act(
    stack: LocalStack, conversation_id: object, action: str, token: str | None, **body: object
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
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
    meta.say(customer, "are you a bot?")
    written = act(stack, conversation_id, "messages", agent, text="Bukan kak, saya Dewi dari Kopi Nusantara 🙂")
    assert written.status_code == 202
    sends = wait_for(lambda: (len(meta.sends_to(customer)) == 2 and meta.sends_to(customer)) or None)
    assert sends[-1]["body"]["text"]["body"].startswith("Bukan kak")  # the AI said nothing in between
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


def test_bad_message_bodies_are_400(stack: LocalStack, conversation: tuple[dict[str, str], uuid.UUID]) -> None:
    _, conversation_id = conversation
    agent = id_token(stack, "agent@kopinusantara.test")
    assert act(stack, conversation_id, "messages", agent).status_code == 400
    assert act(stack, conversation_id, "messages", agent, text="   ").status_code == 400
    assert act(stack, conversation_id, "messages", agent, text="x" * 5000).status_code == 400
