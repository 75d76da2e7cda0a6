"""A local stand-in for Meta's Graph API messages endpoint, for development and tests.

It accepts sends and mark-reads the way the Cloud API does (same paths, same answer and error
shapes), records every call, can be told to fail the next calls with a given error code or
HTTP status, or to accept a send and answer it only after `stall_seconds` (past a client's
timeout), and, given a webhook URL and app secret, answers each accepted send with signed
`sent`, `delivered` and `read` status webhooks, as Meta would, carrying the send's
`biz_opaque_callback_data`.

    python -m emulators.whatsapp_simulator --port 8089 \\
        --webhook-url http://127.0.0.1:8080/whatsapp-webhook --app-secret dev-secret

Connecting a number works as on Meta: `GET /{phone_number_id}` answers the number to its own
access token only (190 for another token, 100 for an id nobody registered), and `POST
/{waba_id}/subscribed_apps` subscribes the app. Numbers are registered, as a business does in
Meta's app dashboard, with POST /_sim/numbers; a registered number's sends need its token.

Control endpoints (not part of Graph): GET /_sim/health; GET|DELETE /_sim/calls
(?phone_number_id= filters); POST|DELETE /_sim/failures; GET|POST /_sim/config;
GET|POST /_sim/numbers (tokens are never shown).
"""

from __future__ import annotations

import argparse
import heapq
import http.client
import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from emulators.keepalive import Connections, serve
from shared.whatsapp.errors import error_class_for_code
from shared.whatsapp.signature import sign

log = logging.getLogger("whatsapp_simulator")

SEND_TYPES = frozenset(
    {
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "template",
        "interactive",
        "location",
        "contacts",
        "reaction",
    }
)
_MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
_BSUID = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")
_PHONE = re.compile(r"^\+?[0-9]{6,20}$")
# The HTTP status Meta answers with for each code (Cloud API error codes reference).
_HTTP_STATUS_BY_CODE = {
    1: 400, 2: 503, 4: 400, 10: 403, 100: 400, 190: 401, 368: 403, 80007: 400, 130429: 400, 131000: 500,
    131016: 503, 131026: 400, 131030: 400, 131031: 403, 131047: 400, 131051: 400, 131052: 400, 131053: 400,
    131056: 400, 131062: 400, 132000: 400, 132001: 404,
}  # fmt: skip
_STATUS_SEQUENCE = ("sent", "delivered", "read")
_WABA_ID = "102290129340398"
WEBHOOK_TIMEOUT = 5.0  # seconds


@dataclass
class _Failures:
    remaining: int
    http_status: int
    error_code: int | None
    include_read: bool
    stall_seconds: float | None = None  # accept the send, then answer this late (past a client's timeout)


@dataclass(frozen=True)
class _WebhookTarget:
    url: str
    app_secret: str
    delay: float


@dataclass
class _Statuses:
    """The status webhooks one accepted send still owes, `sent` first."""

    target: _WebhookTarget
    phone_number_id: str
    wamid: str
    addressing: dict[str, str]
    category: str
    tracking: str | None  # the send's biz_opaque_callback_data, echoed in each status
    remaining: list[str] = field(default_factory=lambda: list(_STATUS_SEQUENCE))


@dataclass
class _Number:
    """A WhatsApp Business number as registered in Meta's dashboard, with its access token."""

    phone_number_id: str
    waba_id: str
    display_phone_number: str
    verified_name: str
    access_token: str
    subscribed: bool = False

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "access_token"}


class _AnswerError(Exception):
    """Stop handling and answer with this (error) response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def graph_error(code: int, message: str, details: str | None = None, http_status: int | None = None) -> Response:
    """A Meta-shaped error answer."""
    error: dict[str, Any] = {"message": f"(#{code}) {message}", "type": "OAuthException", "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
    return _json({"error": error}, http_status or _HTTP_STATUS_BY_CODE.get(code, 400))


def _invalid(details: str) -> _AnswerError:
    return _AnswerError(graph_error(100, "Invalid parameter", details, 400))


class Simulator:
    """The WSGI app; state lives here, guarded by one lock, so threaded servers are safe."""

    def __init__(
        self,
        webhook_url: str | None = None,
        app_secret: str | None = None,
        *,
        record_path: Path | None = None,
        status_delay: float = 0.2,
        display_phone_number: str = "15550783881",
    ) -> None:
        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = []
        self._failures: _Failures | None = None
        self._webhook_url = webhook_url
        self._app_secret = app_secret
        self._status_webhooks = bool(webhook_url and app_secret)
        self._status_delay = status_delay
        self._record_path = record_path
        self._sequence = itertools.count(1)
        self._statuses = _StatusPoster(display_phone_number)
        self._numbers: dict[str, _Number] = {}
        self._urls = Map(
            [
                Rule("/_sim/health", endpoint="health", methods=["GET"]),
                Rule("/_sim/numbers", endpoint="numbers", methods=["GET", "POST"]),
                Rule("/<version>/<phone_number_id>", endpoint="phone_number", methods=["GET"]),
                Rule("/<version>/<waba_id>/subscribed_apps", endpoint="subscribed_apps", methods=["POST"]),
                Rule("/_sim/calls", endpoint="calls", methods=["GET", "DELETE"]),
                Rule("/_sim/failures", endpoint="failures", methods=["POST", "DELETE"]),
                Rule("/_sim/config", endpoint="config", methods=["GET", "POST"]),
                Rule("/<version>/<phone_number_id>/messages", endpoint="messages", methods=["POST"]),
            ]
        )

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            endpoint, args = self._urls.bind_to_environ(environ).match()
            response = getattr(self, f"_on_{endpoint}")(request, **args)
        except HTTPException as exc:
            response = _json({"error": {"message": exc.description, "code": exc.code}}, exc.code or 500)
        except _AnswerError as answer:
            response = answer.response
        result: Iterable[bytes] = response(environ, start_response)
        return result

    # Control endpoints -------------------------------------------------------------------

    def _on_health(self, request: Request) -> Response:
        return _json({"status": "ok"})

    def _on_calls(self, request: Request) -> Response:
        with self._lock:
            if request.method == "DELETE":
                self._calls.clear()
                return _json({"cleared": True})
            wanted = request.args.get("phone_number_id")
            calls = [c for c in self._calls if wanted is None or c["phone_number_id"] == wanted]
            return _json({"calls": calls})

    def _on_failures(self, request: Request) -> Response:
        if request.method == "DELETE":
            with self._lock:
                self._failures = None
            return _json({"cleared": True})
        spec = _json_object(request)
        count: Any = spec.get("count")
        code: Any = spec.get("error_code")
        status: Any = spec.get("http_status")
        stall: Any = spec.get("stall_seconds")
        if not _positive_int(count):
            raise _invalid("count must be a positive integer")
        if stall is not None:
            if isinstance(stall, bool) or not isinstance(stall, int | float) or not 0 < stall <= 60:
                raise _invalid("stall_seconds must be a number of seconds up to 60")
            if code is not None or status is not None:
                raise _invalid("a stalled send is accepted: give stall_seconds alone")
        elif code is None and status is None:
            raise _invalid("give error_code, http_status, or both (or stall_seconds)")
        if code is not None and not _positive_int(code):
            raise _invalid("error_code must be a positive integer")
        if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
            raise _invalid("http_status must be between 400 and 599")
        failures = _Failures(
            remaining=count,
            http_status=status if status is not None else _HTTP_STATUS_BY_CODE.get(code, 400),
            error_code=code,
            include_read=spec.get("include_read") is True,
            stall_seconds=float(stall) if stall is not None else None,
        )
        with self._lock:
            self._failures = failures
        return _json(
            {
                "count": failures.remaining,
                "http_status": failures.http_status,
                "error_code": failures.error_code,
                "include_read": failures.include_read,
                "stall_seconds": failures.stall_seconds,
            }
        )

    def _on_config(self, request: Request) -> Response:
        if request.method == "POST":
            spec = _json_object(request)
            url, secret, delay = spec.get("webhook_url"), spec.get("app_secret"), spec.get("status_delay")
            if url is not None and not isinstance(url, str):
                raise _invalid("webhook_url must be a string or null")
            if secret is not None and not isinstance(secret, str):
                raise _invalid("app_secret must be a string")
            if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0):
                raise _invalid("status_delay must be a number of seconds")
            with self._lock:
                webhook_url = (url or None) if "webhook_url" in spec else self._webhook_url
                app_secret = (secret or None) if "app_secret" in spec else self._app_secret
                enabled = spec["status_webhooks"] is True if "status_webhooks" in spec else self._status_webhooks
                if enabled and not (webhook_url and app_secret):
                    raise _invalid("status webhooks need webhook_url and app_secret")
                self._webhook_url, self._app_secret, self._status_webhooks = webhook_url, app_secret, enabled
                if delay is not None:
                    self._status_delay = float(delay)
        with self._lock:
            return _json(
                {
                    "webhook_url": self._webhook_url,
                    "app_secret_set": bool(self._app_secret),
                    "status_webhooks": self._status_webhooks,
                    "status_delay": self._status_delay,
                }
            )

    def _on_numbers(self, request: Request) -> Response:
        if request.method == "POST":
            spec = _json_object(request)
            fields = ("phone_number_id", "waba_id", "display_phone_number", "verified_name", "access_token")
            if not all(isinstance(spec.get(f), str) and spec[f] for f in fields):
                raise _invalid(f"give {', '.join(fields)} as strings")
            with self._lock:
                self._numbers[spec["phone_number_id"]] = _Number(*(spec[f] for f in fields))
        with self._lock:
            return _json({"numbers": [n.public() for n in self._numbers.values()]})

    # Graph -------------------------------------------------------------------------------

    def _token_of(self, request: Request) -> str:
        authorization = request.headers.get("Authorization", "")
        token = authorization[len("Bearer ") :].strip() if authorization.startswith("Bearer ") else ""
        if not token:
            raise _AnswerError(graph_error(190, "Invalid OAuth access token - Cannot parse access token", None, 401))
        return token

    def _on_phone_number(self, request: Request, version: str, phone_number_id: str) -> Response:
        token = self._token_of(request)
        with self._lock:
            number = self._numbers.get(phone_number_id)
        if number is None:
            details = f"Object with ID '{phone_number_id}' does not exist, cannot be loaded due to missing permissions"
            return graph_error(100, "Unsupported get request.", details, 400)
        if not secrets.compare_digest(token, number.access_token):
            return graph_error(190, "Invalid OAuth access token - Cannot parse access token", None, 401)
        return _json(
            {
                "id": number.phone_number_id,
                "display_phone_number": number.display_phone_number,
                "verified_name": number.verified_name,
                "quality_rating": "GREEN",
                "code_verification_status": "VERIFIED",
            }
        )

    def _on_subscribed_apps(self, request: Request, version: str, waba_id: str) -> Response:
        token = self._token_of(request)
        with self._lock:
            numbers = [n for n in self._numbers.values() if n.waba_id == waba_id]
            if not numbers:
                return graph_error(100, "Unsupported post request.", f"Object with ID '{waba_id}' does not exist", 400)
            if not any(secrets.compare_digest(token, n.access_token) for n in numbers):
                return graph_error(190, "Invalid OAuth access token - Cannot parse access token", None, 401)
            for number in numbers:
                number.subscribed = True
        return _json({"success": True})

    def _on_messages(self, request: Request, version: str, phone_number_id: str) -> Response:
        body = request.get_json(silent=True)
        kind = "mark_read" if isinstance(body, dict) and "status" in body else "send"
        call: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(),
            "api_version": version,
            "phone_number_id": phone_number_id,
            "kind": kind,
            "body": body,
            "authorized": False,
            "status": 200,
            "wamid": None,
            "error_code": None,
        }
        try:
            response, wamid = self._answer(request, body, kind, phone_number_id, call)
        except _AnswerError as answer:
            response, wamid = answer.response, None
        call["status"] = response.status_code
        call["wamid"] = wamid
        if response.status_code >= 400:
            call["error_code"] = _error_code(response)
        self._record(call)
        return response

    def _answer(
        self, request: Request, body: Any, kind: str, phone_number_id: str, call: dict[str, Any]
    ) -> tuple[Response, str | None]:
        token = self._token_of(request)
        with self._lock:
            number = self._numbers.get(phone_number_id)
        if number is not None and not secrets.compare_digest(token, number.access_token):
            raise _AnswerError(graph_error(190, "Invalid OAuth access token - Cannot parse access token", None, 401))
        call["authorized"] = True
        if not isinstance(body, dict):
            raise _invalid("the request body must be a JSON object")
        if kind == "mark_read":
            _validate_mark_read(body)
        else:
            _validate_send(body)
        stall = self._maybe_fail(kind)
        if kind == "mark_read":
            return _json({"success": True}), None

        wamid = f"wamid.SIM{next(self._sequence):06d}{secrets.token_hex(8).upper()}"
        if "to" in body:
            contact = {"input": body["to"], "wa_id": body["to"].lstrip("+")}
            addressing = {"recipient_id": contact["wa_id"]}
        else:
            contact = {"input": body["recipient"], "user_id": body["recipient"]}
            addressing = {"recipient_user_id": body["recipient"]}
        target = self._webhook_target()
        if target is not None:
            category = "utility" if body["type"] == "template" else "service"
            tracking = body.get("biz_opaque_callback_data")
            self._statuses.post(_Statuses(target, phone_number_id, wamid, addressing, category, tracking))
        answer = {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]}
        if stall:
            time.sleep(stall)  # accepted and sent all the same: the caller has given up waiting
        return _json(answer), wamid

    def _maybe_fail(self, kind: str) -> float | None:
        """Raise the failure asked for, if any; for a stalled send, how long to stall."""
        with self._lock:
            failures = self._failures
            if failures is None or (kind == "mark_read" and not failures.include_read):
                return None
            failures.remaining -= 1
            if failures.remaining <= 0:
                self._failures = None
        if failures.stall_seconds is not None:
            return failures.stall_seconds if kind == "send" else None
        if failures.error_code is None:
            # What a load balancer in front of Graph sends: no JSON, no code.
            raise _AnswerError(
                Response(
                    f"<html><body>HTTP {failures.http_status}</body></html>",
                    status=failures.http_status,
                    mimetype="text/html",
                )
            )
        cls = error_class_for_code(failures.error_code)
        title = cls.default_title if cls else "Simulated error"
        raise _AnswerError(
            graph_error(failures.error_code, title, "Simulated by /_sim/failures.", failures.http_status)
        )

    def _webhook_target(self) -> _WebhookTarget | None:
        with self._lock:
            if not (self._status_webhooks and self._webhook_url and self._app_secret):
                return None
            return _WebhookTarget(self._webhook_url, self._app_secret, self._status_delay)

    def _record(self, call: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(call)
            if self._record_path is not None:
                with self._record_path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(call) + "\n")


class _StatusPoster:
    """Posts each send's status webhooks, `status_delay` apart and each after the previous one
    was answered, as Meta does. One clock thread and a few long-lived workers with kept-alive
    connections do it: a thread per send and a TCP connection per webhook cost more CPU than
    answering the send itself."""

    def __init__(self, display_phone_number: str, workers: int = 8) -> None:
        self._display_phone_number = display_phone_number
        self._connections = Connections()  # each worker's own
        self._workers = ThreadPoolExecutor(workers, thread_name_prefix="status-webhooks")
        self._due: list[tuple[float, int, _Statuses]] = []  # a heap, by time.monotonic()
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._clock: threading.Thread | None = None

    def post(self, statuses: _Statuses) -> None:
        """Post `statuses` from now on, the first one `status_delay` from now."""
        with self._changed:
            if self._clock is None:
                self._clock = threading.Thread(target=self._run_clock, name="status-webhooks-clock", daemon=True)
                self._clock.start()
            heapq.heappush(self._due, (time.monotonic() + statuses.target.delay, next(self._order), statuses))
            self._changed.notify()

    def _run_clock(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                statuses = heapq.heappop(self._due)[2]
            self._workers.submit(self._post_next, statuses)

    def _post_next(self, statuses: _Statuses) -> None:
        status = statuses.remaining.pop(0)
        payload = status_webhook(
            self._display_phone_number,
            statuses.phone_number_id,
            statuses.wamid,
            status,
            statuses.addressing,
            statuses.category,
            statuses.tracking,
        )
        raw = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, statuses.target.app_secret)}
        try:
            answer = self._connections.request("POST", statuses.target.url, raw, headers, WEBHOOK_TIMEOUT)
        except (http.client.HTTPException, OSError) as exc:
            log.warning("status webhook %s for %s not delivered: %s", status, statuses.wamid, exc)
        else:
            if answer >= 300:
                log.warning("status webhook %s for %s answered HTTP %s", status, statuses.wamid, answer)
        if statuses.remaining:
            self.post(statuses)


def status_webhook(
    display_phone_number: str,
    phone_number_id: str,
    wamid: str,
    status: str,
    addressing: dict[str, str],
    category: str = "service",
    tracking: str | None = None,
) -> dict[str, Any]:
    """The webhook body Meta posts when one of our messages is sent, delivered or read.
    `addressing` is {"recipient_id": phone} or, for a customer known by BSUID only,
    {"recipient_user_id": bsuid}."""
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(time.time())),
        **addressing,
        "pricing": {
            "billable": category != "service",
            "pricing_model": "PMP",
            "category": category,
            "type": "regular" if category != "service" else "free_customer_service",
        },
    }
    if tracking is not None:
        entry["biz_opaque_callback_data"] = tracking
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": _WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": display_phone_number,
                                "phone_number_id": phone_number_id,
                            },
                            "statuses": [entry],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def create_app(
    webhook_url: str | None = None,
    app_secret: str | None = None,
    *,
    record_path: Path | None = None,
    status_delay: float = 0.2,
) -> Simulator:
    """The simulator as a WSGI app, e.g. for `werkzeug.serving.make_server` in a test thread."""
    return Simulator(webhook_url, app_secret, record_path=record_path, status_delay=status_delay)


def _validate_send(body: dict[str, Any]) -> None:
    if body.get("messaging_product") != "whatsapp":
        raise _invalid('messaging_product must be "whatsapp"')
    has_to, has_recipient = "to" in body, "recipient" in body
    if has_to == has_recipient:
        raise _invalid("give exactly one of to (phone number) and recipient (business-scoped user ID)")
    if has_to and not (isinstance(body["to"], str) and _PHONE.match(body["to"])):
        raise _invalid("to must be a phone number")
    if has_recipient and not (isinstance(body["recipient"], str) and _BSUID.match(body["recipient"])):
        raise _invalid("recipient must be a business-scoped user ID such as US.13491208655302741918")
    msg_type = body.get("type")
    if msg_type not in SEND_TYPES:
        raise _invalid(f"type must be one of {sorted(SEND_TYPES)}")
    content = body.get(msg_type)
    if msg_type == "contacts":
        if not isinstance(content, list) or not content:
            raise _invalid("contacts must be a non-empty list")
    elif not isinstance(content, dict):
        raise _invalid(f"{msg_type} must be an object")
    elif msg_type == "text" and not (isinstance(content.get("body"), str) and content["body"].strip()):
        raise _invalid("text.body must be a non-empty string")
    elif msg_type == "text" and len(content["body"]) > 4096:
        raise _invalid("text.body is longer than 4096 characters")
    elif msg_type in _MEDIA_TYPES and not (content.get("id") or content.get("link")):
        raise _invalid(f"{msg_type} needs an id or a link")
    elif msg_type == "template" and not (
        isinstance(content.get("name"), str) and isinstance((content.get("language") or {}).get("code"), str)
    ):
        raise _invalid("template needs a name and language.code")
    context = body.get("context")
    if context is not None and not (isinstance(context, dict) and isinstance(context.get("message_id"), str)):
        raise _invalid("context.message_id must be a string")


def _validate_mark_read(body: dict[str, Any]) -> None:
    if body.get("messaging_product") != "whatsapp":
        raise _invalid('messaging_product must be "whatsapp"')
    if body.get("status") != "read":
        raise _invalid('status must be "read"')
    if not (isinstance(body.get("message_id"), str) and body["message_id"]):
        raise _invalid("message_id must be a WhatsApp message id")
    if "typing_indicator" in body and body["typing_indicator"] != {"type": "text"}:
        raise _invalid('typing_indicator must be {"type": "text"}')


def _json_object(request: Request) -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _invalid("the request body must be a JSON object")
    return body


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _error_code(response: Response) -> int | None:
    try:
        code = json.loads(response.get_data())["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, int) else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local stand-in for Meta's WhatsApp Graph API.")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--webhook-url", help="where to post signed status webhooks")
    parser.add_argument(
        "--app-secret",
        default=os.environ.get("WHATSAPP_APP_SECRET"),
        help="secret that signs status webhooks (default: $WHATSAPP_APP_SECRET)",
    )
    parser.add_argument("--record", type=Path, help="also append every call, as JSON lines, to this file")
    parser.add_argument("--status-delay", type=float, default=0.2, help="seconds between status webhooks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(args.webhook_url, args.app_secret, record_path=args.record, status_delay=args.status_delay)
    serve(app, args.port, "the WhatsApp Graph API simulator")


if __name__ == "__main__":
    main()
