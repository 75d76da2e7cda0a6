"""Every declared function served by one local HTTP server, one path per function.

`http://127.0.0.1:8080/<function-name>` stands for the function's Cloud Run URL: each
function is the Flask app functions-framework builds for it in production, mounted under
its name. Pub/Sub push, Cloud Tasks, the storage watcher and the scheduler call these URLs.
Run with gunicorn: `gunicorn emulators.function_host:app`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import functions_framework
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from shared.deployment import HttpTrigger, ScheduleTrigger, TaskQueueTrigger, declaration

_HTTP_KINDS = (HttpTrigger, TaskQueueTrigger, ScheduleTrigger)


def signature_type(name: str) -> str:
    trigger = declaration().functions[name].trigger
    return "http" if isinstance(trigger, _HTTP_KINDS) else "cloudevent"


def _index(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """GET / lists the functions; anything else under an unknown path is a 404."""
    if environ.get("PATH_INFO", "/") in ("", "/"):
        body = json.dumps({"functions": sorted(declaration().functions)}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    start_response("404 Not Found", [("Content-Type", "application/json")])
    return [b'{"error": "no function at this path"}']


def create_host_app() -> DispatcherMiddleware:
    decl = declaration()
    mounts = {
        f"/{name}": functions_framework.create_app(
            target=fn.entry_point, source=str(decl.source_of(name)), signature_type=signature_type(name)
        )
        for name, fn in decl.functions.items()
    }
    return DispatcherMiddleware(_index, mounts)


app = create_host_app()
