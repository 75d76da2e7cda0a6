"""The demo tenant of the local runtime: a bilingual (Bahasa Indonesia / English) coffee shop
on the enterprise plan with one outlet, a staff login of each role and a small knowledge base,
made through the same functions as the tenant API. Idempotent: a second `scripts/dev` finds
it and changes nothing."""

from __future__ import annotations

import logging
import urllib.parse
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from shared.api.auth import firebase_app
from shared.billing import deposits
from shared.billing.tiers import Money
from shared.db import platform
from shared.db.models import Tenant
from shared.db.tenancy import tenant_session
from shared.knowledge import catalog
from shared.tenants import members, outlets, tenants

log = logging.getLogger(__name__)

DEMO_SLUG = "kopi-nusantara"
DEMO_NAME = "Kopi Nusantara"
DEMO_PHONE_NUMBER_ID = "106540352242922"
DEMO_DISPLAY_NUMBER = "+62 811-1000-2000"
DEMO_WABA_ID = "102290129340398"
DEMO_OUTLET = "Kopi Nusantara Kemang"
DEMO_DEPOSIT = Money(Decimal("100.00"))  # pays overage past the enterprise quota
DEMO_PASSWORD = "demo-password"  # noqa: S105 - a login of the local Auth emulator only
DEMO_USERS = (
    ("owner@kopinusantara.test", "Sari (owner)", "owner"),
    ("admin@kopinusantara.test", "Budi (admin)", "admin"),
    ("agent@kopinusantara.test", "Dewi (agent)", "agent"),
    ("viewer@kopinusantara.test", "Andi (viewer)", "viewer"),
)
DEMO_SETTINGS = {
    "read_receipts": True,
    "typing_indicator": True,
    "handoff_keywords": ["barista", "manajer"],
    "fallback_reply": {
        "id": "Maaf kak, info itu belum ada di catatan kami ☕ "
        'Ketik "bicara dengan manusia" dan staf Kopi Nusantara akan membantu.',
        "en": "Sorry, I don't have that information yet ☕ "
        'Type "talk to a person" and a Kopi Nusantara staff member will help.',
    },
}
KNOWLEDGE_FILE = Path(__file__).parent / "demo" / "menu-dan-faq.md"


def _find_demo() -> uuid.UUID | None:
    for tenant_id in platform.tenant_ids():
        with tenant_session(tenant_id) as session:
            if session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id)) == DEMO_SLUG:
                return tenant_id
    return None


def seed_demo(access_token: str, graph_url: str) -> dict[str, Any]:
    """The demo business, made the way an operator and its owner make one: the tenant API's
    own functions create the tenant, connect the outlet's number (against the Graph API
    simulator, ours or one named by WHATSAPP_GRAPH_API_URL, where the number is registered
    first, as a business does in Meta's dashboard) and invite the staff."""
    number = {
        "phone_number_id": DEMO_PHONE_NUMBER_ID,
        "waba_id": DEMO_WABA_ID,
        "display_phone_number": DEMO_DISPLAY_NUMBER,
        "verified_name": DEMO_NAME,
        "access_token": access_token,
    }
    local = urllib.parse.urlparse(graph_url).hostname in ("127.0.0.1", "localhost")  # never Meta's real one
    if not local or requests.post(f"{graph_url}/_sim/numbers", json=number, timeout=10).status_code != 200:
        log.warning("the Graph API at %s is not a simulator: the demo number was not registered", graph_url)
    for email, name, _ in DEMO_USERS:
        _login(email, name)  # with the demo password, before the invites find them
    tenant_id = _find_demo()
    if tenant_id is None:
        values = {"name": DEMO_NAME, "slug": DEMO_SLUG, "timezone": "Asia/Jakarta", "default_language": "id"}
        owner_email, owner_name, _ = DEMO_USERS[0]
        tenant_id = uuid.UUID(
            str(tenants.create(values, "enterprise", owner_email, owner_name, "seed")["tenant"]["id"])
        )
        with tenant_session(tenant_id) as session:
            deposits.record_topup(session, session.get_one(Tenant, tenant_id), DEMO_DEPOSIT, "demo-seed", "demo")
    chosen = {k: v for k, v in tenants.assistant_settings(tenant_id).items() if v is not None}
    tenants.update_assistant_settings(tenant_id, {**DEMO_SETTINGS, **chosen})  # what staff changed stays
    outlet_id = next(
        (o["id"] for o in outlets.list_outlets(tenant_id) if o["phone_number_id"] == DEMO_PHONE_NUMBER_ID), None
    )
    if outlet_id is None:
        outlet = outlets.connect(tenant_id, DEMO_OUTLET, DEMO_PHONE_NUMBER_ID, DEMO_WABA_ID, access_token)
        outlet_id = outlet["id"]
    kb_id = next((kb["id"] for kb in catalog.list_knowledge_bases(tenant_id) if kb["name"] == "Menu & FAQ"), None)
    if kb_id is None:
        kb_id = catalog.create_knowledge_base(tenant_id, {"name": "Menu & FAQ", "language": "id"})["id"]
    users = [add_staff(tenant_id, outlet_id, email, name, role) for email, name, role in DEMO_USERS]
    return {
        "tenant_id": str(tenant_id),
        "tenant_name": DEMO_NAME,
        "outlet_id": str(outlet_id),
        "phone_number_id": DEMO_PHONE_NUMBER_ID,
        "display_phone_number": DEMO_DISPLAY_NUMBER,
        "knowledge_base_id": str(kb_id),
        "users": users,
        "password": DEMO_PASSWORD,
    }


def _login(email: str, name: str) -> str:
    """A login of the local Auth emulator with the demo password (invites alone have none)."""
    from firebase_admin import auth

    app = firebase_app()
    try:
        return str(auth.get_user_by_email(email, app=app).uid)
    except auth.UserNotFoundError:
        record = auth.create_user(email=email, password=DEMO_PASSWORD, display_name=name, email_verified=True, app=app)
        return str(record.uid)


def add_staff(tenant_id: uuid.UUID, outlet_id: uuid.UUID, email: str, name: str, role: str) -> dict[str, str]:
    """A staff login that signs in with the demo password, invited through the tenant API's
    own function (claims, Firestore membership and users row); an agent is scoped to the outlet."""
    uid = _login(email, name)
    members.invite(tenant_id, email, name, role, outlet_id if role == "agent" else None)
    return {"email": email, "role": role, "uid": uid}


def upload_demo_knowledge(bucket_name: str, demo: dict[str, Any]) -> None:
    """Upload the demo menu once; the storage trigger registers it like any tenant upload."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from shared.cloud.settings import settings

    client = storage.Client(project=settings().google_cloud_project, credentials=AnonymousCredentials())
    name = f"tenants/{demo['tenant_id']}/knowledge/{demo['knowledge_base_id']}/{KNOWLEDGE_FILE.name}"
    blob = client.bucket(bucket_name).blob(name)
    if not blob.exists():
        blob.upload_from_filename(str(KNOWLEDGE_FILE), content_type="text/markdown")
