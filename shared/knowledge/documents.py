"""Registering a document a tenant admin uploaded to the documents bucket.

Objects are named `tenants/{tenant_id}/knowledge/{knowledge_base_id}/{file name}`. The
storage trigger is at-least-once, so a (bucket, object, generation) is registered once;
each new generation (a re-upload) is a new document version. What cannot be ingested is
recorded as failed with the reason instead of disappearing. Parsing and embedding
(shared/knowledge/ingest.py) follow on knowledge.document.uploaded.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from shared.cloud import logs, pubsub
from shared.db.models import Document, KnowledgeBase
from shared.db.tenancy import tenant_session

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
MAX_DOCUMENT_MB = MAX_DOCUMENT_BYTES // (1024 * 1024)
SUPPORTED_TYPES = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/plain": "txt",
    "text/markdown": "md",
    "text/csv": "csv",
}
TYPES_BY_EXTENSION = {extension: content_type for content_type, extension in SUPPORTED_TYPES.items()}
_PATH = re.compile(r"^tenants/(?P<tenant>[0-9a-f-]{36})/knowledge/(?P<kb>[0-9a-f-]{36})/(?P<file>[^/].*)$")


@dataclass(frozen=True, slots=True)
class Registration:
    document_id: uuid.UUID | None
    status: str  # uploaded | failed | duplicate | ignored
    reason: str = ""


def register(object_resource: dict[str, Any]) -> Registration:
    """Handle one object-finalize event's data (the Cloud Storage object resource)."""
    bucket = str(object_resource.get("bucket", ""))
    name = str(object_resource.get("name", ""))
    match = _PATH.match(name)
    if not match:
        log.warning("object outside tenants/<id>/knowledge/<kb>/; ignored", extra={"object": name})
        return Registration(None, "ignored", "object name does not follow tenants/<tenant>/knowledge/<kb>/<file>")
    try:
        tenant_id, kb_id = uuid.UUID(match["tenant"]), uuid.UUID(match["kb"])
    except ValueError:
        return Registration(None, "ignored", "tenant or knowledge base id is not a UUID")
    size = int(object_resource.get("size") or 0)
    content_type = str(object_resource.get("contentType") or "application/octet-stream").split(";")[0].strip()
    if content_type not in SUPPORTED_TYPES:  # e.g. octet-stream from a command-line upload
        content_type = TYPES_BY_EXTENSION.get(match["file"].rsplit(".", 1)[-1].lower(), content_type)
    problem = None
    if size > MAX_DOCUMENT_BYTES:
        problem = f"the file is {size / 1048576:.1f} MB; the limit is {MAX_DOCUMENT_MB} MB per file"
    elif content_type not in SUPPORTED_TYPES:
        problem = f"unsupported content type {content_type}; upload PDF, DOCX, XLSX, TXT, MD or CSV"
    with logs.tenant_scope(tenant_id), tenant_session(tenant_id) as session:
        if session.get(KnowledgeBase, kb_id) is None:
            # Also what another tenant's knowledge base id looks like from here (RLS hides it).
            log.warning("upload for an unknown knowledge base; ignored", extra={"object": name})
            return Registration(None, "ignored", "no such knowledge base for this tenant")
        document_id = session.scalar(
            insert(Document)
            .values(
                tenant_id=tenant_id,
                knowledge_base_id=kb_id,
                bucket=bucket,
                object_name=name,
                generation=int(object_resource.get("generation") or 0),
                content_type=content_type,
                file_name=match["file"],
                size_bytes=size,
                sha256=None,
                status="failed" if problem else "uploaded",
                error=problem,
            )
            .on_conflict_do_nothing(index_elements=[Document.bucket, Document.object_name, Document.generation])
            .returning(Document.id)
        )
        if document_id is None:
            existing = session.scalar(
                select(Document.id).where(
                    Document.bucket == bucket,
                    Document.object_name == name,
                    Document.generation == int(object_resource.get("generation") or 0),
                )
            )
            return Registration(existing, "duplicate")
        if problem is None:
            document = session.get(Document, document_id)
            assert document is not None
            announce(document)
    return Registration(document_id, "failed" if problem else "uploaded", problem or "")


def announce(document: Document) -> None:
    """Publish knowledge.document.uploaded: ingest it (again)."""
    pubsub.publish(
        [
            pubsub.Outgoing(
                pubsub.DOCUMENT_UPLOADED,
                {
                    "tenant_id": str(document.tenant_id),
                    "knowledge_base_id": str(document.knowledge_base_id),
                    "document_id": str(document.id),
                    "bucket": document.bucket,
                    "object_name": document.object_name,
                    "generation": str(document.generation),
                    "content_type": document.content_type,
                },
                attributes={"tenant_id": str(document.tenant_id)},
            )
        ]
    )
