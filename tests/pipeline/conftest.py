from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from emulators.stack import LocalStack
from tests.pipeline.driver import Meta
from tests.pipeline.knowledge import Admin, LanguageModel, price_list


@pytest.fixture(scope="session")
def meta(stack: LocalStack) -> Meta:
    return Meta(stack.info)


@pytest.fixture(scope="session")
def demo_tenant(stack: LocalStack) -> uuid.UUID:
    return uuid.UUID(stack.info["demo"]["tenant_id"])


@pytest.fixture
def clean_failures(meta: Meta) -> Iterator[Meta]:
    meta.clear_failures()
    yield meta
    meta.clear_failures()


@pytest.fixture(scope="session")
def admin(stack: LocalStack) -> Admin:
    return Admin(stack)


@pytest.fixture(scope="session")
def laundry_kb(admin: Admin) -> str:
    """A knowledge base of the demo tenant with an English price list, uploaded by signed URL."""
    kb = admin.new_knowledge_base(f"Laundry prices {uuid.uuid4().hex[:6]}")
    admin.upload_signed(
        kb,
        "laundry-prices.xlsx",
        price_list(
            [
                ("Wash and iron", "per kg", "9.500"),
                ("Dry cleaning, suit", "per piece", "45.000"),
                ("Bed cover, king size", "per piece", "35.000"),
            ]
        ),
    )
    [document] = admin.settled(kb, "laundry-prices.xlsx")
    assert document["status"] == "ready", document
    return kb


@pytest.fixture
def llm(stack: LocalStack) -> Iterator[LanguageModel]:
    """The stack's LLM stand-in, with no failure left behind for the next test."""
    model = LanguageModel(stack)
    model.clear()
    yield model
    model.clear()
