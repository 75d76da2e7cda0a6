"""Human handoff: asked for in English or Bahasa Indonesia, or forced by an unsure AI; the
AI stays silent until an agent resolves or returns the conversation, and does not loop."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from google.cloud import pubsub_v1
from sqlalchemy import select

from shared.conversations import staff
from shared.db.models import Message, User
from shared.db.tenancy import tenant_session
from tests.pipeline.driver import Meta, new_customer, wait_for
from tests.pipeline.test_conversations import add_outbound, conversations_of, messages_of, settled


@pytest.fixture(scope="module")
def handoff_events(stack: object) -> Iterator[list[dict[str, object]]]:
    """Everything published to conversation.handed_off while the module runs."""
    from shared.cloud.settings import settings

    project = settings().google_cloud_project
    subscriber = pubsub_v1.SubscriberClient()
    topic = f"projects/{project}/topics/conversation.handed_off"
    name = subscriber.subscription_path(project, f"test-handoff-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(name=name, topic=topic)
    received: list[dict[str, object]] = []

    def collect(message: pubsub_v1.subscriber.message.Message) -> None:
        received.append(json.loads(message.data))
        message.ack()

    future = subscriber.subscribe(name, collect)
    yield received
    future.cancel()
    subscriber.delete_subscription(subscription=name)


@pytest.mark.parametrize(
    ("text", "language_word"),
    [
        ("saya mau bicara dengan manusia", "staf"),
        ("Can I talk to a person please?", "team"),
        ("mau komplain, pesanan saya salah", "staf"),
        ("minta CS dong", "staf"),
    ],
)
def test_asking_for_a_person_hands_off_in_both_languages(
    meta: Meta, demo_tenant: uuid.UUID, handoff_events: list[dict[str, object]], text: str, language_word: str
) -> None:
    customer = new_customer()
    wamid = meta.say(customer, text)
    [notice] = settled(meta, customer, 1)
    assert language_word in notice["body"]["text"]["body"].lower()
    [read] = [c for c in meta.calls("mark_read") if c["body"]["message_id"] == wamid]  # the notice answers it
    assert "typing_indicator" not in read["body"]
    [conversation] = conversations_of(demo_tenant, customer)
    assert conversation.status == "handed_off"
    assert conversation.handoff_reason is not None
    assert conversation.handoff_reason.startswith("keyword:")
    wait_for(lambda: [e for e in handoff_events if e["conversation_id"] == str(conversation.id)])


def test_tenant_keywords_extend_the_list(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    meta.say(customer, "bisa panggilkan barista?")  # "barista" is one of the demo tenant's own keywords
    settled(meta, customer, 1)
    [conversation] = conversations_of(demo_tenant, customer)
    assert conversation.handoff_reason == "keyword:barista"


def test_after_handoff_the_ai_is_silent_until_returned(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    meta.say(customer, "talk to a person")
    settled(meta, customer, 1)
    meta.say(customer, "hello? anyone there?")
    meta.say(customer, "halo??")
    time.sleep(3)
    assert len(meta.sends_to(customer)) == 1  # only the handoff notice
    [conversation] = conversations_of(demo_tenant, customer)
    stored = messages_of(demo_tenant, conversation.id)
    assert [m.sender_type for m in stored if m.direction == "inbound"] == ["customer"] * 3  # nothing lost
    assert staff.return_to_ai(demo_tenant, conversation.id)
    meta.say(customer, "ok thanks, what are your opening hours?")
    assert len(settled(meta, customer, 2)) == 2


def test_a_message_redelivered_after_a_takeover_is_left_to_the_agent(meta: Meta, demo_tenant: uuid.UUID) -> None:
    """Its first delivery was stored but not answered (the reply step failed); an agent took
    over before Meta delivered it again. The agent has it now: once the AI is back, it does
    not answer that old message."""
    customer = new_customer()
    meta.say(customer, "hello")
    settled(meta, customer, 1)
    [conversation] = conversations_of(demo_tenant, customer)
    wamid = meta.say(customer, "apakah bisa pesan untuk besok?")
    wait_for(lambda: len(meta.sends_to(customer)) == 2 or None)
    with tenant_session(demo_tenant) as session:  # as if the reply step had failed after the store
        message = session.scalars(select(Message).where(Message.wa_message_id == wamid)).one()
        message.status = "received"
    with tenant_session(demo_tenant) as session:
        agent = session.scalars(select(User.id).where(User.email == "agent@kopinusantara.test")).one()
    assert staff.take_over(demo_tenant, conversation.id, agent)
    meta.say(customer, "apakah bisa pesan untuk besok?", wamid=wamid)  # Meta delivers it again

    def stored() -> dict[str, Message]:
        return {m.wa_message_id or str(m.id): m for m in messages_of(demo_tenant, conversation.id)}

    wait_for(lambda: stored()[wamid].status == "processed" or None)
    assert staff.return_to_ai(demo_tenant, conversation.id)
    latest = meta.say(customer, "halo?")
    settled(meta, customer, 3)
    messages = stored()
    reply = [m for m in messages.values() if m.sender_type == "llm"][-1]
    assert reply.payload["answers"] == [str(messages[latest].id)]  # not the message the agent has


def test_a_resolved_conversation_does_not_loop_back_into_handoff(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    meta.say(customer, "saya mau bicara dengan manusia")
    settled(meta, customer, 1)
    [first] = conversations_of(demo_tenant, customer)
    staff.queue_agent_message(
        demo_tenant, first.id, staff.AgentMessage("text", "Halo kak, dengan Dewi di sini. Ada yang bisa dibantu?")
    )
    settled(meta, customer, 2)
    assert staff.resolve(demo_tenant, first.id)
    meta.say(customer, "terima kasih, sudah beres")
    sends = settled(meta, customer, 3)
    assert len(sends) == 3
    later = conversations_of(demo_tenant, customer)
    assert [c.status for c in later] == ["resolved", "active"]


def test_three_unsure_ai_replies_among_the_last_six_hand_off(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    meta.say(customer, "hello")
    settled(meta, customer, 1)
    [conversation] = conversations_of(demo_tenant, customer)
    for confidence in (0.2, 0.9, 0.3, 0.1):  # the AI's recent answers, as the LLM would record them
        add_outbound(demo_tenant, conversation, "…", sender_type="llm", status="read", confidence=confidence)
    meta.say(customer, "so do you deliver or not?")
    wait_for(lambda: conversations_of(demo_tenant, customer)[0].status == "handed_off" or None)
    [conversation] = conversations_of(demo_tenant, customer)
    assert conversation.handoff_reason == "low_confidence"
    sends = settled(meta, customer, 2)
    assert "team" in sends[-1]["body"]["text"]["body"].lower() or "staf" in sends[-1]["body"]["text"]["body"]
    # Returned to the AI, the old unsure replies no longer count: the next message is answered.
    assert staff.return_to_ai(demo_tenant, conversation.id)
    meta.say(customer, "ok, and the menu?")
    settled(meta, customer, 3)
    assert conversations_of(demo_tenant, customer)[0].status == "active"
