"""Knowledge bases and their documents as staff manage them: create, change, list, delete.

Deleting is complete: a document's vectors, its object in the bucket and its row go, and
the dashboard's copy with them. Each step finds its part already gone on a retry, so a
delete that failed half-way is finished by the next one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.billing import limits
from shared.cloud import storage
from shared.db.models import Document, KnowledgeBase, Outlet, Tenant
from shared.db.tenancy import tenant_session
from shared.knowledge import documents, ingest, vectors

KNOWLEDGE_BASE_FIELDS = ("name", "description", "language", "chunk_size", "chunk_overlap")


class NotFound(LookupError):
    """Nothing with this id for this tenant (another tenant's ids look exactly like this)."""


class FileTooLarge(Exception):
    """A file over the per-file size limit (tier limits raise billing.limits.LimitReached)."""


@dataclass(frozen=True, slots=True)
class Usage:
    documents: int
    bytes: int


def knowledge_base_view(kb: KnowledgeBase, usage: Usage) -> dict[str, Any]:
    return {
        "id": kb.id,
        "outlet_id": kb.outlet_id,
        "name": kb.name,
        "description": kb.description,
        "language": kb.language,
        "chunk_size": kb.chunk_size,
        "chunk_overlap": kb.chunk_overlap,
        "embedding_model": kb.embedding_model,
        "documents": usage.documents,
        "size_bytes": usage.bytes,
        "created_at": kb.created_at,
        "updated_at": kb.updated_at,
    }


def document_view(document: Document) -> dict[str, Any]:
    return {
        "id": document.id,
        "knowledge_base_id": document.knowledge_base_id,
        "file_name": document.file_name or document.object_name.rsplit("/", 1)[-1],
        "content_type": document.content_type,
        "size_bytes": document.size_bytes,
        "status": document.status,
        "error": document.error,
        "chunk_count": document.chunk_count,
        "pages": document.pages,
        "rows": document.rows,
        "attempts": document.attempts,
        "created_at": document.created_at,
        "processed_at": document.processed_at,
    }


def _usage(session: Session, kb_ids: list[uuid.UUID]) -> dict[uuid.UUID, Usage]:
    rows = session.execute(
        select(Document.knowledge_base_id, func.count(), func.coalesce(func.sum(Document.size_bytes), 0))
        .where(Document.knowledge_base_id.in_(kb_ids))
        .group_by(Document.knowledge_base_id)
    ).all()
    return {kb: Usage(int(count), int(size)) for kb, count, size in rows}


def _knowledge_base(session: Session, kb_id: uuid.UUID) -> KnowledgeBase:
    kb = session.get(KnowledgeBase, kb_id)
    if kb is None:
        raise NotFound("no such knowledge base")
    return kb


def list_knowledge_bases(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    with tenant_session(tenant_id) as session:
        kbs = list(session.scalars(select(KnowledgeBase).order_by(KnowledgeBase.created_at, KnowledgeBase.id)))
        usage = _usage(session, [kb.id for kb in kbs])
        return [knowledge_base_view(kb, usage.get(kb.id, Usage(0, 0))) for kb in kbs]


def get_knowledge_base(tenant_id: uuid.UUID, kb_id: uuid.UUID) -> dict[str, Any]:
    with tenant_session(tenant_id) as session:
        kb = _knowledge_base(session, kb_id)
        return knowledge_base_view(kb, _usage(session, [kb.id]).get(kb.id, Usage(0, 0)))


def create_knowledge_base(tenant_id: uuid.UUID, values: dict[str, Any]) -> dict[str, Any]:
    with tenant_session(tenant_id) as session:
        limits.check_new_knowledge_base(session, session.get_one(Tenant, tenant_id))
        outlet_id = values.get("outlet_id")
        if outlet_id is not None and session.get(Outlet, outlet_id) is None:
            raise NotFound("no such outlet")
        kb = KnowledgeBase(tenant_id=tenant_id, **{k: v for k, v in values.items() if v is not None})
        session.add(kb)
        session.flush()
        session.refresh(kb)
        return knowledge_base_view(kb, Usage(0, 0))


def update_knowledge_base(tenant_id: uuid.UUID, kb_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
    """Change it; new chunk settings re-index its documents (they are announced again)."""
    with tenant_session(tenant_id) as session:
        kb = _knowledge_base(session, kb_id)
        rechunk = any(
            field in changes and changes[field] != getattr(kb, field) for field in ("chunk_size", "chunk_overlap")
        )
        for field, value in changes.items():
            setattr(kb, field, value)
        session.flush()
        if rechunk:
            for document in session.scalars(
                select(Document).where(Document.knowledge_base_id == kb_id, Document.status == "ready")
            ):
                document.status = "uploaded"
                document.attempts = 0
                ingest.mirror(document)
                documents.announce(document)
        session.refresh(kb)
        return knowledge_base_view(kb, _usage(session, [kb.id]).get(kb.id, Usage(0, 0)))


def delete_knowledge_base(tenant_id: uuid.UUID, kb_id: uuid.UUID) -> None:
    with tenant_session(tenant_id) as session:
        kb = _knowledge_base(session, kb_id)
        owned = list(session.scalars(select(Document).where(Document.knowledge_base_id == kb_id)))
        for document in owned:
            _remove_content(document)
        session.delete(kb)  # its documents' rows cascade
    for document in owned:
        ingest.unmirror(tenant_id, document.id)


def list_documents(tenant_id: uuid.UUID, kb_id: uuid.UUID) -> list[dict[str, Any]]:
    with tenant_session(tenant_id) as session:
        _knowledge_base(session, kb_id)
        rows = session.scalars(
            select(Document)
            .where(Document.knowledge_base_id == kb_id)
            .order_by(Document.created_at.desc(), Document.id.desc())
        )
        return [document_view(d) for d in rows]


def get_document(tenant_id: uuid.UUID, kb_id: uuid.UUID, document_id: uuid.UUID) -> dict[str, Any]:
    with tenant_session(tenant_id) as session:
        document = session.get(Document, document_id)
        if document is None or document.knowledge_base_id != kb_id:
            raise NotFound("no such document")
        return document_view(document)


def delete_document(tenant_id: uuid.UUID, kb_id: uuid.UUID, document_id: uuid.UUID) -> None:
    """The document and every other generation of its file: vectors, object and rows."""
    with tenant_session(tenant_id) as session:
        document = session.get(Document, document_id, with_for_update=True)
        if document is None or document.knowledge_base_id != kb_id:
            raise NotFound("no such document")
        _remove_content(document)
        versions = list(
            session.scalars(
                select(Document).where(Document.bucket == document.bucket, Document.object_name == document.object_name)
            )
        )
        for version in versions:
            session.delete(version)
    for version in versions:
        ingest.unmirror(tenant_id, version.id)


def _remove_content(document: Document) -> None:
    vectors.delete_object(document.tenant_id, document.object_name)
    storage.delete(document.bucket, document.object_name)


def object_name(tenant_id: uuid.UUID, kb_id: uuid.UUID, file_name: str) -> str:
    return f"tenants/{tenant_id}/knowledge/{kb_id}/{file_name}"


def prepare_upload(tenant_id: uuid.UUID, kb_id: uuid.UUID, size_bytes: int) -> None:
    """What an upload must pass before it is accepted: the knowledge base and the limits."""
    if size_bytes > documents.MAX_DOCUMENT_BYTES:
        raise FileTooLarge(
            f"the file is {size_bytes / 1048576:.1f} MB; the limit is {documents.MAX_DOCUMENT_MB} MB per file"
        )
    with tenant_session(tenant_id) as session:
        _knowledge_base(session, kb_id)
        limits.check_storage(session, session.get_one(Tenant, tenant_id), size_bytes)
