"""Staff changes from the attacker's side: a removed agent's old ID token no longer reads
Firestore nor acts through any API; a demoted admin's old token stops at once; outlet access
tokens never appear in a response or a log line; every change and customer-data read is in
the audit log, which owners and admins page through."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from emulators.stack import LocalStack
from shared.conversations import dashboard
from shared.conversations.handoff import HANDOFF_NOTICE
from shared.conversations.hours import DAYS
from tests.pipeline.driver import Meta, new_customer, wait_for
from tests.pipeline.operators import NewBusiness, call, make_operator, new_business, register_number, sign_in_with_link
from tests.pipeline.staff import plant_conversation
from tests.test_dashboard import read


@pytest.fixture(scope="module")
def shop(stack: LocalStack) -> NewBusiness:
    operator = make_operator(stack, f"ops-{uuid.uuid4().hex[:6]}@platform.test")
    return new_business(stack, operator, "Toko Kelontong", plan="growth")


def invite(stack: LocalStack, shop: NewBusiness, role: str, outlet_id: str | None = None) -> tuple[str, str]:
    """(user id, signed-in ID token) of a new staff member."""
    email = f"{role}-{uuid.uuid4().hex[:6]}@newshop.test"
    body = {"email": email, "role": role, "outlet_id": outlet_id}
    answer = call(stack, "tenant-api", "POST", "/api/v1/staff", shop.owner_token, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["member"]["id"], sign_in_with_link(stack, email, answer.json()["sign_in_link"])


def connect(stack: LocalStack, shop: NewBusiness, token: str) -> dict[str, str]:
    number = register_number(stack, token)
    body = {"name": "Pusat", "phone_number_id": number["phone_number_id"], "waba_id": number["waba_id"]}
    answer = call(
        stack, "tenant-api", "POST", "/api/v1/outlets", shop.owner_token, json={**body, "access_token": token}
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_a_removed_agent_reads_and_does_nothing_with_an_old_token(stack: LocalStack, shop: NewBusiness) -> None:
    outlet = connect(stack, shop, f"EAAG{uuid.uuid4().hex}{uuid.uuid4().hex}")
    conversation = plant_conversation(shop.tenant_id, uuid.UUID(outlet["id"]))
    dashboard.mirror(shop.tenant_id, conversation)
    path = dashboard.conversation_path(shop.tenant_id, conversation)
    user_id, token = invite(stack, shop, "agent", outlet["id"])
    assert read(stack, path, token).status_code == 200  # the control: it reads, and acts
    take_over = f"/conversations/{conversation}/take-over"
    assert call(stack, "agent-actions", "GET", f"/conversations/{conversation}", token).status_code == 200

    answer = call(stack, "tenant-api", "DELETE", f"/api/v1/staff/{user_id}", shop.owner_token)
    assert answer.status_code == 200, answer.text

    assert read(stack, path, token).status_code == 403
    assert call(stack, "agent-actions", "POST", take_over, token).status_code == 401
    assert call(stack, "agent-actions", "GET", f"/conversations/{conversation}", token).status_code == 401
    assert call(stack, "tenant-api", "GET", "/api/v1/tenant", token).status_code == 401
    members = call(stack, "tenant-api", "GET", "/api/v1/staff", shop.owner_token).json()["staff"]
    assert user_id not in {m["id"] for m in members}


def test_a_demoted_admin_loses_admin_rights_at_once(stack: LocalStack, shop: NewBusiness) -> None:
    user_id, token = invite(stack, shop, "admin")
    assert call(stack, "tenant-api", "GET", "/api/v1/staff", token).status_code == 200
    time.sleep(1.1)  # Firebase keeps revocation times in whole seconds: a token of this second would pass
    answer = call(stack, "tenant-api", "PATCH", f"/api/v1/staff/{user_id}", shop.owner_token, json={"role": "viewer"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["role"] == "viewer"
    assert call(stack, "tenant-api", "GET", "/api/v1/staff", token).status_code == 401  # revoked: sign in again


def test_only_an_owner_makes_owners_and_the_last_owner_stays(stack: LocalStack, shop: NewBusiness) -> None:
    _, admin = invite(stack, shop, "admin")
    body = {"email": f"x-{uuid.uuid4().hex[:6]}@newshop.test", "role": "owner"}
    assert call(stack, "tenant-api", "POST", "/api/v1/staff", admin, json=body).status_code == 403
    me = next(
        m
        for m in call(stack, "tenant-api", "GET", "/api/v1/staff", shop.owner_token).json()["staff"]
        if m["email"] == shop.owner_email
    )
    answer = call(stack, "tenant-api", "DELETE", f"/api/v1/staff/{me['id']}", shop.owner_token)
    assert answer.status_code == 409
    assert "at least one owner" in answer.json()["error"]["message"]


def test_access_tokens_never_appear_in_responses_or_logs(stack: LocalStack, shop: NewBusiness) -> None:
    secret = f"EAAGsecret{uuid.uuid4().hex}{uuid.uuid4().hex}"
    seen = []
    outlet = connect(stack, shop, secret)
    seen.append(call(stack, "tenant-api", "GET", "/api/v1/outlets", shop.owner_token).text)
    rotated = f"EAAGrotated{uuid.uuid4().hex}{uuid.uuid4().hex}"
    register_number(stack, rotated)  # another number: the rotated token cannot read this one
    answer = call(
        stack,
        "tenant-api",
        "PUT",
        f"/api/v1/outlets/{outlet['id']}/access-token",
        shop.owner_token,
        json={"access_token": rotated},
    )
    assert answer.status_code == 422  # Meta refuses it for this number: the old token stays
    seen.append(answer.text)
    bad = call(stack, "tenant-api", "POST", "/api/v1/outlets", shop.owner_token, json={"access_token": secret})
    assert bad.status_code == 400
    seen.append(bad.text)
    seen.append(call(stack, "tenant-api", "GET", "/api/v1/audit-log", shop.owner_token).text)
    seen.append(call(stack, "tenant-api", "GET", "/openapi.json", None).text)
    for text in seen:
        assert secret not in text
        assert rotated not in text
    logs = "".join(p.read_text(errors="replace") for p in Path(stack.info["logs"]).glob("*.log"))
    assert "tenant-api" in logs  # the logs were read, and they saw the requests
    assert secret not in logs
    assert rotated not in logs


def test_changes_and_reads_of_customer_data_are_audited(stack: LocalStack, shop: NewBusiness) -> None:
    outlets = call(stack, "tenant-api", "GET", "/api/v1/outlets", shop.owner_token).json()["outlets"]
    conversation = plant_conversation(shop.tenant_id, uuid.UUID(outlets[0]["id"]))
    assert call(stack, "agent-actions", "GET", f"/conversations/{conversation}", shop.owner_token).status_code == 200
    answer = call(
        stack, "tenant-api", "PATCH", "/api/v1/tenant", shop.owner_token, json={"contact_phone": "+628111234567"}
    )
    assert answer.status_code == 200, answer.text

    def entries(**query: object) -> dict[str, object]:
        answer = call(stack, "tenant-api", "GET", "/api/v1/audit-log", shop.owner_token, params=query)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    reads = wait_for(lambda: entries(action="conversation.read")["entries"])
    assert reads[0]["target_id"] == str(conversation)
    assert reads[0]["actor_type"] == "user"
    assert entries(action="tenant.update")["entries"]
    assert entries(action="tenant.create")["entries"][0]["actor_type"] == "platform"

    first = entries(limit=2)
    assert len(first["entries"]) == 2
    second = entries(limit=2, cursor=first["next_cursor"])
    assert {e["id"] for e in first["entries"]}.isdisjoint({e["id"] for e in second["entries"]})

    _, agent = invite(stack, shop, "agent")
    assert call(stack, "tenant-api", "GET", "/api/v1/audit-log", agent).status_code == 403


def test_outside_business_hours_the_handoff_says_when_staff_are_back(stack: LocalStack, shop: NewBusiness) -> None:
    token = f"EAAG{uuid.uuid4().hex}{uuid.uuid4().hex}"
    outlet = connect(stack, shop, token)
    now = datetime.now(ZoneInfo("Asia/Jakarta"))
    span = ["13:00", "14:00"] if now.hour < 12 else ["01:00", "02:00"]  # closed now, whatever the hour
    hours = {"timezone": "Asia/Jakarta", "weekly": {day: [span] for day in DAYS}}
    answer = call(
        stack,
        "tenant-api",
        "PATCH",
        f"/api/v1/outlets/{outlet['id']}",
        shop.owner_token,
        json={"business_hours": hours},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["business_hours"]["weekly"]["mon"] == [span]
    bad = {"business_hours": {"weekly": {"mon": [["18:00", "09:00"]]}}}
    assert (
        call(stack, "tenant-api", "PATCH", f"/api/v1/outlets/{outlet['id']}", shop.owner_token, json=bad).status_code
        == 400
    )

    meta = Meta(stack.info)
    meta.phone_number_id = outlet["phone_number_id"]
    customer = new_customer()
    meta.say(customer, "saya mau bicara dengan manusia")
    [notice] = wait_for(lambda: meta.sends_to(customer), timeout=60)
    text = notice["body"]["text"]["body"]
    assert text.startswith(HANDOFF_NOTICE["id"])
    assert f"pukul {span[0]}" in text
