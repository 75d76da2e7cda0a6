"""Knowledge through the running stack: uploads by signed URL and by the API, ingest to ready
or failed, the answers customers get from it, re-uploads, deletes, the sweep, isolation in
Qdrant and in Firestore, and the knowledge API's roles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from emulators.seed import DEMO_SETTINGS
from emulators.stack import LocalStack
from shared.assistant.replies import fallback_text
from shared.conversations.handoff import HANDOFF_NOTICE
from shared.db.models import Document, KnowledgeBase, Message
from shared.db.tenancy import tenant_session
from shared.knowledge import ingest, retrieval, vectors
from shared.knowledge.embeddings import embedder
from tests.pipeline.driver import Meta, id_token, new_customer, wait_for
from tests.pipeline.knowledge import Admin, conversation_of, price_list, reply_to


def test_a_price_list_uploaded_by_signed_url_is_ready_with_its_rows(admin: Admin, laundry_kb: str) -> None:
    [document] = admin.documents(laundry_kb)
    assert (document["status"], document["rows"], document["error"]) == ("ready", 3, None)
    assert document["chunk_count"] >= 1


def test_a_question_in_indonesian_gets_the_english_price_list_price(meta: Meta, laundry_kb: str) -> None:
    reply = reply_to(meta, "berapa harga cuci setrika per kg?")
    assert "9.500" in reply
    assert any(word in reply.lower() for word in ("harga", "rp", "per kg"))


def test_an_unanswerable_question_gets_the_honest_fallback_and_three_hand_off(
    meta: Meta, stack: LocalStack, laundry_kb: str
) -> None:
    customer = new_customer()
    questions = ["Do you sell car tyres?", "Can you repair my motorbike engine?", "Do you offer flights to Singapore?"]
    replies = [reply_to(meta, question, customer) for question in questions]
    assert replies == [fallback_text(DEMO_SETTINGS, "en")] * 3
    # The third low-confidence answer hands off at once: the handoff notice follows it.
    sends = wait_for(lambda: (s := meta.sends_to(customer))[3:] and s, timeout=30)
    assert sends[3]["body"]["text"]["body"] == HANDOFF_NOTICE["en"]
    conversation = conversation_of(stack, customer)
    assert (conversation.status, conversation.handoff_reason) == ("handed_off", "low_confidence")
    with tenant_session(uuid.UUID(stack.info["demo"]["tenant_id"])) as session:
        flagged = session.scalars(
            select(Message.payload).where(Message.conversation_id == conversation.id, Message.sender_type == "llm")
        ).all()
        assert len(flagged) == 3
        assert all(payload["low_confidence"] in ("no_passages", "not_in_documents") for payload in flagged)


def test_a_re_upload_replaces_the_chunks_and_a_delete_leaves_no_vector(admin: Admin, stack: LocalStack) -> None:
    tenant_id = uuid.UUID(stack.info["demo"]["tenant_id"])
    kb = admin.new_knowledge_base(f"Replace {uuid.uuid4().hex[:6]}")
    long_rows = [(f"Service {n}", "per kg", f"{n}.000") for n in range(1, 120)]
    name = admin.upload_signed(kb, "rates.xlsx", price_list(long_rows))
    [first] = admin.settled(kb, "rates.xlsx")
    assert first["status"] == "ready"
    assert first["chunk_count"] > 2
    assert vectors.count_object(tenant_id, name) == first["chunk_count"]

    admin.upload_signed(kb, "rates.xlsx", price_list([("Express wash", "per kg", "15.000")]))

    def replaced() -> list[dict[str, Any]] | None:
        documents = admin.documents(kb)
        return (
            documents if [d["id"] for d in documents] != [first["id"]] and documents[0]["status"] == "ready" else None
        )

    [second] = wait_for(replaced, timeout=90, interval=0.5)  # the old version's row is gone too
    assert second["chunk_count"] == 1
    assert vectors.count_object(tenant_id, name) == 1

    answer = admin.call("DELETE", f"/knowledge-bases/{kb}/documents/{second['id']}")
    assert answer.status_code == 200, answer.text
    assert vectors.count_object(tenant_id, name) == 0
    assert admin.documents(kb) == []
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project=stack.info["project"], credentials=AnonymousCredentials())
    assert not client.bucket(stack.info["documents_bucket"]).blob(name).exists()


def test_a_file_whose_content_is_not_its_extension_fails_with_the_reason(admin: Admin) -> None:
    kb = admin.new_knowledge_base(f"Bad files {uuid.uuid4().hex[:6]}")
    answer = admin.upload_multipart(kb, "menu.pdf", b"just some text, not a PDF\n", "application/pdf")
    assert answer.status_code == 202, answer.text
    [document] = admin.settled(kb, "menu.pdf")
    assert document["status"] == "failed"
    assert "pdf" in document["error"].lower()


def test_an_event_redelivered_after_success_changes_nothing(stack: LocalStack, laundry_kb: str) -> None:
    tenant_id = uuid.UUID(stack.info["demo"]["tenant_id"])
    with tenant_session(tenant_id) as session:
        document = session.scalars(select(Document).where(Document.knowledge_base_id == uuid.UUID(laundry_kb))).one()
        before = (document.status, document.attempts, document.updated_at, document.chunk_count)
        event = {"tenant_id": str(tenant_id), "document_id": str(document.id)}
    assert ingest.ingest(event).status == "duplicate"
    with tenant_session(tenant_id) as session:
        document = session.get_one(Document, document.id)
        assert (document.status, document.attempts, document.updated_at, document.chunk_count) == before


def test_the_sweep_fails_what_is_stuck_past_its_deadline(admin: Admin, stack: LocalStack) -> None:
    tenant_id = uuid.UUID(stack.info["demo"]["tenant_id"])
    kb = admin.new_knowledge_base(f"Stuck {uuid.uuid4().hex[:6]}")
    with tenant_session(tenant_id) as session:
        stuck = Document(
            tenant_id=tenant_id,
            knowledge_base_id=uuid.UUID(kb),
            bucket=stack.info["documents_bucket"],
            object_name=f"tenants/{tenant_id}/knowledge/{kb}/stuck.pdf",
            generation=1,
            content_type="application/pdf",
            file_name="stuck.pdf",
            size_bytes=10,
            status="processing",
            attempts=1,
            processing_deadline=datetime.now(UTC) - timedelta(minutes=1),
        )
        session.add(stuck)
        session.flush()
        stuck_id = stuck.id
    answer = requests.post(stack.info["functions"]["document-sweep"], timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["failed"] >= 1
    [document] = admin.documents(kb)
    assert document["id"] == str(stuck_id)
    assert document["status"] == "failed"
    assert "did not finish in time" in document["error"]


def test_a_search_of_one_tenant_never_returns_anothers_chunk(stack: LocalStack, tmp_path: Path) -> None:
    """Identical text in two tenants; A's search, even with B's knowledge base id forged in."""
    from shared.db import platform

    ids = []
    for name in ("Laundry A", "Laundry B"):
        tenant_id = platform.create_tenant(name, f"laundry-{uuid.uuid4().hex[:8]}")
        with tenant_session(tenant_id) as session:
            kb = KnowledgeBase(tenant_id=tenant_id, name="Prices")
            session.add(kb)
            session.flush()
            ids.append((tenant_id, kb.id))
        text = f"[prices.xlsx · sheet Prices]\nService: Wash and iron | Price (Rp): 9.500 | Owner: {name}"
        vectors.replace_object(
            model=embedder().model,
            tenant_id=tenant_id,
            knowledge_base_id=kb.id,
            document_id=uuid.uuid4(),
            object_name=f"tenants/{tenant_id}/knowledge/{kb.id}/prices.xlsx",
            file_name="prices.xlsx",
            chunks=[vectors.StoredChunk(text, "sheet Prices", None, embedder().passages([text])[0])],
        )
    (tenant_a, kb_a), (_, kb_b) = ids
    own = retrieval.search(tenant_a, [kb_a], "wash and iron price")
    assert [hit.text.rsplit(": ", 1)[-1] for hit in own] == ["Laundry A"]
    forged = retrieval.search(tenant_a, [kb_a, kb_b], "wash and iron price")
    assert [hit.text.rsplit(": ", 1)[-1] for hit in forged] == ["Laundry A"]
    assert retrieval.search(tenant_a, [kb_b], "wash and iron price") == []


def test_the_document_status_mirror_is_readable_by_its_tenant_only(stack: LocalStack, laundry_kb: str) -> None:
    from tests.test_dashboard import read

    tenant_id = stack.info["demo"]["tenant_id"]
    with tenant_session(uuid.UUID(tenant_id)) as session:
        document_id = session.scalars(
            select(Document.id).where(Document.knowledge_base_id == uuid.UUID(laundry_kb))
        ).one()
    path = ingest.document_path(tenant_id, document_id)
    viewer = read(stack, path, id_token(stack, "viewer@kopinusantara.test"))
    assert viewer.status_code == 200, viewer.text
    assert viewer.json()["fields"]["status"]["stringValue"] == "ready"
    other = ingest.document_path(uuid.uuid4(), document_id)
    assert read(stack, other, id_token(stack, "owner@kopinusantara.test")).status_code == 403
    assert read(stack, path, None).status_code == 403


def test_readers_may_not_write_and_other_tenants_ids_are_not_found(stack: LocalStack, laundry_kb: str) -> None:
    viewer = Admin(stack, "viewer@kopinusantara.test")
    agent = Admin(stack, "agent@kopinusantara.test")
    for reader in (viewer, agent):
        assert reader.call("GET", f"/knowledge-bases/{laundry_kb}").status_code == 200
        assert reader.call("POST", "/knowledge-bases", json={"name": "x"}).status_code == 403
        assert reader.call("DELETE", f"/knowledge-bases/{laundry_kb}").status_code == 403
        assert reader.call("POST", f"/knowledge-bases/{laundry_kb}/upload-url", json={}).status_code == 403
    admin = Admin(stack)
    assert admin.call("GET", f"/knowledge-bases/{uuid.uuid4()}").status_code == 404
    too_big = admin.call(
        "POST",
        f"/knowledge-bases/{laundry_kb}/upload-url",
        json={"file_name": "huge.pdf", "content_type": "application/pdf", "size_bytes": 60 * 1024 * 1024},
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "file_too_large"
    assert "50 MB" in too_big.json()["error"]["message"]
    wrong_name = admin.call(
        "POST",
        f"/knowledge-bases/{laundry_kb}/upload-url",
        json={"file_name": "../escape.pdf", "content_type": "application/pdf", "size_bytes": 10},
    )
    assert wrong_name.status_code == 400


def test_a_document_indexed_with_another_model_is_re_indexed_by_the_sweep(admin: Admin, stack: LocalStack) -> None:
    """Changing EMBEDDING_MODEL re-indexes instead of failing with a dimension mismatch."""
    tenant_id = uuid.UUID(stack.info["demo"]["tenant_id"])
    kb = admin.new_knowledge_base(f"Model change {uuid.uuid4().hex[:6]}")
    name = admin.upload_signed(kb, "old-model.xlsx", price_list([("Steam press", "per piece", "8.000")]))
    [document] = admin.settled(kb, "old-model.xlsx")
    with tenant_session(tenant_id) as session:
        row = session.get_one(Document, uuid.UUID(document["id"]))
        row.embedding_model = "an-older-model"
    answer = requests.post(stack.info["functions"]["document-sweep"], timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["reindexed"] >= 1

    def reindexed() -> Document | None:
        with tenant_session(tenant_id) as session:
            again = session.get_one(Document, uuid.UUID(document["id"]))
            return again if again.status == "ready" and again.embedding_model == embedder().model else None

    again = wait_for(reindexed, timeout=90, interval=0.5)
    assert again.attempts == 1
    assert vectors.count_object(tenant_id, name) == again.chunk_count == 1
