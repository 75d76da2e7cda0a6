"""message-sender through Cloud Tasks: retries with backoff for what may pass, none for what
cannot, never two sends of one reply, the 24-hour window, and statuses moving messages on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import pytest
import requests
from google.cloud import firestore
from sqlalchemy import update

from shared.conversations import staff
from shared.db.models import Conversation, Message
from shared.db.tenancy import tenant_session
from tests.pipeline.driver import ACCEPTED, Meta, fixture, new_customer, wait_for
from tests.pipeline.test_conversations import add_outbound, conversations_of, messages_of, settled


def reply_of(tenant: uuid.UUID, customer: dict[str, str]) -> Message | None:
    found = conversations_of(tenant, customer)
    if not found:
        return None
    replies = [m for m in messages_of(tenant, found[0].id) if m.direction == "outbound"]
    return replies[-1] if replies else None


def reply_reaching(
    tenant: uuid.UUID, customer: dict[str, str], statuses: Collection[str], timeout: float = 20.0
) -> Message:
    """Wait until the customer's latest reply has one of `statuses`."""
    return wait_for(
        lambda: ((m := reply_of(tenant, customer)) is not None and m.status in statuses and m) or None, timeout
    )


def test_retryable_errors_are_retried_then_sent_once(clean_failures: Meta, demo_tenant: uuid.UUID) -> None:
    meta = clean_failures
    customer = new_customer()
    meta.fail_next(2, error_code=131000)  # "Something went wrong": transient
    meta.say(customer, "hello")
    reply_reaching(demo_tenant, customer, ACCEPTED, timeout=30)
    time.sleep(2)
    attempts = meta.sends_to(customer, accepted_only=False)
    assert [a["status"] for a in attempts] == [500, 500, 200]
    assert len(meta.sends_to(customer)) == 1
    reply = reply_of(demo_tenant, customer)
    assert reply is not None
    assert reply.payload["send_attempts"] == 2
    assert reply.wa_message_id == attempts[-1]["wamid"]


def test_server_errors_and_throughput_limits_are_retried(clean_failures: Meta, demo_tenant: uuid.UUID) -> None:
    meta = clean_failures
    customer = new_customer()
    meta.fail_next(1, http_status=503)
    meta.say(customer, "hello")
    wait_for(lambda: meta.sends_to(customer), timeout=30)
    meta.fail_next(1, error_code=130429)
    meta.say(customer, "and again")
    wait_for(lambda: len(meta.sends_to(customer)) == 2 or None, timeout=30)
    codes = [a["status"] for a in meta.sends_to(customer, accepted_only=False)]
    assert codes.count(200) == 2
    assert len(codes) == 4


@pytest.mark.parametrize(
    ("code", "by_bsuid"),
    [
        (131026, False),  # undeliverable
        (131030, False),  # recipient not in the allowed list
        (190, False),  # the outlet's access token expired
        (100, False),  # invalid parameter
        (131062, True),  # BSUID recipients not supported for this message
    ],
)
def test_permanent_errors_are_recorded_and_not_retried(
    clean_failures: Meta, demo_tenant: uuid.UUID, code: int, by_bsuid: bool
) -> None:
    meta = clean_failures
    customer = {**new_customer(), "phone": None} if by_bsuid else new_customer()
    meta.fail_next(1, error_code=code)
    meta.say(customer, "hello", fixture_name="text_bsuid_username_no_phone" if by_bsuid else "text_phone_and_bsuid")
    reply = reply_reaching(demo_tenant, customer, {"failed"})
    assert reply.error_code == code
    assert reply.error_title
    time.sleep(2.5)  # a retry would have happened by now (min backoff is 1 s)
    assert len(meta.sends_to(customer, accepted_only=False)) == 1


def test_outside_the_24_hour_window_nothing_is_sent(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    meta.say(customer, "hello")
    settled(meta, customer, 1)
    [conversation] = conversations_of(demo_tenant, customer)
    with tenant_session(demo_tenant) as session:  # a day and a bit later
        session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(last_customer_message_at=datetime.now(UTC) - timedelta(hours=25))
        )
    message_id = staff.queue_agent_message(
        demo_tenant, conversation.id, staff.AgentMessage("text", "Sorry for the late answer!")
    )

    def failed() -> Message | None:
        with tenant_session(demo_tenant) as session:
            row = session.get(Message, message_id)
            return row if row is not None and row.status == "failed" else None

    row = wait_for(failed)
    assert row.error_code == 131047
    time.sleep(1)
    assert len(meta.sends_to(customer, accepted_only=False)) == 1  # only the first reply


def test_statuses_move_the_reply_to_read(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    meta.say(customer, "hello")
    reply = reply_reaching(demo_tenant, customer, {"read"})
    assert reply.sent_at is not None
    assert reply.delivered_at is not None
    assert reply.read_at is not None


def test_a_redelivered_status_puts_the_dashboard_right(meta: Meta, demo_tenant: uuid.UUID) -> None:
    """The status was stored but its dashboard write failed, so Pub/Sub delivers it again: the
    message shows its real status, though nothing changed in the database."""
    customer = new_customer()
    meta.say(customer, "hello")
    reply = reply_reaching(demo_tenant, customer, {"read"})
    shown = firestore.Client(project=meta.info["project"]).document(
        f"tenants/{demo_tenant}/conversations/{reply.conversation_id}/messages/{reply.id}"
    )
    wait_for(lambda: (shown.get().to_dict() or {}).get("status") == "read" or None)
    shown.update({"status": "delivered"})  # the write that was lost
    payload = fixture("status_read")
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = meta.phone_number_id
    value.pop("contacts")
    value["statuses"][0].update(
        id=reply.wa_message_id,
        timestamp=str(int(time.time())),
        recipient_id=customer["phone"],
        recipient_user_id=customer["bsuid"],
    )
    assert meta.deliver(payload).status_code == 200
    wait_for(lambda: (shown.get().to_dict() or {}).get("status") == "read" or None)


def test_a_failed_status_fails_the_reply_for_good(meta: Meta, demo_tenant: uuid.UUID) -> None:
    """Meta accepted the reply, then could not deliver it: the status webhook's error code and
    title are kept, and no later `delivered` or `read` undoes the failure."""
    customer = new_customer()
    meta.say(customer, "hello")
    reply = reply_reaching(demo_tenant, customer, ACCEPTED)
    payload = fixture("status_failed")
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = meta.phone_number_id
    value["statuses"][0].update(id=reply.wa_message_id, timestamp=str(int(time.time())), recipient_id=customer["phone"])
    assert meta.deliver(payload).status_code == 200
    failed = reply_reaching(demo_tenant, customer, {"failed"})
    assert (failed.error_code, failed.error_title) == (131047, "Re-engagement message")
    assert failed.failed_at is not None
    time.sleep(1)  # the simulator's own delivered and read webhooks for this reply have come by now
    after = reply_of(demo_tenant, customer)
    assert after is not None
    assert (after.id, after.status) == (reply.id, "failed")


def test_status_with_only_a_bsuid_is_matched(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = {**new_customer(), "phone": None}
    meta.say(customer, "hello", fixture_name="text_bsuid_username_no_phone")
    reply = reply_reaching(demo_tenant, customer, {"read"})
    assert reply.read_at is not None


def test_a_task_delivered_twice_sends_once(meta: Meta, demo_tenant: uuid.UUID) -> None:
    """Cloud Tasks is at-least-once too: the same task body arrives again after success."""
    customer = new_customer()
    meta.say(customer, "hello")
    reply = reply_reaching(demo_tenant, customer, {*ACCEPTED, "failed"})
    sender = meta.info["functions"]["message-sender"]
    body = {"tenant_id": str(demo_tenant), "kind": "send", "message_id": str(reply.id)}
    again = requests.post(sender, json=body, timeout=10)
    assert again.status_code == 200
    assert "already" in again.json()["result"]
    assert len(meta.sends_to(customer)) == 1


def test_a_send_whose_answer_never_came_is_not_sent_again(clean_failures: Meta, demo_tenant: uuid.UUID) -> None:
    """Meta accepts the reply but answers after the sender gave up waiting (a read timeout).
    The retry does not send it again: Meta's status webhook names the message in
    `biz_opaque_callback_data`, and the reply is recorded as sent under that WhatsApp id."""
    meta = clean_failures
    customer = new_customer()
    meta.fail_next(1, stall_seconds=11)  # the sender waits 10 s for Graph's answer
    meta.say(customer, "hello")
    reply = reply_reaching(demo_tenant, customer, ACCEPTED, timeout=40)
    [send] = wait_for(lambda: meta.sends_to(customer), timeout=20)  # recorded once it was answered
    assert send["body"]["biz_opaque_callback_data"] == str(reply.id)
    assert reply.wa_message_id == send["wamid"]
    assert reply.payload["unconfirmed_at"]
    time.sleep(3)  # the queue's retries have come and gone by now
    assert len(meta.sends_to(customer, accepted_only=False)) == 1


def test_an_unconfirmed_send_goes_again_once_meta_had_time_to_confirm(meta: Meta, demo_tenant: uuid.UUID) -> None:
    customer = new_customer()
    meta.say(customer, "hello")
    settled(meta, customer, 1)
    [conversation] = conversations_of(demo_tenant, customer)
    ids = {
        body: str(
            add_outbound(
                demo_tenant,
                conversation,
                body,
                payload={"unconfirmed_at": (datetime.now(UTC) - timedelta(seconds=tried)).isoformat()},
            )
        )
        for body, tried in (("tried two minutes ago", 120), ("tried a second ago", 1))
    }
    sender = meta.info["functions"]["message-sender"]

    def attempt(body: str) -> requests.Response:
        task = {"tenant_id": str(demo_tenant), "kind": "send", "message_id": ids[body]}
        return requests.post(sender, json=task, headers={"X-CloudTasks-TaskRetryCount": "1"}, timeout=15)

    assert attempt("tried two minutes ago").status_code == 200
    assert attempt("tried a second ago").status_code == 503  # Meta may still say it went out
    assert [c["body"]["text"]["body"] for c in meta.sends_to(customer)][1:] == ["tried two minutes ago"]
    with tenant_session(demo_tenant) as session:  # let the first go, so nothing is left queued
        session.get_one(Message, uuid.UUID(ids["tried a second ago"])).status = "failed"


def test_a_held_back_reply_goes_out_on_its_last_attempt(meta: Meta, demo_tenant: uuid.UUID) -> None:
    """A reply waits while an earlier one of its conversation is still queued, but not past
    its own last attempt: late beats never, and an earlier reply whose task is gone must not
    silence the conversation."""
    customer = new_customer()
    meta.say(customer, "hello")
    settled(meta, customer, 1)
    [conversation] = conversations_of(demo_tenant, customer)
    add_outbound(demo_tenant, conversation, "an earlier reply whose task is gone")
    later = add_outbound(demo_tenant, conversation, "the later reply")
    sender = meta.info["functions"]["message-sender"]
    task = {"tenant_id": str(demo_tenant), "kind": "send", "message_id": str(later)}

    def attempt(retry_count: int) -> requests.Response:
        headers = {"X-CloudTasks-TaskRetryCount": str(retry_count)}
        return requests.post(sender, json=task, headers=headers, timeout=10)

    assert attempt(0).status_code == 503  # held back behind the earlier one
    assert attempt(9).status_code == 200  # the queue's tenth and last attempt
    assert [c["body"]["text"]["body"] for c in meta.sends_to(customer)][1:] == ["the later reply"]


def test_sends_whose_task_was_lost_are_queued_again_or_given_up(meta: Meta, demo_tenant: uuid.UUID) -> None:
    """send-recovery (Cloud Scheduler, every 5 minutes): a message still queued long after its
    task must have ended goes out, once however often the job runs; an AI answer that would
    come too late, and anything past the 24-hour window, is given up; a fresh one is left to
    its task."""
    customer = new_customer()
    meta.say(customer, "hello")
    settled(meta, customer, 1)
    [conversation] = conversations_of(demo_tenant, customer)
    now = datetime.now(UTC)
    stuck = {  # body: (who wrote it, how long ago)
        "agent, 20 minutes ago": ("agent", timedelta(minutes=20)),
        "AI, 20 minutes ago": ("llm", timedelta(minutes=20)),
        "AI, 2 hours ago": ("llm", timedelta(hours=2)),
        "agent, 25 hours ago": ("agent", timedelta(hours=25)),
        "agent, 5 minutes ago": ("agent", timedelta(minutes=5)),
    }
    for body, (sender_type, age) in stuck.items():
        add_outbound(demo_tenant, conversation, body, sender_type=sender_type, created_at=now - age)
    recovery = meta.info["functions"]["send-recovery"]
    first = requests.post(recovery, timeout=30)
    assert first.status_code == 200
    assert first.json()["requeued"] >= 2
    assert first.json()["given_up"] >= 2
    assert requests.post(recovery, timeout=30).status_code == 200  # the job fired twice

    def sent_bodies() -> list[str]:
        return sorted(c["body"]["text"]["body"] for c in meta.sends_to(customer)[1:])

    wait_for(lambda: len(sent_bodies()) == 2 or None)
    time.sleep(1.5)
    assert sent_bodies() == ["AI, 20 minutes ago", "agent, 20 minutes ago"]
    statuses = {m.body: m for m in messages_of(demo_tenant, conversation.id) if m.body in stuck}
    assert statuses["AI, 2 hours ago"].status == "failed"
    assert statuses["agent, 25 hours ago"].status == "failed"
    assert statuses["agent, 25 hours ago"].error_title
    assert statuses["agent, 5 minutes ago"].status == "queued"


def test_sender_rejects_a_malformed_task_without_retry(meta: Meta) -> None:
    sender = meta.info["functions"]["message-sender"]
    assert requests.post(sender, json={"kind": "send"}, timeout=5).status_code == 400
    assert requests.post(sender, data=b"not json", timeout=5).status_code == 400
    assert requests.get(sender, timeout=5).status_code == 405


def test_a_status_that_outruns_its_message_is_redelivered_until_it_matches(meta: Meta, demo_tenant: uuid.UUID) -> None:
    """Meta's `delivered` can arrive before the sender committed the message id: the status
    handler asks for a redelivery (Pub/Sub push retry) and applies it once the id is there."""
    customer = new_customer()
    meta.say(customer, "hello")
    settled(meta, customer, 1)
    [conversation] = conversations_of(demo_tenant, customer)
    wamid = f"wamid.LATE{uuid.uuid4().hex.upper()}"
    payload = fixture("status_delivered")
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = meta.phone_number_id
    status = value["statuses"][0]
    status.update(id=wamid, timestamp=str(int(time.time())), recipient_id=customer["phone"])
    status.pop("recipient_user_id", None)
    value.pop("contacts", None)
    assert meta.deliver(payload).status_code == 200
    time.sleep(1.5)  # at least one delivery failed: no such message yet
    message_id = add_outbound(
        demo_tenant,
        conversation,
        "sent by the sender a moment ago",
        status="sent",
        wa_message_id=wamid,
        sent_at=datetime.now(UTC),
    )

    def delivered() -> Message | None:
        with tenant_session(demo_tenant) as session:
            row = session.get(Message, message_id)
            return row if row is not None and row.status == "delivered" else None

    assert wait_for(delivered, timeout=30).delivered_at is not None
