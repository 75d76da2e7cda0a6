"""The whatsapp-webhook function over HTTP, as Meta reaches it."""

from __future__ import annotations

import json
import uuid

import requests

from shared.assistant.replies import fallback_text
from shared.db import platform
from shared.db.models import Outlet
from shared.db.tenancy import tenant_session
from shared.sending.access_tokens import encrypt_access_token
from tests.pipeline.driver import Meta, fixture, inbound, new_customer, wait_for


def test_subscription_handshake_echoes_the_challenge(meta: Meta) -> None:
    token = meta.info["webhook_verify_token"]
    ok = requests.get(
        meta.webhook_url,
        params={"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"},
        timeout=5,
    )
    assert ok.status_code == 200
    assert ok.text == "1158201444"
    wrong = requests.get(
        meta.webhook_url,
        params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
        timeout=5,
    )
    assert wrong.status_code == 403
    not_subscribe = requests.get(
        meta.webhook_url,
        params={"hub.mode": "unsubscribe", "hub.verify_token": token, "hub.challenge": "1"},
        timeout=5,
    )
    assert not_subscribe.status_code == 403


def test_forged_or_missing_signature_is_rejected_and_nothing_is_sent(meta: Meta) -> None:
    customer = new_customer()
    payload, _ = inbound("text_phone_and_bsuid", meta.phone_number_id, customer, text="halo")
    forged = meta.deliver(payload, secret="not-the-app-secret")
    assert forged.status_code == 401
    raw = json.dumps(payload).encode()
    missing = requests.post(meta.webhook_url, data=raw, headers={"Content-Type": "application/json"}, timeout=5)
    assert missing.status_code == 401
    assert "signature" in missing.json()["error"].lower()
    assert meta.sends_to(customer) == []


def test_tampered_body_fails_the_signature(meta: Meta) -> None:
    payload, _ = inbound("text_phone_and_bsuid", meta.phone_number_id, new_customer(), text="halo")
    raw = json.dumps(payload).encode()
    from shared.whatsapp.signature import sign

    signature = sign(raw, meta.app_secret)
    tampered = raw.replace(b"halo", b"HALO")
    assert meta.deliver(tampered, signature=signature).status_code == 401


def test_oversized_body_is_refused_with_413(meta: Meta) -> None:
    payload, _ = inbound("text_phone_and_bsuid", meta.phone_number_id, new_customer(), text="x" * 4_200_000)
    response = meta.deliver(payload)
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]


def test_a_delivery_as_large_as_meta_sends_is_taken(meta: Meta) -> None:
    """Meta's webhook bodies reach 3 MB; refusing one would lose it after a week of retries."""
    payload = fixture("non_messages_field")
    payload["entry"][0]["changes"][0]["value"]["reason"] = "x" * 3_000_000
    assert meta.deliver(payload).status_code == 200


def test_malformed_json_is_a_400_with_a_reason(meta: Meta) -> None:
    response = meta.deliver(b'{"object": "whatsapp_business_account", "entry": [')
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    assert meta.deliver(b"[1, 2, 3]").status_code == 400


def test_signed_but_unknown_payloads_are_acknowledged(meta: Meta) -> None:
    unknown_object = meta.deliver({"object": "page", "entry": []})
    assert unknown_object.status_code == 200
    other_field = meta.deliver(fixture("non_messages_field"))
    assert other_field.status_code == 200
    assert other_field.json()["ignored"] >= 1


def test_unknown_phone_number_id_is_acknowledged_and_reported(meta: Meta) -> None:
    payload, _ = inbound("text_phone_and_bsuid", "999000999000999", new_customer(), text="hi")
    response = meta.deliver(payload)
    assert response.status_code == 200
    assert response.json()["unknown_phone_number_ids"] == ["999000999000999"]
    assert response.json()["published"] == 0


def test_a_number_connected_a_moment_ago_is_routed_at_once(meta: Meta) -> None:
    """Unknown numbers are not remembered: once the outlet exists, its next message is routed.
    (Its tenant's default language is one we have no texts for: a sticker, which has no
    words to go by, is answered in Indonesian.)"""
    phone_number_id = str(uuid.uuid4().int)[:15]
    customer = new_customer()
    early, _ = inbound("sticker", phone_number_id, customer)
    assert meta.deliver(early).json()["unknown_phone_number_ids"] == [phone_number_id]
    tenant_id = platform.create_tenant("Kedai Mak Cik", f"kedai-{uuid.uuid4().hex[:8]}", default_language="ms")
    with tenant_session(tenant_id) as session:
        session.add(
            Outlet(
                tenant_id=tenant_id,
                name="Kedai Mak Cik Johor",
                phone_number_id=phone_number_id,
                display_phone_number="+60 12-345 6789",
                waba_id="20000000000002",
                access_token_ciphertext=encrypt_access_token("EAAG-kedai-token"),
            )
        )
    later, _ = inbound("sticker", phone_number_id, customer)
    answer = meta.deliver(later).json()
    assert (answer["unknown_phone_number_ids"], answer["published"]) == ([], 1)
    [reply] = wait_for(lambda: meta.sends_to(customer))
    assert reply["body"]["text"]["body"] == fallback_text({}, "id")


def test_every_http_function_answers_its_health_path(meta: Meta) -> None:
    for name, url in meta.info["health"].items():
        response = requests.get(url, timeout=5)
        assert response.status_code == 200, name
        assert response.json() == {"status": "ok", "function": name}
