"""What dashboard clients see in Firestore: live updates, and only their own tenant's data,
checked from the attacker's side with real ID tokens from the Auth emulator against the
Firestore emulator running terraform/firestore.rules."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import requests
from google.cloud import firestore

from emulators.stack import LocalStack
from shared.conversations import dashboard
from tests.pipeline.driver import Meta, id_token, new_customer, wait_for


def read(stack: LocalStack, path: str, token: str | None) -> requests.Response:
    url = (
        f"http://{stack.info['firestore_emulator_host']}/v1/projects/{stack.info['project']}"
        f"/databases/(default)/documents/{path}"
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def documents(stack: LocalStack) -> dict[str, str]:
    """A conversation of the demo tenant at its outlet, one at another outlet, one of another tenant."""
    demo = stack.info["demo"]
    other_tenant = str(uuid.uuid4())
    paths = {
        "own": dashboard.conversation_path(demo["tenant_id"], uuid.uuid4()),
        "own_other_outlet": dashboard.conversation_path(demo["tenant_id"], uuid.uuid4()),
        "other_tenant": dashboard.conversation_path(other_tenant, uuid.uuid4()),
    }
    outlets = {
        "own": demo["outlet_id"],
        "own_other_outlet": str(uuid.uuid4()),
        "other_tenant": str(uuid.uuid4()),
    }
    for key, path in paths.items():
        tenant_id, conversation_id = path.split("/")[1], path.split("/")[3]
        dashboard.write(
            {"id": conversation_id, "tenant_id": tenant_id, "outlet_id": outlets[key], "status": "active"},
            [{"id": "m1", "outlet_id": outlets[key], "body": f"secret of {key}"}],
        )
    return paths


def test_staff_read_their_own_tenants_conversations(stack: LocalStack, documents: dict[str, str]) -> None:
    for email in ("owner@kopinusantara.test", "viewer@kopinusantara.test", "agent@kopinusantara.test"):
        token = id_token(stack, email)
        assert read(stack, documents["own"], token).status_code == 200, email
        assert read(stack, f"{documents['own']}/messages/m1", token).status_code == 200, email


def test_nobody_reads_another_tenants_conversations(stack: LocalStack, documents: dict[str, str]) -> None:
    for email in ("owner@kopinusantara.test", "admin@kopinusantara.test", "agent@kopinusantara.test"):
        token = id_token(stack, email)
        assert read(stack, documents["other_tenant"], token).status_code == 403, email
        assert read(stack, f"{documents['other_tenant']}/messages/m1", token).status_code == 403, email
        other_tenant = documents["other_tenant"].split("/")[1]
        assert read(stack, f"tenants/{other_tenant}/conversations", token).status_code == 403, email


def test_signed_out_clients_read_nothing(stack: LocalStack, documents: dict[str, str]) -> None:
    assert read(stack, documents["own"], None).status_code == 403


def test_an_outlet_scoped_agent_sees_only_that_outlet(stack: LocalStack, documents: dict[str, str]) -> None:
    agent = id_token(stack, "agent@kopinusantara.test")
    owner = id_token(stack, "owner@kopinusantara.test")
    assert read(stack, documents["own_other_outlet"], agent).status_code == 403
    assert read(stack, documents["own_other_outlet"], owner).status_code == 200


def test_clients_cannot_write(stack: LocalStack, documents: dict[str, str]) -> None:
    token = id_token(stack, "owner@kopinusantara.test")
    url = (
        f"http://{stack.info['firestore_emulator_host']}/v1/projects/{stack.info['project']}"
        f"/databases/(default)/documents/{documents['own']}?updateMask.fieldPaths=status"
    )
    answer = requests.patch(
        url,
        json={"fields": {"status": {"stringValue": "resolved"}}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 403


def test_a_listener_sees_a_new_conversation_and_its_messages(stack: LocalStack) -> None:
    """A dashboard listening on its tenant's conversations is told about a new one."""
    tenant = stack.info["demo"]["tenant_id"]
    client = firestore.Client(project=stack.info["project"])
    seen: list[dict[str, Any]] = []
    arrived = threading.Event()
    customer = new_customer()

    def on_change(snapshots: list[Any], changes: Any, read_time: Any) -> None:
        for snapshot in snapshots:
            data = snapshot.to_dict() or {}
            if (data.get("customer") or {}).get("phone") == customer["phone"]:
                seen.append(data)
                arrived.set()

    watch = client.collection(f"tenants/{tenant}/conversations").on_snapshot(on_change)
    try:
        Meta(stack.info).say(customer, "hello")
        assert arrived.wait(15), "the listener never saw the conversation"
        conversation_id = seen[-1]["id"]
        messages = wait_for(
            lambda: (
                list(client.collection(f"tenants/{tenant}/conversations/{conversation_id}/messages").stream()) or None
            )
        )
        assert any((m.to_dict() or {}).get("direction") == "inbound" for m in messages)
    finally:
        watch.unsubscribe()
