"""The Graph API simulator: its answers, its controls, and the status webhooks it signs."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.whatsapp_simulator import create_app
from shared.whatsapp.errors import ReEngagementRequired
from shared.whatsapp.graph import GraphClient, Recipient
from shared.whatsapp.signature import verify_signature
from shared.whatsapp.updates import CustomerIdentity, StatusUpdate, parse_webhook
from tests.whatsapp.conftest import RunningSimulator, WebhookReceiver

SECRET = "simulator-app-secret"
TOKEN = "EAAGm0PX4ZCpsBAKZC-secret-token-value"
PN_ID = "106540352242922"
PHONE = "6281234567890"
BSUID = "ID.1502576394655843"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def post(simulator: RunningSimulator, path: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{simulator.url}{path}", json=body, headers=headers or AUTH, timeout=5)


def text_to(**addressing: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", **addressing, "type": "text", "text": {"body": "Halo"}}


def test_health(simulator: RunningSimulator) -> None:
    assert requests.get(f"{simulator.url}/_sim/health", timeout=5).json() == {"status": "ok"}


def test_send_answers_like_meta(simulator: RunningSimulator) -> None:
    by_phone = post(simulator, f"/v23.0/{PN_ID}/messages", text_to(to="+" + PHONE)).json()
    by_bsuid = post(simulator, f"/v23.0/{PN_ID}/messages", text_to(recipient=BSUID)).json()
    assert by_phone["messaging_product"] == "whatsapp"
    assert by_phone["contacts"] == [{"input": "+" + PHONE, "wa_id": PHONE}]
    assert by_bsuid["contacts"] == [{"input": BSUID, "user_id": BSUID}]
    assert re.fullmatch(r"wamid\.[A-Za-z0-9]+", by_phone["messages"][0]["id"])
    assert by_phone["messages"][0]["id"] != by_bsuid["messages"][0]["id"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}])
def test_missing_token_is_a_190(simulator: RunningSimulator, headers: dict[str, str]) -> None:
    answer = requests.post(
        f"{simulator.url}/v23.0/{PN_ID}/messages", json=text_to(to=PHONE), headers=headers, timeout=5
    )
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert (error["code"], error["type"]) == (190, "OAuthException")
    assert error["fbtrace_id"]
    (call,) = requests.get(f"{simulator.url}/_sim/calls", timeout=5).json()["calls"]
    assert (call["status"], call["authorized"], call["error_code"]) == (401, False, 190)


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({**text_to(to=PHONE), "messaging_product": "sms"}, "messaging_product"),
        (text_to(to=PHONE, recipient=BSUID), "exactly one of to"),
        (text_to(), "exactly one of to"),
        (text_to(to="budi"), "to must be a phone number"),
        (text_to(recipient=PHONE), "business-scoped user ID"),
        ({**text_to(to=PHONE), "type": "hologram"}, "type must be one of"),
        ({**text_to(to=PHONE), "text": "Halo"}, "text must be an object"),
        ({**text_to(to=PHONE), "text": {"body": ""}}, "text.body"),
        ({**text_to(to=PHONE), "text": {"body": "x" * 4097}}, "4096"),
        ({**text_to(to=PHONE), "type": "image", "image": {"caption": "no id"}}, "id or a link"),
        ({**text_to(to=PHONE), "type": "template", "template": {"name": "x"}}, "language.code"),
        ({**text_to(to=PHONE), "type": "contacts", "contacts": []}, "contacts"),
        ({**text_to(to=PHONE), "context": {"message_id": 5}}, "context.message_id"),
        (
            {"messaging_product": "whatsapp", "status": "delivered", "message_id": "wamid.X"},
            'status must be "read"',
        ),
        ({"messaging_product": "whatsapp", "status": "read"}, "message_id"),
        (
            {
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": "wamid.X",
                "typing_indicator": True,
            },
            "typing_indicator",
        ),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_invalid_requests_get_a_meta_shaped_100(simulator: RunningSimulator, body: Any, details: str) -> None:
    answer = post(simulator, f"/v23.0/{PN_ID}/messages", body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == 100
    assert error["message"] == "(#100) Invalid parameter"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert details in error["error_data"]["details"]


def test_calls_are_recorded_filtered_and_cleared(simulator: RunningSimulator) -> None:
    post(simulator, "/v23.0/111/messages", text_to(to=PHONE))
    post(simulator, "/v23.0/222/messages", text_to(recipient=BSUID))
    post(
        simulator,
        "/v23.0/222/messages",
        {"messaging_product": "whatsapp", "status": "read", "message_id": "w"},
    )
    everything = requests.get(f"{simulator.url}/_sim/calls", timeout=5).json()["calls"]
    assert [c["phone_number_id"] for c in everything] == ["111", "222", "222"]
    assert [c["kind"] for c in everything] == ["send", "send", "mark_read"]
    assert all(c["time"] and c["authorized"] for c in everything)
    only_222 = requests.get(f"{simulator.url}/_sim/calls", params={"phone_number_id": "222"}, timeout=5).json()
    assert len(only_222["calls"]) == 2
    assert requests.delete(f"{simulator.url}/_sim/calls", timeout=5).json() == {"cleared": True}
    assert requests.get(f"{simulator.url}/_sim/calls", timeout=5).json() == {"calls": []}


def test_failure_controls(simulator: RunningSimulator) -> None:
    armed = post(simulator, "/_sim/failures", {"count": 3, "error_code": 131047}).json()
    assert armed == {"count": 3, "http_status": 400, "error_code": 131047, "include_read": False, "stall_seconds": None}
    failed = post(simulator, f"/v23.0/{PN_ID}/messages", text_to(to=PHONE))
    assert failed.status_code == 400
    error = failed.json()["error"]
    assert error["code"] == 131047
    assert error["message"] == "(#131047) Re-engagement message"
    assert requests.delete(f"{simulator.url}/_sim/failures", timeout=5).json() == {"cleared": True}
    assert post(simulator, f"/v23.0/{PN_ID}/messages", text_to(to=PHONE)).status_code == 200


def test_a_code_and_a_status_can_be_combined(simulator: RunningSimulator) -> None:
    post(simulator, "/_sim/failures", {"count": 1, "error_code": 131000, "http_status": 502})
    answer = post(simulator, f"/v23.0/{PN_ID}/messages", text_to(to=PHONE))
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == 131000


def test_a_bare_http_status_answers_without_json(simulator: RunningSimulator) -> None:
    post(simulator, "/_sim/failures", {"count": 1, "http_status": 503})
    answer = post(simulator, f"/v23.0/{PN_ID}/messages", text_to(to=PHONE))
    assert answer.status_code == 503
    assert answer.headers["Content-Type"].startswith("text/html")


def test_invalid_requests_do_not_use_up_a_failure(simulator: RunningSimulator) -> None:
    post(simulator, "/_sim/failures", {"count": 1, "error_code": 131026})
    assert post(simulator, f"/v23.0/{PN_ID}/messages", text_to()).json()["error"]["code"] == 100
    assert post(simulator, f"/v23.0/{PN_ID}/messages", text_to(to=PHONE)).json()["error"]["code"] == 131026


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"count": 0, "error_code": 131047},
        {"count": 1},
        {"count": 1, "http_status": 200},
        {"count": True, "error_code": 1},
        {"count": 1, "error_code": "131047"},
        {"count": 1, "stall_seconds": 0},
        {"count": 1, "stall_seconds": 61},
        {"count": 1, "stall_seconds": True},
        {"count": 1, "stall_seconds": 2, "error_code": 131000},
    ],
)
def test_failure_specs_are_validated(simulator: RunningSimulator, spec: dict[str, Any]) -> None:
    assert post(simulator, "/_sim/failures", spec).status_code == 400


def test_unknown_paths_answer_json_404(simulator: RunningSimulator) -> None:
    answer = requests.get(f"{simulator.url}/v23.0/{PN_ID}/media", timeout=5)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == 404


def test_record_file_gets_every_call(serve_wsgi: Callable[[Any], str], tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    url = serve_wsgi(create_app(record_path=record))
    requests.post(f"{url}/v23.0/{PN_ID}/messages", json=text_to(to=PHONE), headers=AUTH, timeout=5)
    requests.post(f"{url}/v23.0/{PN_ID}/messages", json=text_to(), headers=AUTH, timeout=5)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line["status"] for line in lines] == [200, 400]
    assert lines[0]["body"]["to"] == PHONE
    assert lines[0]["wamid"]


# Status webhooks ----------------------------------------------------------------------------------


def statuses_of(receiver: WebhookReceiver, count: int) -> list[StatusUpdate]:
    received = receiver.wait_for(count)
    assert len(received) == count, f"expected {count} webhooks, got {len(received)}"
    result: list[StatusUpdate] = []
    for webhook in received:
        assert webhook.headers["Content-Type"] == "application/json"
        assert verify_signature(webhook.body, webhook.headers["X-Hub-Signature-256"], SECRET)
        batch = parse_webhook(json.loads(webhook.body))
        assert batch.rejected == ()
        assert batch.ignored == ()
        result.extend(batch.statuses)
    return result


def test_sends_are_followed_by_signed_status_webhooks(
    serve_wsgi: Callable[[Any], str], webhook_receiver: WebhookReceiver
) -> None:
    url = serve_wsgi(create_app(webhook_receiver.url, SECRET, status_delay=0.01))
    client = GraphClient(url, "v23.0", TOKEN)
    wamid = client.send_text(PN_ID, Recipient(phone=PHONE, bsuid=BSUID), "Halo", tracking="message-1")
    statuses = statuses_of(webhook_receiver, 3)
    assert [s.status for s in statuses] == ["sent", "delivered", "read"]
    assert {s.biz_opaque_callback_data for s in statuses} == {"message-1"}
    assert {s.id for s in statuses} == {wamid}
    assert {s.phone_number_id for s in statuses} == {PN_ID}
    assert {s.recipient for s in statuses} == {CustomerIdentity(phone=PHONE)}
    assert all(s.pricing for s in statuses)
    assert statuses[0].timestamp <= statuses[2].timestamp


def test_bsuid_sends_get_statuses_addressed_by_bsuid(
    serve_wsgi: Callable[[Any], str], webhook_receiver: WebhookReceiver
) -> None:
    url = serve_wsgi(create_app(webhook_receiver.url, SECRET, status_delay=0.01))
    GraphClient(url, "v23.0", TOKEN).send_template(PN_ID, Recipient(bsuid=BSUID), "order_shipped", "id")
    statuses = statuses_of(webhook_receiver, 3)
    assert {s.recipient for s in statuses} == {CustomerIdentity(bsuid=BSUID)}
    assert statuses[0].pricing == {
        "billable": True,
        "pricing_model": "PMP",
        "category": "utility",
        "type": "regular",
    }


def test_no_status_webhooks_for_failed_sends_or_mark_reads(
    serve_wsgi: Callable[[Any], str], webhook_receiver: WebhookReceiver
) -> None:
    url = serve_wsgi(create_app(webhook_receiver.url, SECRET, status_delay=0.01))
    requests.post(f"{url}/_sim/failures", json={"count": 1, "error_code": 131047}, timeout=5)
    client = GraphClient(url, "v23.0", TOKEN)
    with pytest.raises(ReEngagementRequired):
        client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    client.mark_read(PN_ID, "wamid.IN", typing_indicator=True)
    wamid = client.send_text(PN_ID, Recipient(phone=PHONE), "Halo lagi")
    assert {s.id for s in statuses_of(webhook_receiver, 3)} == {wamid}
    time.sleep(0.2)
    assert len(webhook_receiver.received) == 3


def test_status_webhooks_can_be_configured_at_runtime(
    simulator: RunningSimulator, webhook_receiver: WebhookReceiver
) -> None:
    client = GraphClient(simulator.url, "v23.0", TOKEN)
    config = post(
        simulator,
        "/_sim/config",
        {
            "webhook_url": webhook_receiver.url,
            "app_secret": SECRET,
            "status_webhooks": True,
            "status_delay": 0.01,
        },
    ).json()
    assert config == {
        "webhook_url": webhook_receiver.url,
        "app_secret_set": True,
        "status_webhooks": True,
        "status_delay": 0.01,
    }
    wamid = client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    assert {s.id for s in statuses_of(webhook_receiver, 3)} == {wamid}

    assert post(simulator, "/_sim/config", {"status_webhooks": False}).json()["status_webhooks"] is False
    client.send_text(PN_ID, Recipient(phone=PHONE), "Halo lagi")
    time.sleep(0.3)
    assert len(webhook_receiver.received) == 3
    shown = requests.get(f"{simulator.url}/_sim/config", timeout=5).text
    assert SECRET not in shown


@pytest.mark.parametrize(
    "spec",
    [
        {"status_webhooks": True},  # no URL or secret yet
        {"webhook_url": 5},
        {"app_secret": ["x"]},
        {"status_delay": -1},
        {"status_delay": "soon"},
    ],
)
def test_config_is_validated(simulator: RunningSimulator, spec: dict[str, Any]) -> None:
    assert post(simulator, "/_sim/config", spec).status_code == 400
    assert requests.get(f"{simulator.url}/_sim/config", timeout=5).json()["status_webhooks"] is False


def test_an_unreachable_webhook_url_does_not_break_the_simulator(
    serve_wsgi: Callable[[Any], str], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nobody listens there once the block ends
    url = serve_wsgi(create_app(f"http://127.0.0.1:{closed_port}/whatsapp-webhook", SECRET, status_delay=0.01))
    client = GraphClient(url, "v23.0", TOKEN)
    with caplog.at_level("WARNING", logger="whatsapp_simulator"):
        client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
        deadline = time.monotonic() + 5
        while len([r for r in caplog.records if "not delivered" in r.getMessage()]) < 3:
            assert time.monotonic() < deadline, "the simulator did not report the failed webhooks"
            time.sleep(0.02)
    client.send_text(PN_ID, Recipient(phone=PHONE), "still answering")


# Command line -----------------------------------------------------------------------------------


def test_main_serves_on_loopback(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulators.whatsapp_simulator",
            "--port",
            "0",
            "--record",
            str(tmp_path / "r.jsonl"),
        ],
        cwd=root,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            url = match.group(1) if match else None
        assert url, "the simulator did not say where it listens"
        assert requests.get(f"{url}/_sim/health", timeout=5).json() == {"status": "ok"}
        assert GraphClient(url, "v23.0", TOKEN).send_text(PN_ID, Recipient(phone=PHONE), "Halo").startswith("wamid.")
        assert json.loads((tmp_path / "r.jsonl").read_text())["status"] == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
