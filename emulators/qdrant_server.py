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
_SHARD = "~tenant~"
TENANT_FIELD = "tenant_id"


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
        # Qdrant keeps an is_tenant field's points together; local mode filters every point in
        # Python, so each tenant's points live in a local collection of their own ("shard").
        self._shards: dict[str, dict[str, str]] = {}  # collection -> tenant -> shard
        for existing in self._qdrant.get_collections().collections:
            base, marker, tenant = existing.name.partition(_SHARD)
            if marker:
                self._shards.setdefault(base, {})[tenant] = existing.name
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
        listed = self._qdrant.get_collections()
        return models.CollectionsResponse(collections=[c for c in listed.collections if _SHARD not in c.name])

    def _exists(self, request: Request, name: str) -> dict[str, bool]:
        return {"exists": _SHARD not in name and self._qdrant.collection_exists(name)}

    def _get_collection(self, request: Request, name: str) -> Any:
        info = self._qdrant.get_collection(self._existing(name))
        points = sum(self._qdrant.count(part, exact=True).count for part in self._parts(name))
        indexes = self._indexes.get(name, {})
        schema = {field: {"data_type": "keyword", "params": params, "points": 0} for field, params in indexes.items()}
        dumped = info.model_dump(mode="json", exclude_none=True)
        return {**dumped, "points_count": points, "indexed_vectors_count": points, "payload_schema": schema}

    def _create_collection(self, request: Request, name: str) -> bool:
        body = models.CreateCollection.model_validate(request.get_json(force=True) or {})
        if _SHARD in name:
            raise _Refused(400, f"Wrong input: collection names may not contain {_SHARD}")
        if self._qdrant.collection_exists(name):
            raise _Refused(409, f"Wrong input: Collection `{name}` already exists!")
        self._qdrant.create_collection(name, vectors_config=body.vectors, sparse_vectors_config=body.sparse_vectors)
        return True

    def _delete_collection(self, request: Request, name: str) -> bool:
        self._indexes.pop(name, None)
        for shard in self._shards.pop(name, {}).values():
            self._qdrant.delete_collection(shard)
        return bool(self._qdrant.delete_collection(name))

    def _create_index(self, request: Request, name: str) -> dict[str, Any]:
        body = models.CreateFieldIndex.model_validate(request.get_json(force=True) or {})
        self._existing(name)
        self._indexes.setdefault(name, {})[body.field_name] = _dump(body.field_schema)
        return {"operation_id": 0, "status": "completed"}

    # Shards: the collection itself holds the points without a tenant.

    def _parts(self, name: str) -> list[str]:
        return [name, *self._shards.get(name, {}).values()]

    def _shard(self, name: str, tenant: str) -> str:
        shards = self._shards.setdefault(name, {})
        if tenant not in shards:
            shard = f"{name}{_SHARD}{re.sub(r'[^0-9A-Za-z_-]', '_', tenant)}"
            params = self._qdrant.get_collection(name).config.params
            if not self._qdrant.collection_exists(shard):
                self._qdrant.create_collection(
                    shard, vectors_config=params.vectors, sparse_vectors_config=params.sparse_vectors
                )
            shards[tenant] = shard
        return shards[tenant]

    def _parts_for(self, name: str, query_filter: models.Filter | None) -> list[str]:
        """The one shard a filter on the tenant can match, else every part."""
        tenant = _tenant_of(query_filter)
        if tenant is None:
            return self._parts(self._existing(name))
        self._existing(name)
        shard = self._shards.get(name, {}).get(tenant)
        return [shard] if shard else []

    # Handlers: each answers the `result` Qdrant would.

    def _upsert(self, request: Request, name: str) -> Any:
        body = _parse(request.get_json(force=True), models.PointsList, models.PointsBatch)
        points = body.points if isinstance(body, models.PointsList) else _batch_points(body.batch)
        self._existing(name)
        by_part: dict[str, list[models.PointStruct]] = {}
        for point in points:
            tenant = (point.payload or {}).get(TENANT_FIELD)
            part = self._shard(name, str(tenant)) if tenant is not None else name
            by_part.setdefault(part, []).append(point)
        result = models.UpdateResult(operation_id=0, status=models.UpdateStatus.COMPLETED)
        for part, grouped in by_part.items():
            result = self._qdrant.upsert(part, points=grouped)
        return result

    def _retrieve(self, request: Request, name: str) -> Any:
        body = models.PointRequest.model_validate(request.get_json(force=True))
        found = []
        for part in self._parts(self._existing(name)):
            found += self._qdrant.retrieve(
                part,
                ids=body.ids,
                with_payload=body.with_payload if body.with_payload is not None else True,
                with_vectors=body.with_vector or False,
            )
        return found

    def _delete(self, request: Request, name: str) -> Any:
        selector = _parse(request.get_json(force=True), models.FilterSelector, models.PointIdsList)
        parts = self._parts_for(name, selector.filter if isinstance(selector, models.FilterSelector) else None)
        result = models.UpdateResult(operation_id=0, status=models.UpdateStatus.COMPLETED)
        for part in parts:
            result = self._qdrant.delete(part, points_selector=selector)
        return result

    def _run_query(self, name: str, body: models.QueryRequest) -> dict[str, Any]:
        limit, offset = body.limit or 10, body.offset or 0
        points: list[models.ScoredPoint] = []
        for part in self._parts_for(name, body.filter):
            points += self._qdrant.query_points(
                part,
                query=body.query,  # type: ignore[arg-type]
                using=body.using,
                prefetch=body.prefetch,
                query_filter=body.filter,
                search_params=body.params,
                limit=limit + offset,
                score_threshold=body.score_threshold,
                with_payload=body.with_payload if body.with_payload is not None else False,
                with_vectors=body.with_vector or False,
            ).points
        points.sort(key=lambda point: -point.score)
        return {"points": _dump(points[offset : offset + limit])}

    def _query(self, request: Request, name: str) -> Any:
        return self._run_query(name, models.QueryRequest.model_validate(request.get_json(force=True) or {}))

    def _query_batch(self, request: Request, name: str) -> Any:
        body = models.QueryRequestBatch.model_validate(request.get_json(force=True) or {})
        return [self._run_query(name, search) for search in body.searches]

    def _count(self, request: Request, name: str) -> Any:
        body = models.CountRequest.model_validate(request.get_json(force=True) or {})
        total = sum(
            self._qdrant.count(part, count_filter=body.filter, exact=True).count
            for part in self._parts_for(name, body.filter)
        )
        return models.CountResult(count=total)

    def _scroll(self, request: Request, name: str) -> dict[str, Any]:
        """Pages in point-id order across the parts, as Qdrant pages by id."""
        body = models.ScrollRequest.model_validate(request.get_json(force=True) or {})
        limit = body.limit or 10
        points: list[models.Record] = []
        for part in self._parts_for(name, body.filter):
            found, _ = self._qdrant.scroll(
                part,
                scroll_filter=body.filter,
                limit=limit + 1,
                offset=body.offset,
                with_payload=body.with_payload if body.with_payload is not None else True,
                with_vectors=body.with_vector or False,
            )
            points += found
        points.sort(key=_id_order)
        following = points[limit].id if len(points) > limit else None
        return {"points": _dump(points[:limit]), "next_page_offset": following}


def _id_order(point: models.Record) -> tuple[bool, int | str]:
    """Qdrant's order of point ids: numbers first, by value, then UUIDs."""
    return (isinstance(point.id, str), point.id if isinstance(point.id, int) else str(point.id))


def _tenant_of(query_filter: models.Filter | None) -> str | None:
    """The tenant a filter requires (a `must` match on tenant_id), if it requires one."""
    if query_filter is None or not query_filter.must:
        return None
    conditions = query_filter.must if isinstance(query_filter.must, list) else [query_filter.must]
    for condition in conditions:
        if (
            isinstance(condition, models.FieldCondition)
            and condition.key == TENANT_FIELD
            and isinstance(condition.match, models.MatchValue)
        ):
            return str(condition.match.value)
    return None


def _batch_points(batch: models.Batch) -> list[models.PointStruct]:
    count = len(batch.ids)
    vectors: Any = batch.vectors
    payloads = batch.payloads or [None] * count
    if isinstance(vectors, dict):
        per_point = [{key: values[i] for key, values in vectors.items()} for i in range(count)]
    else:
        per_point = list(vectors)
    return [models.PointStruct(id=batch.ids[i], vector=per_point[i], payload=payloads[i]) for i in range(count)]


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
