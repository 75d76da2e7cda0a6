from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from emulators.stack import LocalStack
from tests.pipeline.driver import Meta


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
