"""What the whatsapp-webhook function does with a request from Meta.

GET is the subscription handshake. POST is checked in this order, cheapest first and
before anything is parsed: size (413), signature over the raw body (401), JSON (400).
A signed, well-formed delivery is always acknowledged with 200, even when parts of it are
unknown to us (they are logged), so Meta does not retry it forever; only when we could not
hand the events to Pub/Sub do we answer 503, and Meta delivers again (the conversation
function dedupes). No slow work happens here: parse, route, publish, answer.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.cloud import pubsub
from shared.cloud.settings import settings
from shared.db import platform
from shared.whatsapp.signature import verify_signature
from shared.whatsapp.updates import (
    IdentityChange,
    InboundMessage,
    MalformedWebhook,
    StatusUpdate,
    event_from_json_dict,
    parse_webhook,
)

log = logging.getLogger(__name__)

ROUTE_CACHE_SECONDS = 60.0
# The sender records `sent` when Meta accepts a message (with its id); the `sent` status that
# follows can tell us nothing more, so it is acknowledged without a trip through Pub/Sub.
STATUSES_WE_ALREADY_KNOW = frozenset({"sent"})
Response = tuple[dict[str, Any] | str, int]


class _RouteCache:
    """phone_number_id -> outlet, per instance: routing must not cost a query per message."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, platform.OutletRoute]] = {}
        self._lock = threading.Lock()

    def get(self, phone_number_id: str) -> platform.OutletRoute | None:
        """The active outlet with this number (None for unknown or disabled ones)."""
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(phone_number_id)
        if hit and hit[0] > now:
            return hit[1]
        route = platform.outlet_for_phone_number(phone_number_id)
        if route is None or route.outlet_status != "active":
            return None  # not cached: an outlet switched on a moment ago gets its messages
        with self._lock:
            self._entries[phone_number_id] = (now + ROUTE_CACHE_SECONDS, route)
        return route


routes = _RouteCache()


def handle(request: Any) -> Response:
    if request.method == "GET":
        return verify_subscription(request.args)
    if request.method != "POST":
        return {"error": "method not allowed"}, 405
    return receive(request)


def verify_subscription(args: Any) -> Response:
    """Meta's handshake: echo hub.challenge when the verify token matches."""
    expected = settings().whatsapp_verify_token.get_secret_value()
    given = str(args.get("hub.verify_token", ""))
    if args.get("hub.mode") == "subscribe" and expected and hmac.compare_digest(given.encode(), expected.encode()):
        return str(args.get("hub.challenge", "")), 200
    return {"error": "verification failed"}, 403


def receive(request: Any) -> Response:
    limit = settings().whatsapp_webhook_max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return {"error": f"body larger than {limit} bytes"}, 413
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        return {"error": f"body larger than {limit} bytes"}, 413
    secret = settings().whatsapp_app_secret.get_secret_value()
    if not verify_signature(raw, request.headers.get("X-Hub-Signature-256"), secret):
        log.warning("rejected webhook with a missing or invalid signature")
        return {"error": "invalid or missing X-Hub-Signature-256"}, 401
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {"error": f"body is not valid JSON: {exc}"}, 400
    if not isinstance(payload, dict):
        return {"error": "body is not a JSON object"}, 400
    try:
        batch = parse_webhook(payload)
    except MalformedWebhook as exc:
        log.warning("acknowledged a signed webhook we do not understand: %s", exc)
        return {"status": "ignored", "reason": str(exc)}, 200

    outgoing: list[pubsub.Outgoing] = []
    unknown_numbers: set[str] = set()
    received_at = datetime.now(UTC).isoformat()
    for event in batch.events:
        if isinstance(event, StatusUpdate) and event.status in STATUSES_WE_ALREADY_KNOW:
            continue
        route = routes.get(event.phone_number_id)
        if route is None:
            unknown_numbers.add(event.phone_number_id)
            continue
        outgoing.append(_event_for(event, route, received_at))
    for ignored in batch.ignored:
        log.info(
            "ignored webhook change",
            extra={"field": ignored.field, "phone_number_id": ignored.phone_number_id},
        )
    for rejected in batch.rejected:
        log.warning(
            "rejected part of a webhook: %s",
            rejected.reason,
            extra={"phone_number_id": rejected.phone_number_id},
        )
    for number in unknown_numbers:
        log.warning("webhook for a phone_number_id no active outlet has", extra={"phone_number_id": number})
    try:
        pubsub.publish(outgoing)
    except Exception:
        log.exception("could not publish webhook events; Meta will deliver again")
        return {"error": "temporarily unavailable"}, 503
    for event in batch.events:
        if isinstance(event, InboundMessage) and event.phone_number_id not in unknown_numbers:
            # The first line of the message's trace (shared/cloud/tracing.py); the rest follow it.
            log.info("customer message accepted", extra={"wa_message_id": event.id, "message_type": event.type})
    return {
        "status": "ok",
        "published": len(outgoing),
        "ignored": len(batch.ignored),
        "rejected": len(batch.rejected),
        "unknown_phone_number_ids": sorted(unknown_numbers),
    }, 200


def customer_key(event: InboundMessage | IdentityChange) -> str:
    identity = event.old if isinstance(event, IdentityChange) else event.customer
    return identity.bsuid or identity.phone or "unknown"


def _event_for(
    event: InboundMessage | StatusUpdate | IdentityChange, route: platform.OutletRoute, received_at: str
) -> pubsub.Outgoing:
    envelope = {
        "tenant_id": str(route.tenant_id),
        "outlet_id": str(route.outlet_id),
        "received_at": received_at,
        "event": event.to_json_dict(),
    }
    attributes = {
        "tenant_id": str(route.tenant_id),
        "outlet_id": str(route.outlet_id),
        "kind": event.event_kind,
    }
    if isinstance(event, StatusUpdate):
        return pubsub.Outgoing(pubsub.MESSAGE_STATUSES, envelope, "", attributes)
    ordering_key = f"{route.outlet_id}:{customer_key(event)}"
    return pubsub.Outgoing(pubsub.INCOMING_MESSAGES, envelope, ordering_key, attributes)


def routed_event(envelope: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID, Any]:
    """(tenant id, outlet id, WhatsApp event) of an envelope the webhook published."""
    try:
        return (
            uuid.UUID(envelope["tenant_id"]),
            uuid.UUID(envelope["outlet_id"]),
            event_from_json_dict(envelope["event"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise pubsub.MalformedEvent(f"not a routed WhatsApp event: {exc}") from exc
