"""A business from nothing: `scripts/admin` makes an operator, the operator creates the
tenant, its owner connects a WhatsApp number (against the simulator) and invites staff, uploads
a price list, and a customer gets an AI answer through the webhook. No seed data is involved."""

from __future__ import annotations

import uuid

import pytest
import requests

from emulators.stack import LocalStack
from tests.pipeline.driver import Meta, new_customer, wait_for
from tests.pipeline.knowledge import XLSX, price_list
from tests.pipeline.operators import call, make_operator, new_business, register_number, sign_in_with_link


@pytest.fixture(scope="module")
def operator(stack: LocalStack) -> str:
    return make_operator(stack, f"ops-{uuid.uuid4().hex[:6]}@platform.test")


def test_a_new_business_answers_customers_with_no_seed_data(stack: LocalStack, operator: str) -> None:
    shop = new_business(stack, operator, "Toko Roti Baru")
    token = f"EAAG{uuid.uuid4().hex}{uuid.uuid4().hex}"
    number = register_number(stack, token)

    # A wrong token is refused by Meta: 422, and nothing is stored.
    wrong = {"name": "Toko Roti Pusat", **{k: number[k] for k in ("phone_number_id", "waba_id")}}
    answer = call(
        stack,
        "tenant-api",
        "POST",
        "/api/v1/outlets",
        shop.owner_token,
        json={**wrong, "access_token": "EAAG" + "x" * 40},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "whatsapp_rejected"
    assert "190" in answer.json()["error"]["message"]
    assert call(stack, "tenant-api", "GET", "/api/v1/outlets", shop.owner_token).json()["outlets"] == []

    answer = call(
        stack, "tenant-api", "POST", "/api/v1/outlets", shop.owner_token, json={**wrong, "access_token": token}
    )
    assert answer.status_code == 201, answer.text
    outlet = answer.json()
    assert outlet["display_phone_number"] == number["display_phone_number"]
    assert outlet["access_token_set"] is True
    assert "access_token" not in outlet
    numbers = requests.get(f"{stack.info['whatsapp_graph_api_url']}/_sim/numbers", timeout=5).json()["numbers"]
    assert next(n for n in numbers if n["phone_number_id"] == number["phone_number_id"])["subscribed"] is True

    # The starter plan has one outlet.
    second = {"name": "Cabang", "phone_number_id": "123456789012", "waba_id": number["waba_id"], "access_token": token}
    answer = call(stack, "tenant-api", "POST", "/api/v1/outlets", shop.owner_token, json=second)
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "plan_limit"
    assert answer.json()["error"]["details"][0] == {
        "limit": "outlets",
        "allowed": 1,
        "plan": "starter",
        "upgrade_to": "growth",
    }

    # Staff: an agent of the outlet, invited by email, signs in with the link.
    agent_email = f"agent-{uuid.uuid4().hex[:6]}@newshop.test"
    invite = {"email": agent_email, "display_name": "Agen", "role": "agent", "outlet_id": outlet["id"]}
    answer = call(stack, "tenant-api", "POST", "/api/v1/staff", shop.owner_token, json=invite)
    assert answer.status_code == 201, answer.text
    agent_token = sign_in_with_link(stack, agent_email, answer.json()["sign_in_link"])
    assert call(stack, "tenant-api", "GET", "/api/v1/tenant", agent_token).json()["id"] == str(shop.tenant_id)

    # Knowledge: the owner uploads a price list.
    answer = call(
        stack, "knowledge-api", "POST", "/knowledge-bases", shop.owner_token, json={"name": "Harga", "language": "id"}
    )
    assert answer.status_code == 201, answer.text
    kb = answer.json()["id"]
    sheet = price_list([("Roti tawar gandum", "per loaf", "28.000"), ("Croissant mentega", "per piece", "19.500")])
    files = {"file": ("harga.xlsx", sheet, XLSX)}
    assert (
        call(
            stack, "knowledge-api", "POST", f"/knowledge-bases/{kb}/documents", shop.owner_token, files=files
        ).status_code
        == 202
    )

    def ready() -> bool:
        docs = call(stack, "knowledge-api", "GET", f"/knowledge-bases/{kb}/documents", shop.owner_token).json()[
            "documents"
        ]
        return bool(docs) and docs[0]["status"] == "ready"

    wait_for(ready, timeout=120, interval=0.5)

    # A customer writes to the new number and the AI answers from the price list.
    meta = Meta(stack.info)
    meta.phone_number_id = number["phone_number_id"]
    customer = new_customer()
    meta.say(customer, "berapa harga croissant mentega?")
    [reply] = wait_for(lambda: meta.sends_to(customer), timeout=60)
    assert reply["phone_number_id"] == number["phone_number_id"]
    assert "19.500" in reply["body"]["text"]["body"]

    # One AI reply counted against the new tenant's quota.
    quota = call(stack, "billing-api", "GET", "/api/v1/billing/quota", shop.owner_token).json()
    assert (quota["plan"], quota["included"], quota["used"], quota["remaining"]) == ("starter", 500, 1, 499)
