"""Qdrant's REST API for the local runtime, over qdrant-client's local mode.

Production reaches Qdrant with `QdrantClient(url=QDRANT_URL, api_key=...)`. There is no
Qdrant server to install offline, and local mode opens its folder from one process only
while the function host runs several. So one process owns the store and serves the part of
Qdrant's REST API the client uses for our calls (collections, payload indexes, upsert,
delete, query with prefetch and fusion, count, scroll, retrieve): every function reaches
Qdrant exactly as in production. Request bodies are parsed with the client's own REST
models and answered in Qdrant's envelope, {"result": ..., "status": "ok", "time": ...}.

    python -m emulators.qdrant_server --port 6333 --path .local/qdrant [--api-key KEY]
"""

from __future__ import annotations

import argparse
import hmac
import importlib.metadata
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from qdrant_client import QdrantClient, models
from werkzeug.wrappers import Request, Response

from emulators.keepalive import serve

log = logging.getLogger("qdrant_server")
CLIENT_VERSION = importlib.metadata.version("qdrant-client")
_COLLECTION = r"/collections/(?P<name>[^/]+)"


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


class QdrantServer:
    """The WSGI app. Local mode is not thread-safe: one lock serialises every call on it."""

    def __init__(self, path: Path | None = None, api_key: str | None = None) -> None:
        self._qdrant = QdrantClient(path=str(path)) if path else QdrantClient(location=":memory:")
        self._api_key = api_key
        self._lock = threading.Lock()
        self._indexes: dict[str, dict[str, Any]] = {}  # recorded: local mode needs none
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", re.compile(r"/"), self._version),
            ("GET", re.compile(r"/(healthz|livez|readyz)"), lambda request: "healthz check passed"),
            ("GET", re.compile(r"/collections"), self._collections),
            ("GET", re.compile(_COLLECTION + r"/exists"), self._exists),
            ("GET", re.compile(_COLLECTION), self._get_collection),
            ("PUT", re.compile(_COLLECTION), self._create_collection),
            ("DELETE", re.compile(_COLLECTION), self._delete_collection),
            ("PUT", re.compile(_COLLECTION + r"/index"), self._create_index),
            ("PUT", re.compile(_COLLECTION + r"/points"), self._upsert),
            ("POST", re.compile(_COLLECTION + r"/points"), self._retrieve),
            ("POST", re.compile(_COLLECTION + r"/points/delete"), self._delete),
            ("POST", re.compile(_COLLECTION + r"/points/query"), self._query),
            ("POST", re.compile(_COLLECTION + r"/points/query/batch"), self._query_batch),
            ("POST", re.compile(_COLLECTION + r"/points/count"), self._count),
            ("POST", re.compile(_COLLECTION + r"/points/scroll"), self._scroll),
        ]

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        started = time.monotonic()
        try:
            if self._api_key and not hmac.compare_digest(request.headers.get("api-key", ""), self._api_key):
                raise _Refused(401, "Must provide an API key or an Authorization bearer token")
            handler, arguments = self._route(request)
            with self._lock:
                result = handler(request, **arguments)
            if isinstance(result, str):
                response = Response(result, mimetype="text/plain")
            elif request.path == "/":
                response = _json(result, 200)
            else:
                response = _json({"result": _dump(result), "status": "ok", "time": time.monotonic() - started}, 200)
        except _Refused as refused:
            response = _json({"status": {"error": str(refused)}, "time": time.monotonic() - started}, refused.status)
        except ValidationError as invalid:
            message = f"Format error in JSON body: {invalid.errors(include_url=False)[0]['msg']}"
            response = _json({"status": {"error": message}, "time": time.monotonic() - started}, 400)
        except ValueError as error:  # local mode's own refusals: missing collection, wrong dimension
            status = 404 if "not found" in str(error).lower() else 400
            response = _json({"status": {"error": str(error)}, "time": time.monotonic() - started}, status)
        return response(environ, start_response)

    def close(self) -> None:
        """Let go of the folder, so another process (or a restarted server) may open it."""
        with self._lock:
            self._qdrant.close()

    def _route(self, request: Request) -> tuple[Callable[..., Any], dict[str, str]]:
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match:
                allowed = True
                if method == request.method:
                    return handler, match.groupdict()
        raise _Refused(405 if allowed else 404, f"{request.method} {request.path} is not served here")

    def _existing(self, name: str) -> str:
        if not self._qdrant.collection_exists(name):
            raise _Refused(404, f"Not found: Collection `{name}` doesn't exist!")
        return name

    # Handlers: each answers the `result` Qdrant would.

    def _version(self, request: Request) -> dict[str, str]:
        return {"title": "qdrant - vector search engine (local emulator)", "version": CLIENT_VERSION}

    def _collections(self, request: Request) -> Any:
        return self._qdrant.get_collections()

    def _exists(self, request: Request, name: str) -> dict[str, bool]:
        return {"exists": self._qdrant.collection_exists(name)}

    def _get_collection(self, request: Request, name: str) -> Any:
        info = self._qdrant.get_collection(self._existing(name))
        indexes = self._indexes.get(name, {})
        schema = {field: {"data_type": "keyword", "params": params, "points": 0} for field, params in indexes.items()}
        return {**info.model_dump(mode="json", exclude_none=True), "payload_schema": schema}

    def _create_collection(self, request: Request, name: str) -> bool:
        body = models.CreateCollection.model_validate(request.get_json(force=True) or {})
        if self._qdrant.collection_exists(name):
            raise _Refused(409, f"Wrong input: Collection `{name}` already exists!")
        self._qdrant.create_collection(name, vectors_config=body.vectors, sparse_vectors_config=body.sparse_vectors)
        return True

    def _delete_collection(self, request: Request, name: str) -> bool:
        self._indexes.pop(name, None)
        return bool(self._qdrant.delete_collection(name))

    def _create_index(self, request: Request, name: str) -> dict[str, Any]:
        body = models.CreateFieldIndex.model_validate(request.get_json(force=True) or {})
        self._existing(name)
        self._indexes.setdefault(name, {})[body.field_name] = _dump(body.field_schema)
        return {"operation_id": 0, "status": "completed"}

    def _upsert(self, request: Request, name: str) -> Any:
        body = _parse(request.get_json(force=True), models.PointsList, models.PointsBatch)
        if isinstance(body, models.PointsList):
            return self._qdrant.upsert(self._existing(name), points=body.points)
        return self._qdrant.upsert(self._existing(name), points=body.batch)

    def _retrieve(self, request: Request, name: str) -> Any:
        body = models.PointRequest.model_validate(request.get_json(force=True))
        return self._qdrant.retrieve(
            self._existing(name),
            ids=body.ids,
            with_payload=body.with_payload if body.with_payload is not None else True,
            with_vectors=body.with_vector or False,
        )

    def _delete(self, request: Request, name: str) -> Any:
        selector = _parse(request.get_json(force=True), models.FilterSelector, models.PointIdsList)
        return self._qdrant.delete(self._existing(name), points_selector=selector)

    def _run_query(self, name: str, body: models.QueryRequest) -> models.QueryResponse:
        return self._qdrant.query_points(
            self._existing(name),
            query=body.query,  # type: ignore[arg-type]
            using=body.using,
            prefetch=body.prefetch,
            query_filter=body.filter,
            search_params=body.params,
            limit=body.limit or 10,
            offset=body.offset,
            score_threshold=body.score_threshold,
            with_payload=body.with_payload if body.with_payload is not None else False,
            with_vectors=body.with_vector or False,
        )

    def _query(self, request: Request, name: str) -> Any:
        return self._run_query(name, models.QueryRequest.model_validate(request.get_json(force=True) or {}))

    def _query_batch(self, request: Request, name: str) -> Any:
        body = models.QueryRequestBatch.model_validate(request.get_json(force=True) or {})
        return [self._run_query(name, search) for search in body.searches]

    def _count(self, request: Request, name: str) -> Any:
        body = models.CountRequest.model_validate(request.get_json(force=True) or {})
        return self._qdrant.count(self._existing(name), count_filter=body.filter, exact=True)

    def _scroll(self, request: Request, name: str) -> dict[str, Any]:
        body = models.ScrollRequest.model_validate(request.get_json(force=True) or {})
        points, offset = self._qdrant.scroll(
            self._existing(name),
            scroll_filter=body.filter,
            limit=body.limit or 10,
            offset=body.offset,
            with_payload=body.with_payload if body.with_payload is not None else True,
            with_vectors=body.with_vector or False,
        )
        return {"points": _dump(points), "next_page_offset": offset}


def _parse(data: Any, *choices: type[BaseModel]) -> Any:
    """The first of the request's alternative shapes that the body is."""
    errors: list[ValidationError] = []
    for choice in choices:
        try:
            return choice.model_validate(data)
        except ValidationError as error:
            errors.append(error)
    raise errors[0]


def _json(data: Any, status: int) -> Response:
    return Response(json.dumps(data, separators=(",", ":")), status=status, mimetype="application/json")


def create_app(path: Path | None = None, api_key: str | None = None) -> QdrantServer:
    return QdrantServer(path, api_key)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Qdrant's REST API over qdrant-client local mode, on 127.0.0.1")
    parser.add_argument("--port", type=int, default=6333)
    parser.add_argument("--path", type=Path, help="where the data is kept (default: in memory)")
    parser.add_argument("--api-key", help="require this api-key header, as Qdrant with an API key does")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s qdrant_server %(message)s")
    if args.path:
        args.path.mkdir(parents=True, exist_ok=True)
    app = create_app(args.path, args.api_key)
    serve(app, args.port, "the Qdrant REST emulator")


if __name__ == "__main__":
    main()
