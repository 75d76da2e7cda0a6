"""Drives the running local stack the way Meta and a customer would: signed webhook
deliveries built from the JSON fixtures, and the simulator's record of what we sent."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests

from emulators.seed import DEMO_PASSWORD
from shared.whatsapp.signature import sign

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "whatsapp"
T = TypeVar("T")
# What WhatsApp accepted: the simulator's status webhooks move a sent message on to delivered
# and read within a fraction of a second, so a check for "sent" alone races with them.
ACCEPTED = frozenset({"sent", "delivered", "read"})


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def new_customer() -> dict[str, str]:
    """A customer nobody else in the test session uses: Indonesian phone and a BSUID."""
    digits = str(uuid.uuid4().int)[:10]
    return {"phone": f"6281{digits}", "bsuid": f"ID.{uuid.uuid4().int % 10**18}", "name": "Rina"}


def inbound(
    fixture_name: str,
    phone_number_id: str,
    customer: dict[str, str | None],
    *,
    text: str | None = None,
    wamid: str | None = None,
    timestamp: float | None = None,
) -> tuple[dict[str, Any], str]:
    """A one-message delivery from `fixture_name`, re-addressed to this outlet and customer.
    A customer without "phone" is a username user: the payload carries only the BSUID."""
    payload = copy.deepcopy(fixture(fixture_name))
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = phone_number_id
    message = value["messages"][0]
    wamid = wamid or f"wamid.TEST{uuid.uuid4().hex.upper()}"
    message["id"] = wamid
    message["timestamp"] = str(int(timestamp if timestamp is not None else time.time()))
    for key, field in (("from", "phone"), ("from_user_id", "bsuid")):
        message.pop(key, None)
        if customer.get(field):
            message[key] = customer[field]
    message.pop("from_parent_user_id", None)
    contact: dict[str, Any] = {"profile": {"name": customer.get("name") or "Customer"}}
    if customer.get("phone"):
        contact["wa_id"] = customer["phone"]
    if customer.get("bsuid"):
        contact["user_id"] = customer["bsuid"]
    if customer.get("username"):
        contact["profile"]["username"] = customer["username"]
    value["contacts"] = [contact]
    if text is not None:
        message["text"] = {"body": text}
    return payload, wamid


def id_token(stack: Any, email: str, password: str = DEMO_PASSWORD) -> str:
    """Sign in the way the dashboard's Firebase client does, against the Auth emulator."""
    url = (
        f"http://{stack.info['firebase_auth_emulator_host']}/identitytoolkit.googleapis.com/v1/"
        "accounts:signInWithPassword?key=local-dev"
    )
    answer = requests.post(url, json={"email": email, "password": password, "returnSecureToken": True}, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["idToken"])


def wait_for(check: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.1) -> T:
    """Poll until `check` returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


class Meta:
    """Meta's side of the wire: delivers webhooks and reads the Graph simulator."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.webhook_url: str = info["webhook_url"]
        self.graph_url: str = info["whatsapp_graph_api_url"]
        self.app_secret: str = info["app_secret"]
        self.phone_number_id: str = info["demo"]["phone_number_id"]
        self.http = requests.Session()

    def deliver(
        self, payload: dict[str, Any] | bytes, *, secret: str | None = None, signature: str | None = None
    ) -> requests.Response:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature or sign(raw, secret or self.app_secret),
        }
        try:
            return self.http.post(self.webhook_url, data=raw, headers=headers, timeout=10)
        except requests.ConnectionError:
            # A kept-alive connection the server closed as this POST went: Meta redelivers too.
            return self.http.post(self.webhook_url, data=raw, headers=headers, timeout=10)

    def say(
        self,
        customer: dict[str, str | None],
        text: str,
        fixture_name: str = "text_phone_and_bsuid",
        **kwargs: Any,
    ) -> str:
        payload, wamid = inbound(fixture_name, self.phone_number_id, customer, text=text, **kwargs)
        response = self.deliver(payload)
        assert response.status_code == 200, response.text
        return wamid

    def calls(self, kind: str | None = "send") -> list[dict[str, Any]]:
        calls = self.http.get(f"{self.graph_url}/_sim/calls", timeout=5).json()["calls"]
        return [c for c in calls if kind is None or c["kind"] == kind]

    def sends_to(self, customer: dict[str, str | None], *, accepted_only: bool = True) -> list[dict[str, Any]]:
        """Send calls addressed to this customer (by phone, or by BSUID when it has none)."""

        def addressed(call: dict[str, Any]) -> bool:
            body = call["body"]
            return (
                body.get("to") == customer.get("phone")
                if customer.get("phone")
                else body.get("recipient") == customer.get("bsuid")
            )

        return [c for c in self.calls("send") if addressed(c) and (c["status"] == 200 or not accepted_only)]

    def fail_next(
        self,
        count: int,
        *,
        error_code: int | None = None,
        http_status: int | None = None,
        stall_seconds: float | None = None,
    ) -> None:
        body: dict[str, Any] = {"count": count}
        if stall_seconds is not None:
            body["stall_seconds"] = stall_seconds
        if error_code is not None:
            body["error_code"] = error_code
        if http_status is not None:
            body["http_status"] = http_status
        response = self.http.post(f"{self.graph_url}/_sim/failures", json=body, timeout=5)
        assert response.status_code == 200, response.text

    def clear_failures(self) -> None:
        self.http.delete(f"{self.graph_url}/_sim/failures", timeout=5)
