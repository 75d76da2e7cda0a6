"""The agent-actions API as a client sees it: the role x route table of docs/api.md walked with real
ID tokens, the read routes and their pages, the one error shape, and the OpenAPI document."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from emulators.openapi import document_path
from emulators.stack import LocalStack
from shared.cloud.declaration import REPO_ROOT
from tests.pipeline.driver import id_token
from tests.pipeline.staff import Business, add_business, add_outlet, plant_conversation

ROLES = ("owner", "admin", "agent", "viewer")
CALLERS = (*ROLES, "another tenant", "no token")
PRECONDITION = {"take-over": "active", "return-to-ai": "handed_off", "resolve": "active", "messages": "active"}


def role_table() -> dict[tuple[str, str], dict[str, str]]:
    """The role x route table of docs/api.md: (method, path) -> caller -> expected answer."""
    rows = {}
    for line in (REPO_ROOT / "docs" / "api.md").read_text().splitlines():
        match = re.match(r"^\| `(GET|POST) (/[^`]*)` \|(.*)\|$", line)
        if match and len(cells := [c.strip() for c in match[3].split("|")]) == len(CALLERS):
            rows[(match[1], match[2])] = dict(zip(CALLERS, cells, strict=True))
    return rows


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> str:
    return str(stack.info["functions"]["agent-actions"])


@pytest.fixture(scope="module")
def other() -> Business:
    return add_business("Laundry Bersih")


@pytest.fixture(scope="module")
def tokens(stack: LocalStack, other: Business) -> dict[str, str | None]:
    found: dict[str, str | None] = {role: id_token(stack, f"{role}@kopinusantara.test") for role in ROLES}
    found["another tenant"] = id_token(stack, other.owner_email)
    found["no token"] = None
    return found


def call(api: str, method: str, path: str, token: str | None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{api}{path}", headers=headers, timeout=10, **kwargs)


def test_the_readme_table_covers_every_route() -> None:
    from shared.conversations.staff_api import api

    paths = api.openapi()["paths"].items()
    documented = {(method.upper(), path.replace("{conversation_id}", "{id}")) for path, ops in paths for method in ops}
    assert set(role_table()) == documented | {("GET", "/openapi.json")}


@pytest.mark.parametrize("route", sorted(role_table()), ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize("caller", CALLERS)
def test_every_caller_gets_what_the_readme_says(
    api: str, stack: LocalStack, tokens: dict[str, str | None], route: tuple[str, str], caller: str
) -> None:
    method, template = route
    expected = role_table()[route][caller]
    demo = stack.info["demo"]
    action = template.rsplit("/", 1)[-1]
    conversation = plant_conversation(
        uuid.UUID(demo["tenant_id"]), uuid.UUID(demo["outlet_id"]), status=PRECONDITION.get(action, "active")
    )
    body = {"text": "Halo kak"} if action == "messages" else None
    answer = call(api, method, template.replace("{id}", str(conversation)), tokens[caller], json=body)
    assert answer.status_code == int(expected.split()[0]), answer.text
    if "its own only" in expected:
        assert demo["tenant_id"] not in answer.text
        assert all(c["tenant_id"] != demo["tenant_id"] for c in answer.json()["conversations"])
    if answer.status_code >= 400:
        assert answer.json()["error"]["code"] in {"unauthenticated", "forbidden", "not_found"}


@pytest.fixture(scope="module")
def branch(stack: LocalStack) -> dict[str, Any]:
    """A second outlet of the demo tenant with five conversations, a minute apart, the newest
    handed off; nobody else writes there."""
    tenant = uuid.UUID(stack.info["demo"]["tenant_id"])
    outlet = add_outlet(tenant, "Kopi Nusantara Bandung")
    start = datetime.now(UTC) - timedelta(hours=1)
    ids = [
        plant_conversation(
            tenant, outlet, last_message_at=start + timedelta(minutes=n), status="handed_off" if n == 4 else "active"
        )
        for n in range(5)
    ]
    busy = plant_conversation(tenant, outlet, last_message_at=start - timedelta(minutes=1), messages=7)
    return {"tenant": tenant, "outlet": outlet, "newest_first": [*reversed(ids), busy], "busy": busy}


def test_conversations_come_newest_first_a_page_at_a_time(
    api: str, tokens: dict[str, str | None], branch: dict[str, Any]
) -> None:
    seen, cursor, pages = [], None, 0
    while True:
        params = {"outlet_id": str(branch["outlet"]), "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = call(api, "GET", "/conversations", tokens["owner"], params=params).json()
        pages += 1
        seen += [c["id"] for c in page["conversations"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in branch["newest_first"]]  # each once, in order, nothing else
    assert pages == 3
    handed_off = call(
        api,
        "GET",
        "/conversations",
        tokens["viewer"],
        params={"outlet_id": str(branch["outlet"]), "status": "handed_off"},
    ).json()
    assert [c["id"] for c in handed_off["conversations"]] == [str(branch["newest_first"][0])]
    assert handed_off["conversations"][0]["customer"]["phone"].startswith("6281")


def test_a_conversation_comes_with_its_messages_newest_first(
    api: str, tokens: dict[str, str | None], branch: dict[str, Any]
) -> None:
    path = f"/conversations/{branch['busy']}"
    first = call(api, "GET", path, tokens["admin"], params={"limit": 5}).json()
    assert first["conversation"]["id"] == str(branch["busy"])
    assert first["conversation"]["last_message"] == "pesan 7"
    rest = call(api, "GET", path, tokens["admin"], params={"limit": 5, "cursor": first["next_cursor"]}).json()
    bodies = [m["body"] for m in first["messages"] + rest["messages"]]
    assert bodies == [f"pesan {n}" for n in range(7, 0, -1)]
    assert rest["next_cursor"] is None


def test_an_agent_of_one_outlet_sees_nothing_of_another(
    api: str, tokens: dict[str, str | None], branch: dict[str, Any]
) -> None:
    agent = tokens["agent"]  # scoped to the demo outlet
    listed = call(api, "GET", "/conversations", agent, params={"outlet_id": str(branch["outlet"])})
    assert listed.status_code == 200
    assert listed.json() == {"conversations": [], "next_cursor": None}
    everything = call(api, "GET", "/conversations", agent, params={"limit": 100}).json()["conversations"]
    assert everything  # their own outlet's
    assert {c["outlet_id"] for c in everything}.isdisjoint({str(branch["outlet"])})
    for method, suffix in (("GET", ""), ("POST", "/take-over"), ("POST", "/resolve")):
        answer = call(api, method, f"/conversations/{branch['busy']}{suffix}", agent)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 101}, ["query", "limit"]),
        ({"status": "open"}, ["query", "status"]),
        ({"outlet_id": "kopi"}, ["query", "outlet_id"]),
        ({"cursor": "not-ours"}, ["query", "cursor"]),
    ],
)
def test_a_bad_query_is_400_with_the_field(
    api: str, tokens: dict[str, str | None], params: dict[str, Any], loc: list[str]
) -> None:
    answer = call(api, "GET", "/conversations", tokens["viewer"], params=params)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"][0]["loc"] == loc


def test_errors_have_one_shape_and_come_in_order(api: str, stack: LocalStack, tokens: dict[str, str | None]) -> None:
    demo = stack.info["demo"]
    conversation = plant_conversation(uuid.UUID(demo["tenant_id"]), uuid.UUID(demo["outlet_id"]))
    messages = f"/conversations/{conversation}/messages"

    def error(answer: requests.Response, status: int, code: str) -> dict[str, Any]:
        assert answer.status_code == status, answer.text
        assert answer.headers["Content-Type"] == "application/json"
        body: dict[str, Any] = answer.json()["error"]
        assert body["code"] == code
        assert body["message"]
        assert isinstance(body["details"], list)
        return body

    error(call(api, "POST", messages, None, json={"bad": "body"}), 401, "unauthenticated")  # token first
    error(call(api, "POST", messages, tokens["viewer"], json={"bad": "body"}), 403, "forbidden")  # then the role
    body = error(call(api, "POST", messages, tokens["agent"], json={"text": "hi", "media": {}}), 400, "invalid_request")
    assert body["details"][0]["loc"][0] == "body"
    header = {"Authorization": f"Bearer {tokens['agent']}", "Idempotency-Key": "not a key!"}
    answer = requests.post(f"{api}{messages}", json={"text": "hi"}, headers=header, timeout=10)
    assert error(answer, 400, "invalid_request")["details"][0]["loc"] == ["header", "Idempotency-Key"]
    header = {"Authorization": f"Bearer {tokens['agent']}", "Content-Type": "application/json"}
    not_json = requests.post(f"{api}{messages}", data=b"{not json", headers=header, timeout=10)
    error(not_json, 400, "invalid_request")
    half_a_pair = requests.post(f"{api}{messages}", data=b'{"text": "kopi \\ud800"}', headers=header, timeout=10)
    assert error(half_a_pair, 400, "invalid_request")["details"][0]["loc"] == ["body"]  # no database stores it
    error(call(api, "GET", "/no/such/route", tokens["owner"]), 404, "not_found")
    error(call(api, "GET", "/conversations/%0A", tokens["owner"]), 404, "not_found")  # refused by the framework
    refused = error(call(api, "DELETE", f"/conversations/{conversation}", tokens["owner"]), 405, "method_not_allowed")
    assert refused["message"]
    huge = call(api, "POST", messages, tokens["agent"], json={"text": "x" * (2 * 1024 * 1024)})
    error(huge, 413, "body_too_large")


def test_the_served_openapi_document_is_the_committed_one(api: str) -> None:
    answer = requests.get(f"{api}/openapi.json", timeout=10)  # no token needed to read the contract
    assert answer.status_code == 200
    import json

    assert answer.json() == json.loads(document_path("agent-actions").read_text())
