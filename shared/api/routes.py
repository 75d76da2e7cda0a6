"""The one way a staff-facing HTTP function is built: a route table, served by flask-openapi3.

Each `Route` names its method, path template, handler and the roles allowed. The handler's
type hints are its contract: `path`, `query`, `header` and `body` parameters annotated with
pydantic models are validated before it runs (a bad request is 400 with the field errors),
it is handed the `Staff` who called, and its return annotation is the response model. The
OpenAPI 3.1 document comes from the same routes and models, at `GET /openapi.json`.

Order of checks, so that nothing is told to someone who may not know it: the ID token (401),
then the role (403), then the tenant's rate limit (429), then validation (400), then the
handler, which answers 404 for ids its caller cannot see (another tenant's, another
outlet's), never 403. A route with `audit` writes who did it to the tenant's audit log once
it succeeded (routes that change state in one transaction write theirs in it instead).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, get_type_hints

from flask import Response, current_app, g, request
from flask_openapi3.models.info import Info
from flask_openapi3.openapi import OpenAPI
from google.api_core.exceptions import DeadlineExceeded, ServiceUnavailable
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from shared.api import ratelimit
from shared.api.auth import OPERATOR, Operator, Staff, authenticate
from shared.api.errors import INVALID_REQUEST, ApiError, ErrorResponse
from shared.cloud import logs
from shared.db import audit
from shared.db.tenancy import tenant_session

log = logging.getLogger(__name__)

PARTS = ("path", "query", "header", "body", "form")  # form: multipart, for file uploads
ALWAYS_DOCUMENTED = (400, 401, 403, 404, 413, 414, 429, 500, 503)
ANSWERED_IN_FRONT = frozenset({414})  # by gunicorn or Google's front end, before our code runs
MAX_BODY_BYTES = 1024 * 1024  # a staff request is a few kB: anything near this is a mistake or an attack
OPENAPI_PATH = "/openapi.json"
ERROR_DESCRIPTIONS = {
    400: "The path, query, a header or the body is not valid (`invalid_request`, with the fields in `details`).",
    401: "No valid Firebase ID token, or not staff of an active tenant (`unauthenticated`).",
    403: "The caller's role may not use this route (`forbidden`).",
    404: "No such route, or nothing with this id that the caller may see (`not_found`).",
    409: "The resource's state does not allow it (`conflict`, or a more specific code).",
    413: "The body is larger than the API takes (`body_too_large`).",
    414: "The URL is longer than the server in front of the API takes (its own answer, not this API's shape).",
    422: "A service we check with refused it (for an outlet: Meta refused the access token or number); "
    "nothing was stored.",
    429: "Too many requests this minute (`rate_limited`, with Retry-After), or the AI is suspended "
    "by billing (`service_suspended`).",
    500: "Something failed on our side (`internal`); it is logged with its trace id.",
    503: "A dependency is briefly unavailable (`unavailable`): retry.",
}


@dataclass(frozen=True)
class Route:
    method: str  # GET, POST, PUT, PATCH or DELETE
    path: str  # a Flask rule: /conversations/<uuid:conversation_id>/resolve (converters become 404s)
    handler: Callable[..., BaseModel]
    roles: frozenset[str]
    status: int = 200  # what success answers
    errors: tuple[int, ...] = ()  # statuses beyond the usual ones this route may answer (409, ...)
    max_body_bytes: int = MAX_BODY_BYTES  # a file upload takes more
    # A route answering server-sent events returns a Response; its return annotation is the
    # model of one event's data, documented under text/event-stream.
    event_stream: bool = False
    audit: str | None = None  # the audit-log action written when it succeeds ("outlet.create", ...)


class StaffApi:
    """A staff API: call it with the request functions-framework hands the entry point."""

    def __init__(
        self,
        title: str,
        description: str,
        routes: Sequence[Route],
        *,
        rate_limit: Callable[[uuid.UUID], int],  # a tenant's requests per minute (its tier's)
        version: str = "1.0.0",
    ) -> None:
        self._rate_limit = rate_limit
        self._app = OpenAPI(
            __name__,
            info=Info(title=title, version=version, description=description),
            security_schemes={"firebase": {"type": "http", "scheme": "bearer", "bearerFormat": "Firebase ID token"}},
            doc_prefix="",
            doc_url=OPENAPI_PATH,
            validation_error_status=400,
            validation_error_model=ErrorResponse,
            validation_error_callback=self._invalid,
        )
        self._routes: dict[str, Route] = {}
        self._part_of: dict[str, str] = {}  # model title -> the request part it validates
        for route in routes:
            self._add(route)
        self._app.before_request(self._authorize)
        self._app.after_request(self._rate_headers)
        self._app.register_error_handler(ApiError, self._api_error)
        self._app.register_error_handler(HTTPException, self._http_error)
        self._app.register_error_handler(Exception, self._unexpected)

    def __call__(self, flask_request: Any) -> Response:
        """Serve the request functions-framework hands over. The body is read here, at most
        MAX_BODY_BYTES of it, and handed to our app as a stream of its own: functions-framework
        reads its request's body again after the response."""
        limit = self._body_limit(flask_request.environ)
        body = flask_request.stream.read(limit + 1)
        if len(body) > limit or (flask_request.content_length or 0) > limit:
            return _json(ApiError(413, f"the body is larger than {limit} bytes").body(), 413)
        environ = {**flask_request.environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        with self._app.request_context(environ):
            return self._app.full_dispatch_request()

    def _body_limit(self, environ: dict[str, Any]) -> int:
        """The matched route's limit; the default one for anything else."""
        try:
            endpoint, _ = self._app.url_map.bind_to_environ(environ).match()
        except HTTPException:
            return MAX_BODY_BYTES
        route = self._routes.get(str(endpoint))
        return route.max_body_bytes if route is not None else MAX_BODY_BYTES

    def answer_framework_errors(self) -> None:
        """Call while functions-framework loads the entry point (it does so in its app's
        context): a request its own router refuses, a path with a newline say, is answered
        in our error shape too, not with Flask's HTML page."""
        current_app.register_error_handler(HTTPException, self._http_error)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document, as served at /openapi.json."""
        return dict(self._app.api_doc)

    def openapi_json(self) -> str:
        """The document as committed under docs/openapi/: stable key order, one trailing newline."""
        return json.dumps(self.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def _add(self, route: Route) -> None:
        hints = get_type_hints(route.handler)
        parts = {part: hints[part] for part in PARTS if part in hints}
        for part, model in parts.items():
            self._part_of[model.__name__] = part
        endpoint = f"{route.method} {route.path}"
        self._routes[endpoint] = route

        def view(**kwargs: Any) -> Response:
            caller: Staff | Operator = g.staff
            path = kwargs["path"].model_dump() if "path" in kwargs else {}
            tenant_id = caller.tenant_id if isinstance(caller, Staff) else path.get("tenant_id")
            with logs.tenant_scope(tenant_id):
                result = route.handler(caller, **{part: kwargs[part] for part in parts})
                if route.audit is not None and tenant_id is not None:
                    _audit(route, caller, tenant_id, path)
            if isinstance(result, Response):
                return result
            return _json(result.model_dump(mode="json"), route.status)

        view.__annotations__ = dict(parts)
        view.__name__ = route.handler.__name__
        view.__doc__ = route.handler.__doc__
        statuses = sorted({*ALWAYS_DOCUMENTED, *route.errors})
        responses: dict[Any, Any] = {route.status: hints["return"]}
        if route.event_stream:
            event = hints["return"]
            responses = {
                route.status: {
                    "description": f"Server-sent events: `data: <{event.__name__}>` lines, then `data: [DONE]`.",
                    "content": {"text/event-stream": {"schema": event.model_json_schema()}},
                }
            }
        responses.update(
            {status: {"description": ERROR_DESCRIPTIONS[status], "content": _ERROR} for status in statuses}
        )
        register = getattr(self._app, route.method.lower())
        register(
            route.path,
            endpoint=endpoint,
            operation_id=route.handler.__name__,
            responses=responses,
            security=[{"firebase": []}],
            openapi_extensions={"x-roles": sorted(route.roles)},
        )(view)

    def _authorize(self) -> None:
        """Before validation: who is calling (401) and whether their role may use the route (403)."""
        route = self._routes.get(request.url_rule.endpoint) if request.url_rule is not None else None
        if route is None:
            return  # the OpenAPI document, or no route at all (404, 405)
        g.staff = caller = authenticate(request.headers.get("Authorization"), operators=OPERATOR in route.roles)
        if caller.role not in route.roles:
            raise ApiError(403, f"a {caller.role} may not {route.method} {route.path}")
        if isinstance(caller, Staff):
            g.rate_window = window = ratelimit.hit(caller.tenant_id, self._rate_limit(caller.tenant_id))
            if window is not None and not window.allowed:
                raise ApiError(429, f"more than {window.limit} requests this minute: retry in {window.reset_seconds} s")
        if request.is_json and request.content_length != 0:
            _require_json_text()

    def _invalid(self, error: ValidationError) -> Response:
        part = self._part_of.get(error.title)
        details = [
            {"loc": [part, *e["loc"]] if part else list(e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False, include_context=False, include_input=False)
        ]
        first = details[0]
        summary = f"{'.'.join(str(p) for p in first['loc'])}: {first['message']}" if details else "invalid request"
        return _json(ApiError(400, summary, INVALID_REQUEST, details).body(), 400)

    @staticmethod
    def _rate_headers(response: Response) -> Response:
        window: ratelimit.Window | None = g.get("rate_window")
        if window is not None:
            response.headers.update(window.headers())
        return response

    @staticmethod
    def _api_error(error: ApiError) -> Response:
        return _json(error.body(), error.status)

    @staticmethod
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = {
            404: f"no such route: {request.method} {request.path[:200]}",
            405: f"{request.method} is not allowed on {request.path[:200]}",
        }.get(status, error.description or error.name)
        answer = _json(ApiError(status, message).body(), status)
        for name, value in error.get_headers():
            if name.lower() == "allow":
                answer.headers[name] = value
        return answer

    @staticmethod
    def _unexpected(error: Exception) -> Response:
        if isinstance(error, OperationalError | ServiceUnavailable | DeadlineExceeded):
            log.warning("a dependency is unavailable: %s", type(error).__name__)
            return _json(ApiError(503, "a service we depend on is briefly unavailable: retry").body(), 503)
        log.exception("staff API request failed")
        return _json(ApiError(500, "something failed on our side; it is logged").body(), 500)


def _audit(route: Route, caller: Staff | Operator, tenant_id: uuid.UUID, path: dict[str, Any]) -> None:
    """Who called a route that reads customer data or changes something, in its own transaction."""
    target = next((str(value) for name, value in path.items() if name != "tenant_id"), None)
    with tenant_session(tenant_id) as session:
        audit.record(
            session,
            tenant_id,
            str(route.audit),
            actor_type="user" if isinstance(caller, Staff) else "platform",
            actor_id=str(caller.user_id) if isinstance(caller, Staff) else caller.firebase_uid,
            target_type=str(route.audit).split(".", 1)[0],
            target_id=target,
            details={"method": route.method, "path": request.path[:300]},
        )


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


def _require_json_text() -> None:
    """A JSON body must be JSON, and all its text Unicode: JSON may escape half a surrogate
    pair ("\\ud800"), which no database stores. Refused here, as 400."""
    try:
        data = json.loads(request.get_data())
        json.dumps(data, ensure_ascii=False).encode()
    except (ValueError, UnicodeError) as exc:
        detail = {"loc": ["body"], "message": f"not valid JSON text: {exc}", "type": "json_invalid"}
        raise ApiError(400, "body: not valid JSON text", details=[detail]) from exc
