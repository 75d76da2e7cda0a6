"""Every declared function served by one local HTTP server, one path per function.

`http://127.0.0.1:8080/<function-name>` stands for the function's Cloud Run URL: each
function is the Flask app functions-framework builds for it in production, mounted under
its name. Pub/Sub push, Cloud Tasks, the storage watcher and the scheduler call these URLs.
Run with gunicorn: `gunicorn 'emulators.function_host:create_host_app()'`. A function that
must answer fast under load can also get a host of its own, as it has its own instances in
production: `create_host_app(only="whatsapp-webhook")` (the stack does this for the webhook,
whose acknowledgement Meta times, so it never waits for the GIL behind conversation work).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import functions_framework
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from shared.cloud.declaration import HttpTrigger, ScheduleTrigger, TaskQueueTrigger, declaration

_HTTP_KINDS = (HttpTrigger, TaskQueueTrigger, ScheduleTrigger)


def http_functions() -> list[str]:
    """Functions called with plain HTTP (and so with a GET /health); the rest take CloudEvents."""
    return [name for name, fn in declaration().functions.items() if isinstance(fn.trigger, _HTTP_KINDS)]


def signature_type(name: str) -> str:
    return "http" if name in http_functions() else "cloudevent"


def _index(names: list[str]) -> Any:
    """GET / lists the functions served here; anything else under an unknown path is a 404."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") in ("", "/"):
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"functions": sorted(names)}).encode()]
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": "no function at this path"}']

    return wsgi


def _at_root(app: Any) -> Any:
    """`/conversation` and `/conversation/` both reach the function's "/", as on Cloud Run."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not environ.get("PATH_INFO"):
            environ["PATH_INFO"] = "/"
        return app(environ, start_response)  # type: ignore[no-any-return]

    return wsgi


def create_host_app(only: str = "") -> DispatcherMiddleware:
    """All declared functions, or only those named in `only` (comma-separated)."""
    decl = declaration()
    wanted = [name for name in only.split(",") if name] or list(decl.functions)
    unknown = set(wanted) - set(decl.functions)
    if unknown:
        raise ValueError(f"no such function: {', '.join(sorted(unknown))}")
    mounts = {
        f"/{name}": _at_root(
            functions_framework.create_app(
                target=fn.entry_point, source=str(decl.source_of(name)), signature_type=signature_type(name)
            )
        )
        for name, fn in decl.functions.items()
        if name in wanted
    }
    return DispatcherMiddleware(_index(wanted), mounts)
