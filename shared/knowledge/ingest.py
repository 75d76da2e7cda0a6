"""Turning a registered document into searchable chunks, and never leaving it stuck.

One attempt: claim the document (processing, with a deadline), then outside any transaction
download, parse, chunk and embed it, then in one short transaction under the object's lock
replace its vectors and mark it ready. What the file itself makes impossible (corrupt,
encrypted, scanned...) fails at once with the reason; anything else (the embeddings server,
Qdrant, a crash) is retried by Pub/Sub, at most `ingest_max_attempts` times, then failed.
The sweep fails whatever is still processing past its deadline. An event delivered again
after success changes nothing, unless the configured embedding model changed since: then
the document is indexed again with the new one.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.api_core import exceptions as google_errors
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from shared.cloud import firestore, logs, pubsub, storage
from shared.cloud.settings import settings
from shared.db import platform
from shared.db.models import Document, KnowledgeBase
from shared.db.tenancy import tenant_session
from shared.knowledge import chunking, documents, parsing, vectors
from shared.knowledge.embeddings import embedder

log = logging.getLogger(__name__)


class IngestRetry(Exception):
    """This attempt did not finish for a reason that may pass: raise so Pub/Sub redelivers."""


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # ready | failed | duplicate | ignored | superseded
    reason: str = ""


@dataclass(frozen=True, slots=True)
class _Claim:
    tenant_id: uuid.UUID
    document_id: uuid.UUID
    knowledge_base_id: uuid.UUID
    bucket: str
    object_name: str
    generation: int
    file_name: str
    chunk_size: int
    chunk_overlap: int
    attempt: int


def _now() -> datetime:
    return datetime.now(UTC)


def document_path(tenant_id: object, document_id: object) -> str:
    return f"tenants/{tenant_id}/documents/{document_id}"


def mirror(document: Document) -> None:
    """The dashboard's copy of the document's state (PostgreSQL stays the record)."""
    firestore.client().document(document_path(document.tenant_id, document.id)).set(
        firestore.as_document(
            {
                "id": str(document.id),
                "tenant_id": str(document.tenant_id),
                "knowledge_base_id": str(document.knowledge_base_id),
                "file_name": document.file_name,
                "status": document.status,
                "error": document.error,
                "chunk_count": document.chunk_count,
                "pages": document.pages,
                "rows": document.rows,
                "size_bytes": document.size_bytes,
                "updated_at": _now(),
            }
        )
    )


def unmirror(tenant_id: uuid.UUID, document_id: uuid.UUID) -> None:
    firestore.client().document(document_path(tenant_id, document_id)).delete()


def ingest(event: dict[str, Any]) -> Outcome:
    """Handle one knowledge.document.uploaded event."""
    try:
        tenant_id, document_id = uuid.UUID(str(event["tenant_id"])), uuid.UUID(str(event["document_id"]))
    except (KeyError, ValueError) as error:
        raise pubsub.MalformedEvent(f"knowledge.document.uploaded without usable ids: {error}") from error
    with logs.tenant_scope(tenant_id):
        claim, outcome = _claim(tenant_id, document_id)
        if claim is None:
            return outcome
        try:
            chunks, pages, rows = _read(claim)
            model = embedder().model
            embedded = embedder().passages([chunk.text for chunk in chunks])
        except parsing.UnreadableDocument as error:
            return _fail(claim, error.reason)
        except google_errors.NotFound:
            return _fail(claim, "the file was deleted before it could be read")
        except Exception as error:
            return _attempt_failed(claim, f"{type(error).__name__} while reading or embedding")
        stored = [
            vectors.StoredChunk(chunk.text, chunk.location, chunk.heading, vector)
            for chunk, vector in zip(chunks, embedded, strict=True)
        ]
        try:
            return _finish(claim, stored, model, pages, rows)
        except IngestRetry:
            raise
        except Exception as error:
            return _attempt_failed(claim, f"{type(error).__name__} while storing the vectors")


def _claim(tenant_id: uuid.UUID, document_id: uuid.UUID) -> tuple[_Claim | None, Outcome]:
    config = settings()
    with tenant_session(tenant_id) as session:
        document = session.get(Document, document_id, with_for_update=True)
        if document is None:
            return None, Outcome("ignored", "the document was deleted")
        if _newer_generation(session, document):
            return None, Outcome("superseded", "a newer upload of this file replaces it")
        if document.status == "failed":
            return None, Outcome("failed", document.error or "")
        if document.status == "ready" and document.embedding_model == embedder().model:
            return None, Outcome("duplicate")
        if document.status == "processing" and document.processing_deadline and document.processing_deadline > _now():
            raise IngestRetry("another attempt is processing this document")
        if document.attempts >= config.ingest_max_attempts:
            _set_failed(document, _gave_up(document.attempts, document.error))
            return None, Outcome("failed", document.error or "")
        knowledge_base = session.get(KnowledgeBase, document.knowledge_base_id)
        if knowledge_base is None:  # cascades make this unreachable, but never guess
            return None, Outcome("ignored", "the knowledge base was deleted")
        document.status = "processing"
        document.attempts += 1
        document.processing_deadline = _now() + timedelta(seconds=config.ingest_deadline_seconds)
        session.flush()
        mirror(document)
        return (
            _Claim(
                tenant_id=tenant_id,
                document_id=document.id,
                knowledge_base_id=document.knowledge_base_id,
                bucket=document.bucket,
                object_name=document.object_name,
                generation=document.generation,
                file_name=document.file_name or document.object_name.rsplit("/", 1)[-1],
                chunk_size=knowledge_base.chunk_size,
                chunk_overlap=knowledge_base.chunk_overlap,
                attempt=document.attempts,
            ),
            Outcome("processing"),
        )


def _read(claim: _Claim) -> tuple[list[chunking.Chunk], int | None, int | None]:
    with tempfile.TemporaryDirectory(prefix="ingest-") as folder:
        path = Path(folder) / "document"
        storage.download(claim.bucket, claim.object_name, claim.generation, path)
        parsed = parsing.parse(path, claim.file_name)
    chunks = chunking.chunk(parsed, claim.file_name, size=claim.chunk_size, overlap=claim.chunk_overlap)
    if not chunks:
        raise parsing.UnreadableDocument("no text found in the file")
    return chunks, parsed.pages, parsed.rows


def _object_lock(session: Session, object_name: str) -> None:
    """Serialises the writers of one object's vectors (two generations finishing at once)."""
    session.execute(text("SELECT pg_advisory_xact_lock(1, :key)"), {"key": zlib.crc32(object_name.encode()) - 2**31})


def _newer_generation(session: Session, document: Document) -> bool:
    return (
        session.scalar(
            select(Document.id)
            .where(
                Document.bucket == document.bucket,
                Document.object_name == document.object_name,
                Document.generation > document.generation,
                Document.status != "failed",
            )
            .limit(1)
        )
        is not None
    )


def _finish(
    claim: _Claim, chunks: list[vectors.StoredChunk], model: str, pages: int | None, rows: int | None
) -> Outcome:
    with tenant_session(claim.tenant_id) as session:
        _object_lock(session, claim.object_name)
        document = session.get(Document, claim.document_id, with_for_update=True)
        if document is None:
            return Outcome("ignored", "the document was deleted while it was processed")
        if document.status != "processing" or document.attempts != claim.attempt:
            raise IngestRetry("a later attempt took this document over")
        if _newer_generation(session, document):
            session.delete(document)
            unmirror(claim.tenant_id, claim.document_id)
            return Outcome("superseded", "a newer upload of this file replaces it")
        vectors.replace_object(
            model=model,
            tenant_id=claim.tenant_id,
            knowledge_base_id=claim.knowledge_base_id,
            document_id=claim.document_id,
            object_name=claim.object_name,
            file_name=claim.file_name,
            chunks=chunks,
        )
        document.status = "ready"
        document.error = None
        document.chunk_count = len(chunks)
        document.pages = pages
        document.rows = rows
        document.embedding_model = model
        document.processing_deadline = None
        document.processed_at = _now()
        knowledge_base = session.get(KnowledgeBase, claim.knowledge_base_id)
        if knowledge_base is not None:
            knowledge_base.embedding_model = model
        older = session.scalars(
            delete(Document)
            .where(
                Document.bucket == claim.bucket,
                Document.object_name == claim.object_name,
                Document.generation < claim.generation,
            )
            .returning(Document.id)
        ).all()
        session.flush()
        mirror(document)
        for older_id in older:
            unmirror(claim.tenant_id, older_id)
    log.info("document ready", extra={"document_id": str(claim.document_id), "chunks": len(chunks)})
    return Outcome("ready")


def _set_failed(document: Document, reason: str) -> None:
    document.status = "failed"
    document.error = reason
    document.processing_deadline = None
    document.processed_at = _now()
    mirror(document)


def _gave_up(attempts: int, last_error: str | None) -> str:
    detail = f" (last: {last_error})" if last_error else ""
    return f"could not be processed after {attempts} attempts{detail}: please upload it again"


def _fail(claim: _Claim, reason: str) -> Outcome:
    with tenant_session(claim.tenant_id) as session:
        document = session.get(Document, claim.document_id, with_for_update=True)
        if document is None or document.attempts != claim.attempt:
            return Outcome("ignored", "the document changed while it was processed")
        _set_failed(document, reason)
    log.info("document failed", extra={"document_id": str(claim.document_id), "reason": reason})
    return Outcome("failed", reason)


def _attempt_failed(claim: _Claim, what: str) -> Outcome:
    """Release the attempt for a retry, or fail the document when none are left."""
    log.warning("ingest attempt failed", extra={"document_id": str(claim.document_id), "error": what})
    with tenant_session(claim.tenant_id) as session:
        document = session.get(Document, claim.document_id, with_for_update=True)
        if document is None or document.attempts != claim.attempt:
            return Outcome("ignored", "the document changed while it was processed")
        document.error = what
        if document.attempts >= settings().ingest_max_attempts:
            _set_failed(document, _gave_up(document.attempts, what))
            return Outcome("failed", document.error or "")
        document.processing_deadline = _now()  # the next delivery may start at once
    raise IngestRetry(what)


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Fail what is still processing past its deadline; re-announce what another model indexed."""
    moment = now or _now()
    failed = reindexed = 0
    model = embedder().model
    for tenant_id in platform.tenant_ids():
        with logs.tenant_scope(tenant_id), tenant_session(tenant_id) as session:
            stuck = session.scalars(
                select(Document)
                .where(Document.status == "processing", Document.processing_deadline < moment)
                .with_for_update(skip_locked=True)
            ).all()
            for document in stuck:
                _set_failed(
                    document,
                    f"processing did not finish in time (attempt {document.attempts}): please upload it again",
                )
                failed += 1
            stale = session.scalars(
                select(Document)
                .where(Document.status == "ready", Document.embedding_model != model)
                .with_for_update(skip_locked=True)
                .limit(100)
            ).all()
            for document in stale:
                document.status = "uploaded"
                document.attempts = 0
                mirror(document)
                documents.announce(document)
                reindexed += 1
    return {"failed": failed, "reindexed": reindexed}
