"""The tenant and billing APIs' role x route table (docs/api.md), walked with real ID tokens:
each role of the demo tenant, another tenant's owner, a platform operator and no token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from emulators.stack import LocalStack
from shared.billing.staff_api import api as billing_api
from shared.cloud.declaration import REPO_ROOT
from shared.db.models import Invoice
from shared.db.tenancy import tenant_session
from shared.tenants.staff_api import api as tenant_api
from tests.pipeline.driver import id_token
from tests.pipeline.operators import call, make_operator, register_number
from tests.pipeline.staff import add_business

ROLES = ("owner", "admin", "agent", "viewer")
CALLERS = (*ROLES, "another tenant", "operator", "no token")
Request = tuple[str, dict[str, Any]]  # (path, requests keyword arguments)


def role_table() -> dict[tuple[str, str], dict[str, str]]:
    """(method, path) -> caller -> expected status, from the README's table of 7 callers."""
    rows = {}
    for line in (REPO_ROOT / "docs" / "api.md").read_text().splitlines():
        match = re.match(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)` \|(.*)\|$", line)
        if match and len(cells := [c.strip() for c in match[3].split("|")]) == len(CALLERS):
            rows[(match[1], match[2])] = dict(zip(CALLERS, cells, strict=True))
    return rows


def test_the_readme_table_covers_every_route() -> None:
    documented = {
        (method.upper(), re.sub(r"\{(?!tenant})[a-z_]+\}", "{id}", path.replace("{tenant_id}", "{tenant}")))
        for document in (tenant_api.openapi(), billing_api.openapi())
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert set(role_table()) - {("GET", "/openapi.json")} == documented


@pytest.fixture(scope="module")
def tokens(stack: LocalStack) -> dict[str, str | None]:
    found: dict[str, str | None] = {role: id_token(stack, f"{role}@kopinusantara.test") for role in ROLES}
    found["another tenant"] = id_token(stack, add_business("Bengkel Motor").owner_email)
    found["operator"] = make_operator(stack, f"ops-{uuid.uuid4().hex[:6]}@platform.test")
    found["no token"] = None
    return found


@pytest.fixture(scope="module")
def demo_outlet(stack: LocalStack, tokens: dict[str, str | None]) -> tuple[str, str]:
    """A second outlet of the demo tenant, for the outlet routes to change: (id, its token)."""
    token = f"EAAG{uuid.uuid4().hex}{uuid.uuid4().hex}"
    number = register_number(stack, token)
    body = {
        "name": "Kopi Nusantara Menteng",
        "access_token": token,
        **{k: number[k] for k in ("phone_number_id", "waba_id")},
    }
    answer = call(stack, "tenant-api", "POST", "/api/v1/outlets", tokens["owner"], json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], token


@pytest.fixture(scope="module")
def demo_invoice(stack: LocalStack) -> str:
    tenant_id = uuid.UUID(stack.info["demo"]["tenant_id"])
    with tenant_session(tenant_id) as session:
        invoice = Invoice(
            tenant_id=tenant_id,
            period_start=date(2020, 1, 1),
            period_end=date(2020, 2, 1),
            plan="enterprise",
            lines=[
                {
                    "description": "Enterprise plan, January 2020",
                    "quantity": 1,
                    "unit_minor": 79_900,
                    "amount_minor": 79_900,
                }
            ],
            subtotal_minor=79_900,
            amount_minor=79_900,
            status="open",
        )
        session.add(invoice)
        session.flush()
        return str(invoice.id)


def throwaway_member(stack: LocalStack, tokens: dict[str, str | None]) -> str:
    body = {"email": f"temp-{uuid.uuid4().hex[:8]}@kopinusantara.test", "role": "viewer"}
    answer = call(stack, "tenant-api", "POST", "/api/v1/staff", tokens["owner"], json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["member"]["id"])


def requests_for(
    stack: LocalStack, tokens: dict[str, str | None], outlet: tuple[str, str], invoice: str
) -> dict[str, Callable[[], Request]]:
    """How to call each route validly, fresh for every call (new slugs, numbers, members)."""
    demo = stack.info["demo"]["tenant_id"]

    def new_number() -> dict[str, Any]:
        token = f"EAAG{uuid.uuid4().hex}{uuid.uuid4().hex}"
        number = register_number(stack, token)
        return {"name": "Cabang", "access_token": token, **{k: number[k] for k in ("phone_number_id", "waba_id")}}

    def new_tenant() -> dict[str, Any]:
        suffix = uuid.uuid4().hex[:8]
        return {"name": "Toko Baru", "slug": f"baru-{suffix}", "owner_email": f"o-{suffix}@baru.test"}

    return {
        "POST /api/v1/platform/tenants": lambda: ("/api/v1/platform/tenants", {"json": new_tenant()}),
        "GET /api/v1/platform/tenants/{tenant}": lambda: (f"/api/v1/platform/tenants/{demo}", {}),
        "PATCH /api/v1/platform/tenants/{tenant}": lambda: (
            f"/api/v1/platform/tenants/{demo}",
            {"json": {"contact_name": "Sari"}},
        ),
        "PUT /api/v1/platform/tenants/{tenant}/subscription": lambda: (
            f"/api/v1/platform/tenants/{demo}/subscription",
            {"json": {"plan": "enterprise"}},
        ),
        "POST /api/v1/platform/tenants/{tenant}/deposits": lambda: (
            f"/api/v1/platform/tenants/{demo}/deposits",
            {"json": {"amount": "0.01", "reference": uuid.uuid4().hex}},
        ),
        "GET /api/v1/tenant": lambda: ("/api/v1/tenant", {}),
        "PATCH /api/v1/tenant": lambda: ("/api/v1/tenant", {"json": {"contact_name": "Sari"}}),
        "GET /api/v1/outlets": lambda: ("/api/v1/outlets", {}),
        "POST /api/v1/outlets": lambda: ("/api/v1/outlets", {"json": new_number()}),
        "PATCH /api/v1/outlets/{id}": lambda: (f"/api/v1/outlets/{outlet[0]}", {"json": {"name": "Menteng"}}),
        "PUT /api/v1/outlets/{id}/access-token": lambda: (
            f"/api/v1/outlets/{outlet[0]}/access-token",
            {"json": {"access_token": outlet[1]}},
        ),
        "POST /api/v1/outlets/{id}/deactivate": lambda: (f"/api/v1/outlets/{outlet[0]}/deactivate", {}),
        "POST /api/v1/outlets/{id}/activate": lambda: (f"/api/v1/outlets/{outlet[0]}/activate", {}),
        "GET /api/v1/settings/assistant": lambda: ("/api/v1/settings/assistant", {}),
        "PATCH /api/v1/settings/assistant": lambda: (
            "/api/v1/settings/assistant",
            {"json": {"typing_indicator": True}},
        ),
        "GET /api/v1/staff": lambda: ("/api/v1/staff", {}),
        "POST /api/v1/staff": lambda: (
            "/api/v1/staff",
            {"json": {"email": f"new-{uuid.uuid4().hex[:8]}@staff.test", "role": "viewer"}},
        ),
        "PATCH /api/v1/staff/{id}": lambda: (
            f"/api/v1/staff/{throwaway_member(stack, tokens)}",
            {"json": {"role": "viewer"}},
        ),
        "DELETE /api/v1/staff/{id}": lambda: (f"/api/v1/staff/{throwaway_member(stack, tokens)}", {}),
        "GET /api/v1/audit-log": lambda: ("/api/v1/audit-log", {}),
        "GET /api/v1/billing/quota": lambda: ("/api/v1/billing/quota", {}),
        "GET /api/v1/billing/usage": lambda: ("/api/v1/billing/usage", {}),
        "GET /api/v1/billing/subscription": lambda: ("/api/v1/billing/subscription", {}),
        "GET /api/v1/billing/deposit": lambda: ("/api/v1/billing/deposit", {}),
        "GET /api/v1/billing/invoices": lambda: ("/api/v1/billing/invoices", {}),
        "GET /api/v1/billing/invoices/{id}": lambda: (f"/api/v1/billing/invoices/{invoice}", {}),
        "GET /api/v1/billing/invoices/{id}/pdf": lambda: (f"/api/v1/billing/invoices/{invoice}/pdf", {}),
        "GET /openapi.json": lambda: ("/openapi.json", {}),
    }


@pytest.mark.parametrize("route", sorted(role_table()), ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize("caller", CALLERS)
def test_every_caller_gets_what_the_readme_says(
    stack: LocalStack,
    tokens: dict[str, str | None],
    demo_outlet: tuple[str, str],
    demo_invoice: str,
    route: tuple[str, str],
    caller: str,
) -> None:
    method, template = route
    expected = int(role_table()[route][caller].split()[0])
    path, kwargs = requests_for(stack, tokens, demo_outlet, demo_invoice)[f"{method} {template}"]()
    function = (
        "billing-api" if "/billing/" in template or template.endswith(("subscription", "deposits")) else "tenant-api"
    )
    answer = call(stack, function, method, path, tokens[caller], **kwargs)
    assert answer.status_code == expected, answer.text
