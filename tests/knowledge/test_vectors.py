"""Knowledge vectors through the real qdrant-client, against the local Qdrant REST server
(emulators/qdrant_server.py), as every function reaches Qdrant: isolation by tenant and
knowledge base from the attacker's side, replacement on re-upload, nothing left by a delete."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from emulators.qdrant_server import create_app
from shared.cloud.settings import settings
from shared.knowledge import vectors

MODEL = "test-model"


def unit(*values: float) -> list[float]:
    return [*values, *([0.0] * (8 - len(values)))]


@pytest.fixture
def qdrant_url(serve_wsgi: Callable[[Any], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = serve_wsgi(create_app(tmp_path / "qdrant"))
    monkeypatch.setenv("QDRANT_URL", url)
    settings.cache_clear()
    vectors.client.cache_clear()
    yield url
    settings.cache_clear()
    vectors.client.cache_clear()


def store(tenant: uuid.UUID, kb: uuid.UUID, name: str, texts: list[tuple[str, list[float]]]) -> str:
    object_name = f"tenants/{tenant}/knowledge/{kb}/{name}"
    vectors.replace_object(
        model=MODEL,
        tenant_id=tenant,
        knowledge_base_id=kb,
        document_id=uuid.uuid4(),
        object_name=object_name,
        file_name=name,
        chunks=[vectors.StoredChunk(text, "sheet Prices", None, vector) for text, vector in texts],
    )
    return object_name


def search(tenant: uuid.UUID, kbs: list[uuid.UUID], vector: list[float], **kwargs: Any) -> list[vectors.Hit]:
    return vectors.search(
        model=MODEL,
        tenant_id=tenant,
        knowledge_base_ids=kbs,
        vector=vector,
        text="wash and iron",
        limit=5,
        min_score=0.1,
        **kwargs,
    )


@pytest.mark.parametrize("hybrid", [False, True])
def test_identical_text_in_two_tenants_never_crosses(qdrant_url: str, hybrid: bool) -> None:
    (a, kb_a), (b, kb_b) = (uuid.uuid4(), uuid.uuid4()), (uuid.uuid4(), uuid.uuid4())
    row = "Service: Wash and iron | Price (Rp): 9.500"
    store(a, kb_a, "prices.xlsx", [(row, unit(1, 0.1))])
    store(b, kb_b, "prices.xlsx", [(row, unit(1, 0.1))])
    [own] = search(a, [kb_a], unit(1), hybrid=hybrid)
    assert own.knowledge_base_id == str(kb_a)
    assert own.source == "prices.xlsx · sheet Prices"
    # B's knowledge base id forged into A's request finds nothing of B's.
    forged = search(a, [kb_a, kb_b], unit(1), hybrid=hybrid)
    assert [hit.knowledge_base_id for hit in forged] == [str(kb_a)]
    assert search(a, [kb_b], unit(1), hybrid=hybrid) == []
    assert search(a, [], unit(1), hybrid=hybrid) == []


def test_only_the_outlets_knowledge_bases_are_searched(qdrant_url: str) -> None:
    tenant, menu, laundry = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    store(tenant, menu, "menu.docx", [("Kopi susu: Rp 28.000", unit(1))])
    store(tenant, laundry, "laundry.xlsx", [("Wash and iron: Rp 9.500", unit(1))])
    assert [h.file_name for h in search(tenant, [menu], unit(1))] == ["menu.docx"]
    assert sorted(h.file_name for h in search(tenant, [menu, laundry], unit(1))) == ["laundry.xlsx", "menu.docx"]


def test_below_the_minimum_score_is_not_evidence(qdrant_url: str) -> None:
    tenant, kb = uuid.uuid4(), uuid.uuid4()
    store(tenant, kb, "a.txt", [("close", unit(1, 0.05)), ("far", unit(0, 1))])
    assert [hit.text for hit in search(tenant, [kb], unit(1))] == ["close"]


def test_a_re_upload_replaces_the_chunks_and_a_delete_leaves_no_vector(qdrant_url: str) -> None:
    tenant, kb = uuid.uuid4(), uuid.uuid4()
    long_version = [(f"row {n}", unit(1, n / 10)) for n in range(12)]
    name = store(tenant, kb, "rates.xlsx", long_version)
    assert vectors.count_object(tenant, name) == 12
    store(tenant, kb, "rates.xlsx", [("row new", unit(1))])
    assert vectors.count_object(tenant, name) == 1
    assert [hit.text for hit in search(tenant, [kb], unit(1))] == ["row new"]
    other = store(tenant, kb, "other.xlsx", [("keep me", unit(1))])
    vectors.delete_object(tenant, name)
    assert vectors.count_object(tenant, name) == 0
    assert vectors.count_object(tenant, other) == 1  # a delete touches its own object only


def test_point_ids_are_derived_from_object_and_chunk() -> None:
    assert vectors.point_id("tenants/t/knowledge/k/a.pdf", 0) == vectors.point_id("tenants/t/knowledge/k/a.pdf", 0)
    assert vectors.point_id("tenants/t/knowledge/k/a.pdf", 0) != vectors.point_id("tenants/t/knowledge/k/a.pdf", 1)
    assert vectors.collection_name("multilingual-e5-small", 384) == "knowledge_multilingual-e5-small_384"


def test_another_model_gets_its_own_collection_instead_of_a_dimension_error(qdrant_url: str) -> None:
    tenant, kb = uuid.uuid4(), uuid.uuid4()
    name = store(tenant, kb, "a.txt", [("eight dims", unit(1))])
    vectors.replace_object(
        model="other-model",
        tenant_id=tenant,
        knowledge_base_id=kb,
        document_id=uuid.uuid4(),
        object_name=name,
        file_name="a.txt",
        chunks=[vectors.StoredChunk("four dims", "", None, [1.0, 0.0, 0.0, 0.0])],
    )
    # Re-indexing with the new model removed the old model's points of the object.
    assert vectors.count_object(tenant, name) == 1
    hits = vectors.search(
        model="other-model",
        tenant_id=tenant,
        knowledge_base_ids=[kb],
        vector=[1, 0, 0, 0],
        text="x",
        limit=5,
        min_score=0,
    )
    assert [hit.text for hit in hits] == ["four dims"]


def test_the_server_speaks_qdrants_rest_api(serve_wsgi: Callable[[Any], str], tmp_path: Path) -> None:
    client = QdrantClient(url=serve_wsgi(create_app(tmp_path / "q")))
    with pytest.raises(UnexpectedResponse) as missing:
        client.get_collection("nope")
    assert missing.value.status_code == 404
    client.create_collection("c", vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE))
    with pytest.raises(UnexpectedResponse) as twice:
        client.create_collection("c", vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE))
    assert twice.value.status_code == 409
    client.upsert("c", [models.PointStruct(id=n, vector=[1, n], payload={"n": n}) for n in range(25)], wait=True)
    seen, offset = [], None
    while True:
        page, offset = client.scroll("c", limit=10, offset=offset)
        seen += [point.id for point in page]
        if offset is None:
            break
    assert sorted(seen) == list(range(25))
    assert [p.payload for p in client.retrieve("c", [3])] == [{"n": 3}]
    client.delete("c", models.PointIdsList(points=[3]), wait=True)
    assert client.count("c", exact=True).count == 24


def test_an_api_key_is_required_when_set(serve_wsgi: Callable[[Any], str], tmp_path: Path) -> None:
    url = serve_wsgi(create_app(tmp_path / "q", api_key="s3cret"))
    with pytest.raises(UnexpectedResponse) as refused:
        QdrantClient(url=url, check_compatibility=False).get_collections()
    assert refused.value.status_code == 401
    assert QdrantClient(url=url, api_key="s3cret", https=False).get_collections().collections == []


def test_the_store_survives_a_restart_of_the_server(serve_wsgi: Callable[[Any], str], tmp_path: Path) -> None:
    first = create_app(tmp_path / "q")
    client = QdrantClient(url=serve_wsgi(first))
    client.create_collection("c", vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE))
    client.upsert("c", [models.PointStruct(id=1, vector=[1, 0])], wait=True)
    first.close()
    again = QdrantClient(url=serve_wsgi(create_app(tmp_path / "q")))
    assert again.count("c", exact=True).count == 1


def test_each_tenants_points_are_kept_apart_and_the_collection_shows_them_all(
    serve_wsgi: Callable[[Any], str], tmp_path: Path
) -> None:
    """The emulator stores a tenant's points together (as Qdrant does for an is_tenant field),
    so a tenant's search never scans the others'; from outside it is one collection."""
    client = QdrantClient(url=serve_wsgi(create_app(tmp_path / "q")))
    client.create_collection("c", vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE))
    points = [models.PointStruct(id=n, vector=[1, n], payload={"tenant_id": "ab"[n % 2], "n": n}) for n in range(10)]
    client.upsert("c", [*points, models.PointStruct(id=99, vector=[0, 1], payload={"n": 99})], wait=True)

    def of(tenant: str) -> models.Filter:
        return models.Filter(must=[models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant))])

    assert [c.name for c in client.get_collections().collections] == ["c"]
    assert client.get_collection("c").points_count == 11
    assert client.count("c", exact=True).count == 11
    assert client.count("c", count_filter=of("a"), exact=True).count == 5
    found = client.query_points("c", query=[1, 1], query_filter=of("b"), limit=10, with_payload=True).points
    assert sorted(p.payload["n"] for p in found if p.payload) == [1, 3, 5, 7, 9]
    assert client.query_points("c", query=[1, 1], query_filter=of("z"), limit=10).points == []
    assert [p.id for p in client.query_points("c", query=[0, 1], limit=1).points] == [99]  # across every part
    client.delete("c", models.FilterSelector(filter=of("a")), wait=True)
    assert client.count("c", exact=True).count == 6
    client.delete_collection("c")
    assert client.get_collections().collections == []
