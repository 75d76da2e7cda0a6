"""The demo tenant of the local runtime: a bilingual (Bahasa Indonesia / English) coffee shop
with one outlet, a staff login of each role and a small knowledge base. Idempotent: a second
`scripts/dev` finds it and changes nothing."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shared.db import platform
from shared.db.models import KnowledgeBase, Outlet, Tenant, User
from shared.db.tenancy import tenant_session
from shared.sending.access_tokens import encrypt_access_token

log = logging.getLogger(__name__)

DEMO_SLUG = "kopi-nusantara"
DEMO_NAME = "Kopi Nusantara"
DEMO_PHONE_NUMBER_ID = "106540352242922"
DEMO_DISPLAY_NUMBER = "+62 811-1000-2000"
DEMO_WABA_ID = "102290129340398"
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


def seed_demo(access_token: str) -> dict[str, Any]:
    tenant_id = _find_demo() or platform.create_tenant(DEMO_NAME, DEMO_SLUG, default_language="id")
    with tenant_session(tenant_id) as session:
        tenant = session.get_one(Tenant, tenant_id)
        tenant.settings = {**DEMO_SETTINGS, **(tenant.settings or {})}
        outlet = session.scalars(select(Outlet).where(Outlet.phone_number_id == DEMO_PHONE_NUMBER_ID)).first()
        if outlet is None:
            outlet = Outlet(
                tenant_id=tenant_id,
                name="Kopi Nusantara Kemang",
                phone_number_id=DEMO_PHONE_NUMBER_ID,
                display_phone_number=DEMO_DISPLAY_NUMBER,
                waba_id=DEMO_WABA_ID,
                access_token_ciphertext=encrypt_access_token(access_token),
            )
            session.add(outlet)
        kb = session.scalars(select(KnowledgeBase).where(KnowledgeBase.name == "Menu & FAQ")).first()
        if kb is None:
            kb = KnowledgeBase(tenant_id=tenant_id, name="Menu & FAQ", language="id")
            session.add(kb)
        session.flush()
        outlet_id, kb_id = outlet.id, kb.id
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


def add_staff(tenant_id: uuid.UUID, outlet_id: uuid.UUID, email: str, name: str, role: str) -> dict[str, str]:
    """A staff login in the Auth emulator, with tenant and role in its custom claims."""
    from firebase_admin import auth

    _firebase()
    try:
        record = auth.get_user_by_email(email)
    except auth.UserNotFoundError:
        record = auth.create_user(email=email, password=DEMO_PASSWORD, display_name=name, email_verified=True)
    claims: dict[str, Any] = {"tenant_id": str(tenant_id), "role": role}
    if role == "agent":
        claims["outlet_id"] = str(outlet_id)
    auth.set_custom_user_claims(record.uid, claims)
    with tenant_session(tenant_id) as session:
        if session.scalars(select(User).where(User.firebase_uid == record.uid)).first() is None:
            session.add(
                User(
                    tenant_id=tenant_id,
                    firebase_uid=record.uid,
                    email=email,
                    display_name=name,
                    role=role,
                    outlet_id=outlet_id if role == "agent" else None,
                )
            )
    return {"email": email, "role": role, "uid": record.uid}


def _firebase() -> None:
    import firebase_admin

    from shared.cloud.settings import settings

    if not firebase_admin._apps:
        firebase_admin.initialize_app(options={"projectId": settings().google_cloud_project})


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
