"""Platform operators and new businesses as the tests drive them: `scripts/admin` makes the
operator, the tenant API makes everything else, and people sign in the way the dashboard's
Firebase client does (password for the operator, the invite's email link for staff)."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

import requests

from emulators.stack import LocalStack
from shared.cloud.declaration import REPO_ROOT
from tests.conftest import fresh_shell_environment
from tests.pipeline.driver import id_token

OPERATOR_PASSWORD = "operator-password"


def make_operator(stack: LocalStack, email: str) -> str:
    """`scripts/admin grant` against the stack's state (as ops do locally); the operator's token."""
    env = {k: v for k, v in fresh_shell_environment().items() if k != "GOOGLE_CLOUD_PROJECT"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "shared.tenants.operators",
            "--state-dir",
            stack.info["state_dir"],
            "grant",
            email,
            "--password",
            OPERATOR_PASSWORD,
        ],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return id_token(stack, email, OPERATOR_PASSWORD)


def sign_in_with_link(stack: LocalStack, email: str, link: str) -> str:
    """Follow an invite's email sign-in link as the Firebase client does: its oobCode and the email."""
    query = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)
    if "oobCode" not in query and "link" in query:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(query["link"][0]).query)
    url = (
        f"http://{stack.info['firebase_auth_emulator_host']}/identitytoolkit.googleapis.com/v1/"
        "accounts:signInWithEmailLink?key=local-dev"
    )
    answer = requests.post(url, json={"email": email, "oobCode": query["oobCode"][0]}, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["idToken"])


def call(
    stack: LocalStack, function: str, method: str, path: str, token: str | None, **kwargs: Any
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{stack.info['functions'][function]}{path}", headers=headers, timeout=30, **kwargs)


def register_number(stack: LocalStack, access_token: str) -> dict[str, str]:
    """A WhatsApp number as a business sets it up in Meta's dashboard (the simulator's registry)."""
    number = {
        "phone_number_id": str(uuid.uuid4().int)[:15],
        "waba_id": str(uuid.uuid4().int)[:15],
        "display_phone_number": "+62 813-5555-0101",
        "verified_name": "Toko Baru",
        "access_token": access_token,
    }
    answer = requests.post(f"{stack.info['whatsapp_graph_api_url']}/_sim/numbers", json=number, timeout=10)
    assert answer.status_code == 200, answer.text
    return number


@dataclass(frozen=True)
class NewBusiness:
    tenant_id: uuid.UUID
    owner_email: str
    owner_token: str


def new_business(stack: LocalStack, operator_token: str, name: str, plan: str = "starter") -> NewBusiness:
    """A tenant made by an operator through the tenant API, its owner signed in by their link."""
    suffix = uuid.uuid4().hex[:8]
    owner = f"owner-{suffix}@newshop.test"
    body = {"name": name, "slug": f"shop-{suffix}", "plan": plan, "owner_email": owner, "owner_name": "Pemilik"}
    answer = call(stack, "tenant-api", "POST", "/api/v1/platform/tenants", operator_token, json=body)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    token = sign_in_with_link(stack, owner, created["owner_sign_in_link"])
    return NewBusiness(uuid.UUID(created["tenant"]["id"]), owner, token)
