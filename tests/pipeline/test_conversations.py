"""A customer writes to the demo outlet; what reaches WhatsApp, and what the database keeps.

Everything runs through the real pieces: signed webhooks into the function host, Pub/Sub
push, PostgreSQL, Cloud Tasks with retries, and the Graph API simulator.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore
from sqlalchemy import select

from shared.conversations.inbound import Outcome, ReplyInProgress, handle_incoming
from shared.db.models import Conversation, Customer, Message, Tenant
from shared.db.tenancy import tenant_session
from shared.whatsapp.updates import parse_webhook
from shared.whatsapp.window import window_open
from tests.pipeline.driver import Meta, inbound, new_customer, wait_for


def customer_row(tenant: uuid.UUID, customer: dict[str, Any]) -> Customer | None:
    with tenant_session(tenant) as session:
        query = select(Customer).where(
            (Customer.bsuid == customer["bsuid"])
            if customer.get("bsuid")
            else (Customer.phone_number == customer["phone"])
        )
        return session.scalars(query).first()


def conversations_of(tenant: uuid.UUID, customer: dict[str, Any]) -> list[Conversation]:
    row = customer_row(tenant, customer)
    if row is None:
        return []
    with tenant_session(tenant) as session:
        return list(
            session.scalars(
                select(Conversation).where(Conversation.customer_id == row.id).order_by(Conversation.created_at)
            )
        )


def messages_of(tenant: uuid.UUID, conversation_id: uuid.UUID) -> list[Message]:
    with tenant_session(tenant) as session:
        return list(
            session.scalars(
                select(Message).where(Message.conversation_id == conversation_id).order_by(Message.created_at)
            )
        )


def add_outbound(tenant: uuid.UUID, conversation: Conversation, body: str | None, **fields: Any) -> uuid.UUID:
    """An outbound message written straight to the database, as the pipeline (or a failure in
    it) would have left it: by default an agent's text, still queued, with no send task. One
    transaction each, so messages added one after another have distinct created_at."""
    values: dict[str, Any] = {"sender_type": "agent", "type": "text", "status": "queued", **fields}
    with tenant_session(tenant) as session:
        message = Message(
            tenant_id=tenant,
            conversation_id=conversation.id,
            outlet_id=conversation.outlet_id,
            direction="outbound",
            body=body,
            **values,
        )
        session.add(message)
        session.flush()
        message_id: uuid.UUID = message.id
        return message_id


def settled(meta: Meta, customer: dict[str, Any], count: int, quiet: float = 1.5) -> list[dict[str, Any]]:
    """Wait for `count` sends to this customer, then a quiet spell to catch any extra one."""
    wait_for(lambda: len(meta.sends_to(customer)) >= count or None)
    time.sleep(quiet)
    return meta.sends_to(customer)


def test_hello_gets_one_reply_and_a_read_receipt(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    wamid = meta.say(customer, "hello")
    sends = settled(meta, customer, 1)
    assert len(sends) == 1
    assert sends[0]["body"]["to"] == customer["phone"]
    assert "Kopi Nusantara" in sends[0]["body"]["text"]["body"]
    assert "hello" not in sends[0]["body"]["text"]["body"].lower()  # the placeholder never echoes
    reads = [c for c in meta.calls("mark_read") if c["body"]["message_id"] == wamid]
    assert len(reads) == 1
    assert reads[0]["body"]["typing_indicator"] == {"type": "text"}
    [conversation] = conversations_of(demo_tenant, customer)
    assert conversation.status == "active"
    stored = messages_of(demo_tenant, conversation.id)
    assert [(m.direction, m.sender_type) for m in stored] == [("inbound", "customer"), ("outbound", "llm")]
    assert stored[0].status == "processed"
    assert stored[1].answers_up_to_message_id == stored[0].id
    assert conversation.last_customer_message_at is not None


def test_indonesian_customer_is_answered_in_indonesian(meta: Meta) -> None:
    customer = new_customer()
    meta.say(customer, "halo kak, jam berapa buka hari ini?")
    [send] = settled(meta, customer, 1)
    reply = send["body"]["text"]["body"]
    assert "07.00" in reply  # from the demo menu's opening hours
    assert reply.startswith("Berikut")


def test_redelivered_webhook_gives_exactly_one_reply(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    payload, _ = inbound("text_phone_and_bsuid", meta.phone_number_id, customer, text="do you have oat milk?")
    for _ in range(3):
        assert meta.deliver(payload).status_code == 200
    sends = settled(meta, customer, 1, quiet=3)
    assert len(sends) == 1
    [conversation] = conversations_of(demo_tenant, customer)
    inbound_rows = [m for m in messages_of(demo_tenant, conversation.id) if m.direction == "inbound"]
    assert len(inbound_rows) == 1


def test_same_message_in_two_concurrent_workers_gives_one_reply(meta: Meta, demo_tenant: uuid.UUID) -> None:
    """Two instances handle the same Pub/Sub message at the same moment (at-least-once)."""
    customer = new_customer()
    payload, _ = inbound("text_phone_and_bsuid", meta.phone_number_id, customer, text="is there wifi?")
    [event] = parse_webhook(payload).events
    outlet_id = meta.info["demo"]["outlet_id"]
    envelope = {"tenant_id": str(demo_tenant), "outlet_id": outlet_id, "event": event.to_json_dict()}
    start = threading.Barrier(2)
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            outcomes.append(handle_incoming(envelope))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # The second either sees a duplicate or, finding the message being answered, asks Pub/Sub
    # to come back (it cannot tell a concurrent copy from the redelivery of a crashed holder).
    assert all(isinstance(error, ReplyInProgress) for error in errors)
    sends = settled(meta, customer, 1, quiet=3)
    if errors:
        outcomes.append(handle_incoming(envelope))  # the redelivery, once the reply is out
    assert sorted(o.duplicate for o in outcomes) == [False, True]
    assert len({o.message_id for o in outcomes}) == 1
    assert len(sends) == 1
    assert len(settled(meta, customer, 1, quiet=2)) == 1


def test_a_burst_is_answered_in_order_and_every_message_exactly_once(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    now = time.time()
    texts = ["halo", "mau pesan kopi susu gula aren", "2 gelas ya, diantar ke kemang"]
    wamids = [meta.say(customer, text, timestamp=now + i * 0.6) for i, text in enumerate(texts)]
    [conversation] = wait_for(lambda: conversations_of(demo_tenant, customer))

    def answered() -> list[Message] | None:
        rows = messages_of(demo_tenant, conversation.id)
        inbound_rows = [m for m in rows if m.direction == "inbound"]
        if len(inbound_rows) == 3 and all(m.status == "processed" for m in inbound_rows):
            replies = [m for m in rows if m.direction == "outbound"]
            if replies and all(m.status != "queued" for m in replies):
                return rows
        return None

    rows = wait_for(answered)
    time.sleep(1.5)
    rows = messages_of(demo_tenant, conversation.id)
    inbound_rows = [m for m in rows if m.direction == "inbound"]
    replies = [m for m in rows if m.direction == "outbound"]
    assert [m.wa_message_id for m in inbound_rows] == wamids
    covered = [answer for reply in replies for answer in reply.payload["answers"]]
    assert sorted(covered) == sorted(str(m.id) for m in inbound_rows)  # each exactly once
    position = {m.id: i for i, m in enumerate(inbound_rows)}
    answered_up_to = [position[reply.answers_up_to_message_id] for reply in replies]
    assert answered_up_to == sorted(answered_up_to)  # replies follow the customer's order
    sends = meta.sends_to(customer)
    assert [s["wamid"] for s in sends] == [r.wa_message_id for r in replies]  # and go out in that order


def test_customer_without_phone_is_answered_by_bsuid(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    customer["phone"] = None  # a username user: WhatsApp withholds the number
    customer["username"] = "rina.kopi"
    meta.say(customer, "hi, what time do you open?", fixture_name="text_bsuid_username_no_phone")
    [send] = settled(meta, customer, 1)
    assert send["body"]["recipient"] == customer["bsuid"]
    assert "to" not in send["body"]
    row = customer_row(demo_tenant, customer)
    assert row is not None
    assert row.phone_number is None
    assert row.username == "rina.kopi"


def test_phone_and_bsuid_seen_together_later_are_linked(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    phone_only = {**customer, "bsuid": None}
    meta.say(phone_only, "hello")
    settled(meta, customer, 1)
    meta.say(customer, "hello again")
    wait_for(lambda: (row := customer_row(demo_tenant, customer)) is not None and row.bsuid == customer["bsuid"])
    [conversation] = conversations_of(demo_tenant, customer)  # one customer, one conversation
    assert len([m for m in messages_of(demo_tenant, conversation.id) if m.direction == "inbound"]) == 2


def number_change(meta: Meta, customer: dict[str, str], moved: dict[str, str]) -> dict[str, Any]:
    """Meta's user_changed_number system message: `customer` is now `moved`."""
    payload, _ = inbound("system_user_changed_number", meta.phone_number_id, customer)
    value = payload["entry"][0]["changes"][0]["value"]
    value.pop("contacts")  # system messages carry no contacts array
    value["messages"][0]["system"] = {
        "body": f"User Rina changed from {customer['phone']} to {moved['phone']}",
        "wa_id": moved["phone"],
        "user_id": moved["bsuid"],
        "previous_user_id": customer["bsuid"],
        "type": "user_changed_number",
    }
    return payload


def test_changed_number_keeps_the_conversation(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    meta.say(customer, "hello")
    settled(meta, customer, 1)
    [before] = wait_for(lambda: conversations_of(demo_tenant, customer))
    moved = {**new_customer(), "name": customer["name"]}  # a new number comes with a new BSUID
    assert meta.deliver(number_change(meta, customer, moved)).status_code == 200
    row = wait_for(lambda: customer_row(demo_tenant, moved))
    assert (row.phone_number, row.bsuid) == (moved["phone"], moved["bsuid"])
    assert customer_row(demo_tenant, customer) is None  # re-keyed, not duplicated
    [after] = conversations_of(demo_tenant, moved)
    assert after.id == before.id
    meta.say(moved, "it's me with my new number")
    wait_for(lambda: meta.sends_to(moved))
    assert [c.id for c in conversations_of(demo_tenant, moved)] == [before.id]


def test_a_handoff_from_the_new_number_survives_a_late_number_change(meta: Meta, demo_tenant: uuid.UUID) -> None:
    """The customer's first message from their new number asks for a person, and Meta's
    number-change message comes after it: the two records become one customer, and the
    conversation the agents have stays theirs (the other one is resolved, on the dashboard
    too)."""
    customer = new_customer()
    meta.say(customer, "hello")
    settled(meta, customer, 1)
    [before] = conversations_of(demo_tenant, customer)
    moved = {**new_customer(), "name": customer["name"]}
    meta.say(moved, "saya mau bicara dengan manusia")
    settled(meta, moved, 1)
    [asked] = conversations_of(demo_tenant, moved)
    assert asked.status == "handed_off"
    assert meta.deliver(number_change(meta, customer, moved)).status_code == 200
    wait_for(lambda: customer_row(demo_tenant, customer) is None or None)  # merged
    assert {c.id: c.status for c in conversations_of(demo_tenant, moved)} == {
        before.id: "resolved",
        asked.id: "handed_off",
    }
    meta.say(moved, "halo? masih ada orang?")
    time.sleep(2)
    assert len(meta.sends_to(moved)) == 1  # only the handoff notice: the AI stays out of it
    dashboard = firestore.Client(project=meta.info["project"])
    shown = dashboard.document(f"tenants/{demo_tenant}/conversations/{before.id}")
    wait_for(lambda: (shown.get().to_dict() or {}).get("status") == "resolved" or None)


def test_changed_bsuid_keeps_the_conversation_and_replies_follow_it(meta: Meta, demo_tenant: uuid.UUID) -> None:
    """user_changed_user_id: the customer's number changed and may not be shared with us. Same
    customer, same conversation; the old number is forgotten and the next reply goes to the
    new BSUID, never to a number that may be someone else's now."""
    customer = new_customer()
    meta.say(customer, "hello")
    settled(meta, customer, 1)
    [before] = conversations_of(demo_tenant, customer)
    moved = {"phone": None, "bsuid": f"ID.{uuid.uuid4().int % 10**18}", "name": customer["name"]}
    payload, _ = inbound("system_user_changed_user_id", meta.phone_number_id, {**customer, "phone": None})
    value = payload["entry"][0]["changes"][0]["value"]
    value.pop("contacts")  # system messages carry no contacts array
    value["messages"][0]["system"].update(
        body=f"User Rina changed from {customer['bsuid']} to {moved['bsuid']}",
        user_id=moved["bsuid"],
        previous_user_id=customer["bsuid"],
    )
    assert meta.deliver(payload).status_code == 200
    row = wait_for(lambda: customer_row(demo_tenant, moved))
    assert (row.phone_number, row.bsuid) == (None, moved["bsuid"])
    assert customer_row(demo_tenant, customer) is None  # re-keyed, not duplicated
    meta.say(moved, "still me", fixture_name="text_bsuid_username_no_phone")
    [reply] = settled(meta, moved, 1)
    assert reply["body"]["recipient"] == moved["bsuid"]
    assert "to" not in reply["body"]
    assert [c.id for c in conversations_of(demo_tenant, moved)] == [before.id]
    assert len(meta.sends_to(customer)) == 1  # the old number got only the answer to "hello"


def test_window_is_tracked_from_the_customers_last_message(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    sent_at = int(time.time()) - 30
    meta.say(customer, "hello", timestamp=sent_at)
    settled(meta, customer, 1)
    [conversation] = conversations_of(demo_tenant, customer)
    assert conversation.last_customer_message_at == datetime.fromtimestamp(sent_at, UTC)
    assert window_open(conversation.last_customer_message_at)
    assert not window_open(
        conversation.last_customer_message_at, now=datetime.fromtimestamp(sent_at + 24 * 3600 + 1, UTC)
    )


def test_a_reaction_is_stored_but_not_answered(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    meta.say(customer, "hello")
    [reply] = settled(meta, customer, 1)
    payload, _ = inbound("reaction", meta.phone_number_id, customer)
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["reaction"]["message_id"] = reply["wamid"]
    assert meta.deliver(payload).status_code == 200
    [conversation] = conversations_of(demo_tenant, customer)

    def reaction() -> Message | None:
        rows = [m for m in messages_of(demo_tenant, conversation.id) if m.type == "reaction"]
        return rows[0] if rows and rows[0].status == "processed" else None

    stored = wait_for(reaction)
    assert stored.payload["reaction"]["emoji"] == "\N{THUMBS UP SIGN}"
    time.sleep(1.5)
    assert len(meta.sends_to(customer)) == 1


@pytest.fixture
def tenant_settings(demo_tenant: uuid.UUID) -> Iterator[Callable[..., None]]:
    """Change some of the demo tenant's settings for one test; they are put back afterwards."""
    with tenant_session(demo_tenant) as session:
        original = dict(session.get_one(Tenant, demo_tenant).settings)

    def change(settings: dict[str, Any]) -> None:
        with tenant_session(demo_tenant) as session:
            session.get_one(Tenant, demo_tenant).settings = settings

    yield lambda **values: change({**original, **values})
    change(original)


def test_read_receipts_and_typing_are_per_tenant_settings(meta: Meta, tenant_settings: Callable[..., None]) -> None:
    tenant_settings(read_receipts=True, typing_indicator=False)
    quiet = new_customer()
    quiet_wamid = meta.say(quiet, "hello")
    settled(meta, quiet, 1)
    [read] = [c for c in meta.calls("mark_read") if c["body"]["message_id"] == quiet_wamid]
    assert "typing_indicator" not in read["body"]

    tenant_settings(read_receipts=False)
    unread = new_customer()
    unread_wamid = meta.say(unread, "hello")
    assert len(settled(meta, unread, 1)) == 1  # answered all the same
    assert [c for c in meta.calls("mark_read") if c["body"]["message_id"] == unread_wamid] == []
