"""Knowledge vectors in Qdrant: one collection per embedding model and dimension.

Tenants share a collection and are kept apart by the `tenant_id` payload, indexed with
`is_tenant` so Qdrant lays each tenant's points out together. Every search is filtered by
tenant and by knowledge base here, in the one function that searches, so no caller can
forget to. A document's points have ids derived from (object, chunk number): re-ingesting
deletes the object's points first, so a shorter new version leaves nothing behind.
"""

from __future__ import annotations

import re
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from shared.cloud.settings import settings

DENSE = "dense"
SPARSE = "terms"
_POINT_NAMESPACE = uuid.UUID("6f1c2b7e-3d44-4c1e-9a53-2f0d8c7a9b10")
_UPSERT_BATCH = 128
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class StoredChunk:
    text: str
    location: str
    heading: str | None
    vector: Sequence[float]


@dataclass(frozen=True, slots=True)
class Hit:
    text: str
    score: float
    document_id: str
    knowledge_base_id: str
    file_name: str
    location: str
    heading: str | None

    @property
    def source(self) -> str:
        return " · ".join(part for part in (self.file_name, self.location, self.heading) if part)


@cache
def client() -> QdrantClient:
    config = settings()
    key = config.qdrant_api_key.get_secret_value() if config.qdrant_api_key else None
    return QdrantClient(url=config.qdrant_url, api_key=key, timeout=30, prefer_grpc=False)


def collection_name(model: str, dimension: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    return f"knowledge_{slug}_{dimension}"


def point_id(object_name: str, chunk_index: int) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{object_name}#{chunk_index}"))


def sparse_terms(text: str) -> models.SparseVector:
    """Term counts keyed by a hash of the word; Qdrant's IDF modifier weighs them (BM25-like)."""
    weights: dict[int, float] = {}
    for word in _WORD.findall(text):
        index = zlib.crc32(word.casefold().encode())
        weights[index] = weights.get(index, 0.0) + 1.0
    indices = sorted(weights)
    return models.SparseVector(indices=indices, values=[weights[i] for i in indices])


def ensure_collection(model: str, dimension: int) -> str:
    """Create the model's collection and its payload indexes if they are not there yet."""
    name = collection_name(model, dimension)
    qdrant = client()
    if qdrant.collection_exists(name):
        return name
    try:
        qdrant.create_collection(
            name,
            vectors_config={DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
    except UnexpectedResponse as error:
        if error.status_code != 409:  # another instance created it first
            raise
    qdrant.create_payload_index(
        name, "tenant_id", models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
    )
    for field in ("knowledge_base_id", "object_name"):
        qdrant.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
    return name


def _object_filter(tenant_id: uuid.UUID, object_name: str) -> models.Filter:
    return models.Filter(
        must=[
            models.FieldCondition(key="tenant_id", match=models.MatchValue(value=str(tenant_id))),
            models.FieldCondition(key="object_name", match=models.MatchValue(value=object_name)),
        ]
    )


def _knowledge_collections() -> list[str]:
    return [c.name for c in client().get_collections().collections if c.name.startswith("knowledge_")]


def replace_object(
    *,
    model: str,
    tenant_id: uuid.UUID,
    knowledge_base_id: uuid.UUID,
    document_id: uuid.UUID,
    object_name: str,
    file_name: str,
    chunks: Sequence[StoredChunk],
) -> None:
    """The object's points become exactly `chunks`, in every collection (a model change included)."""
    delete_object(tenant_id, object_name)
    if not chunks:
        return
    name = ensure_collection(model, len(chunks[0].vector))
    points = [
        models.PointStruct(
            id=point_id(object_name, index),
            vector={DENSE: list(chunk.vector), SPARSE: sparse_terms(chunk.text)},
            payload={
                "tenant_id": str(tenant_id),
                "knowledge_base_id": str(knowledge_base_id),
                "document_id": str(document_id),
                "object_name": object_name,
                "file_name": file_name,
                "chunk": index,
                "location": chunk.location,
                "heading": chunk.heading,
                "text": chunk.text,
            },
        )
        for index, chunk in enumerate(chunks)
    ]
    for start in range(0, len(points), _UPSERT_BATCH):
        client().upsert(name, points[start : start + _UPSERT_BATCH], wait=True)


def delete_object(tenant_id: uuid.UUID, object_name: str) -> None:
    for name in _knowledge_collections():
        client().delete(name, models.FilterSelector(filter=_object_filter(tenant_id, object_name)), wait=True)


def count_object(tenant_id: uuid.UUID, object_name: str) -> int:
    qdrant = client()
    return sum(
        qdrant.count(name, count_filter=_object_filter(tenant_id, object_name), exact=True).count
        for name in _knowledge_collections()
    )


def search(
    *,
    model: str,
    tenant_id: uuid.UUID,
    knowledge_base_ids: Sequence[uuid.UUID],
    vector: Sequence[float],
    text: str,
    limit: int,
    min_score: float,
    hybrid: bool = False,
) -> list[Hit]:
    """The tenant's best passages from the given knowledge bases, best first, above min_score."""
    if not knowledge_base_ids:
        return []
    name = collection_name(model, len(vector))
    qdrant = client()
    if not qdrant.collection_exists(name):
        return []
    only_these = models.Filter(
        must=[
            models.FieldCondition(key="tenant_id", match=models.MatchValue(value=str(tenant_id))),
            models.FieldCondition(
                key="knowledge_base_id", match=models.MatchAny(any=[str(kb) for kb in knowledge_base_ids])
            ),
        ]
    )
    if hybrid:
        dense = qdrant.query_points(
            name, query=list(vector), using=DENSE, query_filter=only_these, limit=limit * 4, with_payload=False
        ).points
        passing = {point.id for point in dense if point.score >= min_score}
        fused = qdrant.query_points(
            name,
            prefetch=[
                models.Prefetch(query=list(vector), using=DENSE, filter=only_these, limit=limit * 4),
                models.Prefetch(query=sparse_terms(text), using=SPARSE, filter=only_these, limit=limit * 4),
            ],
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            limit=limit * 2,
            with_payload=True,
        ).points
        scores = {point.id: point.score for point in dense}
        points = [point for point in fused if point.id in passing][:limit]
        return [_hit(point.payload or {}, scores[point.id]) for point in points]
    found = qdrant.query_points(
        name,
        query=list(vector),
        using=DENSE,
        query_filter=only_these,
        limit=limit,
        score_threshold=min_score,
        with_payload=True,
    ).points
    return [_hit(point.payload or {}, point.score) for point in found]


def _hit(payload: dict[str, object], score: float) -> Hit:
    heading = payload.get("heading")
    return Hit(
        text=str(payload.get("text", "")),
        score=score,
        document_id=str(payload.get("document_id", "")),
        knowledge_base_id=str(payload.get("knowledge_base_id", "")),
        file_name=str(payload.get("file_name", "")),
        location=str(payload.get("location", "")),
        heading=str(heading) if heading else None,
    )
