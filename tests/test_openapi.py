"""The committed OpenAPI documents (docs/openapi/) are what the code generates: a change to a
route or a model that is not committed with its document fails here."""

from __future__ import annotations

import pytest

from emulators.openapi import DOCUMENTS_DIR, document_path, staff_apis


def test_every_staff_api_has_a_committed_document() -> None:
    apis = staff_apis()
    assert "agent-actions" in apis
    assert sorted(p.stem for p in DOCUMENTS_DIR.glob("*.json")) == sorted(apis)


@pytest.mark.parametrize("function", sorted(staff_apis()))
def test_the_committed_document_is_the_generated_one(function: str) -> None:
    generated = staff_apis()[function].openapi_json()
    assert document_path(function).read_text() == generated, (
        f"docs/openapi/{function}.json is stale: run .venv/bin/python -m emulators.openapi and commit it"
    )


@pytest.mark.parametrize("function", sorted(staff_apis()))
def test_every_operation_is_authenticated_and_names_its_roles(function: str) -> None:
    document = staff_apis()[function].openapi()
    assert document["openapi"].startswith("3.1.")
    operations = [op for ops in document["paths"].values() for op in ops.values()]
    assert operations
    for operation in operations:
        assert operation["security"] == [{"firebase": []}]
        roles = set(operation["x-roles"])
        assert roles <= {"owner", "admin", "agent", "viewer"} or roles == {"operator"}  # operators act alone
        assert {"429"} <= set(operation["responses"])
        assert {"400", "401", "403", "404", "500"} <= set(operation["responses"])
