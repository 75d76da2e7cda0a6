"""Tenants, outlets, staff logins and conversations for the staff API tests, planted directly
(the tenant API does not exist yet); every login is a real Auth-emulator user."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from emulators.seed import add_staff
from shared.db import platform
from shared.db.models import Conversation, Customer, Message, Outlet
from shared.db.tenancy import tenant_session
from shared.sending.access_tokens import encrypt_access_token
from tests.pipeline.driver import new_customer


@dataclass(frozen=True)
class Business:
    tenant_id: uuid.UUID
    outlet_id: uuid.UUID
    owner_email: str


def add_outlet(tenant_id: uuid.UUID, name: str) -> uuid.UUID:
    with tenant_session(tenant_id) as session:
        outlet = Outlet(
            tenant_id=tenant_id,
            name=name,
            phone_number_id=str(uuid.uuid4().int)[:15],
            display_phone_number="+62 812-0000-0000",
            waba_id="20000000000002",
            access_token_ciphertext=encrypt_access_token(f"EAAG-{uuid.uuid4().hex}"),
        )
        session.add(outlet)
        session.flush()
        return outlet.id


def add_business(name: str) -> Business:
    """Another tenant with one outlet and an owner who can sign in."""
    suffix = uuid.uuid4().hex[:8]
    tenant_id = platform.create_tenant(name, f"tenant-{suffix}", default_language="id")
    outlet_id = add_outlet(tenant_id, f"{name} Pusat")
    email = f"owner-{suffix}@tenant.test"
    add_staff(tenant_id, outlet_id, email, f"Owner of {name}", "owner")
    return Business(tenant_id, outlet_id, email)


def plant_conversation(
    tenant_id: uuid.UUID,
    outlet_id: uuid.UUID,
    *,
    status: str = "active",
    last_message_at: datetime | None = None,
    messages: int = 1,
) -> uuid.UUID:
    """A conversation whose customer wrote `messages` times, the last at `last_message_at`."""
    last = last_message_at or datetime.now(UTC)
    with tenant_session(tenant_id) as session:
        who = new_customer()
        customer = Customer(tenant_id=tenant_id, phone_number=who["phone"], profile_name=who["name"])
        session.add(customer)
        session.flush()
        conversation = Conversation(
            tenant_id=tenant_id,
            outlet_id=outlet_id,
            customer_id=customer.id,
            status=status,
            last_customer_message_at=last,
            last_message_at=last,
        )
        session.add(conversation)
        session.flush()
        for n in range(messages):
            at = last - timedelta(seconds=messages - 1 - n)
            session.add(
                Message(
                    tenant_id=tenant_id,
                    conversation_id=conversation.id,
                    outlet_id=outlet_id,
                    direction="inbound",
                    sender_type="customer",
                    wa_message_id=f"wamid.{uuid.uuid4().hex}",
                    type="text",
                    body=f"pesan {n + 1}",
                    status="processed",
                    customer_sent_at=at,
                    created_at=at,
                )
            )
        return conversation.id
