"""The staff APIs' rate limit per tenant: 100 requests a minute (1,000 on enterprise), one count
shared by every instance (the function host runs two worker processes), 429 with Retry-After
and X-RateLimit-* past it; never on the WhatsApp webhook; open when Redis is down."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from emulators.stack import LocalStack
from shared.api import ratelimit
from shared.cloud.settings import settings
from shared.db.models import Outlet
from shared.db.tenancy import tenant_session
from tests.pipeline.driver import Meta, id_token, new_customer, wait_for
from tests.pipeline.operators import call
from tests.pipeline.staff import add_business


def test_the_101st_request_in_a_minute_waits(stack: LocalStack) -> None:
    limited, other = add_business("Toko Sibuk"), add_business("Toko Tenang")
    token, other_token = id_token(stack, limited.owner_email), id_token(stack, other.owner_email)
    while time.time() % 60 > 40:  # all 101 requests inside one window
        time.sleep(1)

    def quota(_: int) -> requests.Response:
        return call(stack, "billing-api", "GET", "/api/v1/billing/quota", token)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(quota, range(100)))
    assert [a.status_code for a in answers] == [200] * 100
    assert sorted(int(a.headers["X-RateLimit-Remaining"]) for a in answers) == list(range(100))
    assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"100"}

    over = call(stack, "agent-actions", "GET", "/conversations", token)  # every staff API shares the count
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert call(stack, "tenant-api", "GET", "/api/v1/tenant", other_token).status_code == 200

    # Meta's deliveries for the limited tenant are never refused.
    with tenant_session(limited.tenant_id) as session:
        number = session.get_one(Outlet, limited.outlet_id).phone_number_id
    meta = Meta(stack.info)
    meta.phone_number_id = number
    customer = new_customer()
    meta.say(customer, "halo")
    wait_for(lambda: meta.sends_to(customer), timeout=60)  # answered, and nothing left in flight


def test_the_demo_enterprise_tenant_has_a_thousand(stack: LocalStack) -> None:
    answer = call(stack, "tenant-api", "GET", "/api/v1/tenant", id_token(stack, "viewer@kopinusantara.test"))
    assert answer.headers["X-RateLimit-Limit"] == "1000"


def test_without_redis_requests_pass_and_it_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from emulators.processes import free_port

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    settings.cache_clear()
    ratelimit._client.cache_clear()
    monkeypatch.setattr(ratelimit, "_last_logged", 0.0)
    try:
        with caplog.at_level(logging.ERROR, logger="shared.api.ratelimit"):
            assert ratelimit.hit(uuid.uuid4(), 100) is None
        assert "rate limiter unavailable" in caplog.text
    finally:
        monkeypatch.undo()
        settings.cache_clear()
        ratelimit._client.cache_clear()
