"""Each tenant's requests per minute on the staff APIs, counted in Redis (Memorystore in
production, an embedded Valkey locally) so that every instance shares one count.

A fixed one-minute window per tenant: INCR and EXPIRE in one round trip. When Redis cannot be
reached the request goes through (fail open) and the outage is logged: a broken limiter must
not take the dashboards down. The WhatsApp webhook never passes here.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from shared.cloud.settings import settings

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60
_LOGGED_EVERY = 30.0  # seconds between two log lines about one outage
_last_logged = 0.0


@dataclass(frozen=True, slots=True)
class Window:
    limit: int
    remaining: int
    reset_seconds: int  # until the window ends
    allowed: bool

    def headers(self) -> dict[str, str]:
        answer = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            answer["Retry-After"] = str(self.reset_seconds)
        return answer


@cache
def _client() -> Any:
    import redis

    url = settings().redis_url
    if not url:
        return None
    return redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)


def hit(tenant_id: uuid.UUID, limit: int, now: float | None = None) -> Window | None:
    """Count one request; None when there is no count to go by (no Redis: fail open)."""
    moment = time.time() if now is None else now
    window = int(moment // WINDOW_SECONDS)
    reset = max(1, int((window + 1) * WINDOW_SECONDS - moment + 0.999))
    client = _client()
    if client is None:
        _log_outage("REDIS_URL is not set")
        return None
    key = f"ratelimit:{tenant_id}:{window}"
    try:
        pipe = client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, WINDOW_SECONDS * 2)
        count = int(pipe.execute()[0])
    except Exception as error:  # the redis client's ConnectionError, TimeoutError, ...
        _log_outage(type(error).__name__)
        return None
    return Window(limit, max(0, limit - count), reset, count <= limit)


def _log_outage(reason: str) -> None:
    global _last_logged
    if time.monotonic() - _last_logged > _LOGGED_EVERY:
        _last_logged = time.monotonic()
        log.error("rate limiter unavailable, requests pass unlimited: %s", reason)
