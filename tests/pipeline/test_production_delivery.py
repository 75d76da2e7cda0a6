"""What production delivers, as production delivers it: a Pub/Sub push body posted straight to
a function (no CloudEvent headers: functions-framework converts it), and one trace across every
hop of a customer message (webhook, Pub/Sub, conversation, Cloud Tasks, sender), its id on each
log line of that message."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from emulators.stack import LocalStack
from shared.whatsapp.signature import sign
from shared.whatsapp.updates import parse_webhook
from tests.pipeline.driver import Meta, inbound, new_customer, wait_for

TRACE_KEY = "logging.googleapis.com/trace"


def push_body(envelope: dict[str, Any], attributes: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON a Pub/Sub push subscription POSTs (without the --push-no-wrapper option)."""
    return {
        "message": {
            "data": base64.b64encode(json.dumps(envelope).encode()).decode(),
            "attributes": attributes or {},
            "messageId": str(secrets.randbelow(10**16)),
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "orderingKey": f"{envelope['outlet_id']}:test",
        },
        "subscription": "projects/whatsapp-crm-local/subscriptions/conversation.push",
    }


def log_lines(stack: LocalStack) -> list[dict[str, Any]]:
    lines = []
    for path in Path(stack.info["logs"]).glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
    return lines


def test_a_push_body_reaches_the_conversation_function_as_its_cloud_event(
    stack: LocalStack, meta: Meta, demo_tenant: uuid.UUID
) -> None:
    customer = new_customer()
    payload, _ = inbound("text_phone_and_bsuid", meta.phone_number_id, customer, text="do you sell beans?")
    [event] = parse_webhook(payload).events
    envelope = {
        "tenant_id": str(demo_tenant),
        "outlet_id": meta.info["demo"]["outlet_id"],
        "event": event.to_json_dict(),
    }
    body = push_body(envelope)
    url = stack.info["functions"]["conversation"]
    answer = requests.post(url, json=body, timeout=60)  # Pub/Sub sends application/json and nothing else
    assert answer.status_code == 200, answer.text
    [send] = wait_for(lambda: meta.sends_to(customer) or None)
    assert send["body"]["to"] == customer["phone"]
    # Redelivered, the same push body is acknowledged again and sends nothing more.
    assert requests.post(url, json=body, timeout=60).status_code == 200
    assert len(meta.sends_to(customer)) == 1


def test_a_push_body_that_is_not_ours_is_acknowledged_not_retried(stack: LocalStack) -> None:
    body = push_body({"outlet_id": "x"})
    body["message"]["data"] = base64.b64encode(b"not json").decode()
    answer = requests.post(stack.info["functions"]["conversation"], json=body, timeout=30)
    assert answer.status_code == 200  # a retry cannot fix it: no redelivery for a week


def test_one_trace_follows_a_customer_message_through_every_function(stack: LocalStack, meta: Meta) -> None:
    customer = new_customer()
    payload, wamid = inbound("text_phone_and_bsuid", meta.phone_number_id, customer, text="what time do you open?")
    raw = json.dumps(payload).encode()
    trace_id = secrets.token_hex(16)
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(raw, meta.app_secret),
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",  # as Google's front end adds it
    }
    assert requests.post(meta.webhook_url, data=raw, headers=headers, timeout=10).status_code == 200
    wait_for(lambda: meta.sends_to(customer) or None)
    trace = f"projects/{stack.info['project']}/traces/{trace_id}"

    def traced() -> list[dict[str, Any]] | None:
        lines = [line for line in log_lines(stack) if line.get(TRACE_KEY) == trace]
        sent = [line for line in lines if line.get("function") == "message-sender" and "task send" in line["message"]]
        return lines if sent else None

    lines = wait_for(traced)
    assert {"whatsapp-webhook", "conversation", "message-sender"} <= {line["function"] for line in lines}
    # Every line about this message carries the same trace, whichever function wrote it.
    about = [line for line in log_lines(stack) if line.get("wa_message_id") == wamid]
    assert about
    assert all(line.get(TRACE_KEY) == trace for line in about)


def test_a_message_without_a_trace_starts_one_of_its_own(stack: LocalStack, meta: Meta) -> None:
    customer = new_customer()
    wamid = meta.say(customer, "hello there")
    wait_for(lambda: meta.sends_to(customer) or None)
    handled = wait_for(
        lambda: [line for line in log_lines(stack) if line.get("wa_message_id") == wamid and TRACE_KEY in line] or None
    )
    trace = handled[0][TRACE_KEY]
    assert trace.startswith(f"projects/{stack.info['project']}/traces/")
    assert len(trace.rsplit("/", 1)[1]) == 32
    others = [line for line in log_lines(stack) if line.get(TRACE_KEY) == trace]
    assert {"whatsapp-webhook", "conversation"} <= {line["function"] for line in others}
