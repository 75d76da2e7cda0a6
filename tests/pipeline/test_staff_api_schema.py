"""schemathesis against each staff API's OpenAPI document on the running stack, signed in as
the owner of a business of its own (enterprise plan: 1,000 requests a minute), so that what it
changes (names, settings, staff) touches no other test's tenant: valid and invalid requests
alike get no 5xx, every response matches its schema, invalid data is refused, and nothing of
another tenant ever comes back, although half the generated ids are real conversations of ours
and of another tenant's."""

from __future__ import annotations

import uuid

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from emulators.openapi import staff_apis
from emulators.stack import LocalStack
from shared.billing import plans
from shared.db.models import Tenant
from shared.db.tenancy import tenant_session
from tests.pipeline.driver import id_token
from tests.pipeline.staff import Business, add_business, plant_conversation

EXAMPLES_PER_OPERATION = 15  # per generation mode: enough to reach every field, a few seconds each


@pytest.fixture(scope="module")
def ours() -> Business:
    business = add_business("Kedai Schemathesis")
    with tenant_session(business.tenant_id) as session:
        plans.change_plan(session, session.get_one(Tenant, business.tenant_id), "enterprise")
    return business


@pytest.fixture(scope="module")
def ids(ours: Business) -> dict[str, list[uuid.UUID]]:
    """Conversations of ours and of another tenant's."""
    other = add_business("Toko Sebelah")
    return {
        "ours": [plant_conversation(ours.tenant_id, ours.outlet_id, messages=3) for _ in range(3)],
        "theirs": [plant_conversation(other.tenant_id, other.outlet_id, messages=3) for _ in range(3)],
        "their_tenant": [other.tenant_id, other.outlet_id],
    }


@pytest.mark.parametrize("function", sorted(staff_apis()))
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_the_api_keeps_its_contract(
    stack: LocalStack, ours: Business, ids: dict[str, list[uuid.UUID]], function: str, mode: GenerationMode
) -> None:
    base_url = stack.info["functions"][function]
    schema = schemathesis.openapi.from_dict(requests.get(f"{base_url}/openapi.json", timeout=10).json())
    token = f"Bearer {id_token(stack, ours.owner_email)}"
    theirs = [str(i) for i in ids["theirs"] + ids["their_tenant"]]
    real_ids = st.sampled_from([None, *(str(i) for i in ids["ours"] + ids["theirs"])])
    http = requests.Session()

    def nothing_of_theirs(response: requests.Response) -> None:
        leaked = [i for i in theirs if i in response.text]
        assert not leaked, f"another tenant's ids came back: {leaked}"

    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,  # the same examples every run: CI stays reproducible
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), real_id=real_ids)
        def exercise(case: schemathesis.Case, real_id: str | None) -> None:
            # Only a valid request is pointed at real ids: a negative one stays as invalid as made.
            if mode is GenerationMode.POSITIVE and real_id and "conversation_id" in (case.path_parameters or {}):
                case.path_parameters["conversation_id"] = real_id
            # The generated token is replaced by a real one; a case made without one (a negative
            # case about authentication) goes without.
            signed_in = "Authorization" in (case.headers or {})
            response = case.call_and_validate(
                base_url=base_url,
                session=http,
                headers={"Authorization": token} if signed_in else None,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                    *([negative_data_rejection] if mode is GenerationMode.NEGATIVE else []),
                ],
            )
            nothing_of_theirs(response)

        exercise()
