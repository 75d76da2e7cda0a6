"""Two tenants on one Meta app: each outlet's messages land with its own tenant, and one
tenant never sees another's conversations, from the database or through a guessed id."""

from __future__ import annotations

import uuid

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from sqlalchemy import select

from emulators.stack import LocalStack
from shared.conversations import staff
from shared.db import platform
from shared.db.models import Conversation, Document, KnowledgeBase, Message, Outlet
from shared.db.tenancy import tenant_session
from shared.sending.access_tokens import encrypt_access_token
from tests.pipeline.driver import Meta, inbound, new_customer, wait_for
from tests.pipeline.test_conversations import conversations_of


@pytest.fixture(scope="module")
def other_tenant(stack: LocalStack) -> dict[str, str]:
    """A second business, a bakery, with its own WhatsApp number and knowledge base."""
    suffix = uuid.uuid4().hex[:8]
    tenant_id = platform.create_tenant("Roti Bakar 88", f"roti-bakar-{suffix}", default_language="id")
    phone_number_id = str(uuid.uuid4().int)[:15]
    with tenant_session(tenant_id) as session:
        outlet = Outlet(
            tenant_id=tenant_id,
            name="Roti Bakar 88 Depok",
            phone_number_id=phone_number_id,
            display_phone_number="+62 812-0000-8888",
            waba_id="20000000000001",
            access_token_ciphertext=encrypt_access_token("EAAG-other-tenant-token"),
        )
        kb = KnowledgeBase(tenant_id=tenant_id, name="Menu roti")
        session.add_all([outlet, kb])
        session.flush()
        return {
            "tenant_id": str(tenant_id),
            "phone_number_id": phone_number_id,
            "outlet_id": str(outlet.id),
            "knowledge_base_id": str(kb.id),
        }


def test_each_outlets_messages_land_with_its_own_tenant(
    meta: Meta, demo_tenant: uuid.UUID, other_tenant: dict[str, str]
) -> None:
    other = uuid.UUID(other_tenant["tenant_id"])
    customer = new_customer()  # the same person writes to both businesses
    payload, _ = inbound("text_phone_and_bsuid", other_tenant["phone_number_id"], customer, text="ada roti cokelat?")
    assert meta.deliver(payload).status_code == 200
    meta.say(customer, "halo, kopi susu ada?")
    wait_for(lambda: (conversations_of(other, customer) and conversations_of(demo_tenant, customer)) or None)
    [theirs] = conversations_of(other, customer)
    [ours] = conversations_of(demo_tenant, customer)
    assert theirs.id != ours.id
    wait_for(lambda: len(meta.sends_to(customer)) == 2 or None)
    phone_numbers = sorted(c["phone_number_id"] for c in meta.sends_to(customer))
    assert phone_numbers == sorted([other_tenant["phone_number_id"], meta.phone_number_id])


def test_a_tenant_cannot_see_or_touch_another_tenants_conversation(
    demo_tenant: uuid.UUID, other_tenant: dict[str, str]
) -> None:
    other = uuid.UUID(other_tenant["tenant_id"])
    with tenant_session(other) as session:
        their_ids = set(session.scalars(select(Conversation.id)))
    assert their_ids
    with tenant_session(demo_tenant) as session:
        visible = set(session.scalars(select(Conversation.id)))
        assert visible.isdisjoint(their_ids)  # no WHERE clause at all, still only our rows
        their_messages = session.scalars(select(Message).where(Message.conversation_id.in_(their_ids))).all()
        assert their_messages == []
    stolen = next(iter(their_ids))
    assert not staff.resolve(demo_tenant, stolen)  # a guessed id is simply not found
    with pytest.raises(Exception, match="No row"):
        staff.queue_agent_message(demo_tenant, stolen, staff.AgentMessage("text", "hello from the wrong tenant"))
    with tenant_session(other) as session:
        assert session.get_one(Conversation, stolen).status == "active"


def test_an_upload_under_another_tenants_path_is_not_registered_for_it(
    stack: LocalStack, demo_tenant: uuid.UUID, other_tenant: dict[str, str]
) -> None:
    """A demo admin names the bakery's knowledge base under the demo tenant's folder."""
    name = f"tenants/{demo_tenant}/knowledge/{other_tenant['knowledge_base_id']}/stolen.txt"
    legit = f"tenants/{other_tenant['tenant_id']}/knowledge/{other_tenant['knowledge_base_id']}/roti.txt"
    client = storage.Client(project=stack.info["project"], credentials=AnonymousCredentials())
    bucket = client.bucket(stack.info["documents_bucket"])
    bucket.blob(name).upload_from_string(b"not yours", content_type="text/plain")
    bucket.blob(legit).upload_from_string(b"roti cokelat keju 15.000", content_type="text/plain")
    other = uuid.UUID(other_tenant["tenant_id"])

    def registered() -> list[str] | None:
        with tenant_session(other) as session:
            names = list(session.scalars(select(Document.object_name)))
        return names if legit in names else None

    names = wait_for(registered)
    assert name not in names
    with tenant_session(demo_tenant) as session:
        assert session.scalars(select(Document).where(Document.object_name == name)).first() is None
