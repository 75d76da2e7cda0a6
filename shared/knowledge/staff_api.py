"""The knowledge API: knowledge bases, their documents, and two ways to upload one.

Both uploads end in the documents bucket at `tenants/{tenant}/knowledge/{kb}/{file}`, where
the storage trigger registers and ingests the file: a V4 signed URL the admin's browser PUTs
the file to (large files never pass through a function), or a multipart upload here that
writes the object itself. Owners and admins write; agents and viewers read.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

from flask_openapi3.models.file import FileStorage
from pydantic import BaseModel, Field, JsonValue, field_validator

from shared.api.auth import EVERY_ROLE, MANAGING_ROLES, Staff
from shared.api.errors import ApiError
from shared.api.routes import Route, StaffApi
from shared.billing import limits
from shared.cloud import storage
from shared.cloud.settings import settings
from shared.knowledge import catalog, documents

UPLOAD_URL_LIFETIME = timedelta(minutes=15)
TOO_LARGE = "file_too_large"
Language = Literal["id", "en"]
DocumentStatus = Literal["uploaded", "processing", "ready", "failed"]
_FORBIDDEN_IN_NAMES = set('/\\\0<>:"|?*')


def _file_name(value: str) -> str:
    """A plain file name: it becomes the last part of the object's name."""
    name = value.strip()
    if not name or name in (".", "..") or any(ch in _FORBIDDEN_IN_NAMES or ord(ch) < 32 for ch in name):
        raise ValueError('must be a plain file name, without / \\ : * ? " < > | or control characters')
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in documents.TYPES_BY_EXTENSION:
        raise ValueError(f"must end in one of {', '.join('.' + e for e in sorted(documents.TYPES_BY_EXTENSION))}")
    return name


# Requests


class KnowledgeBasePath(BaseModel):
    knowledge_base_id: uuid.UUID


class DocumentPath(BaseModel):
    knowledge_base_id: uuid.UUID
    document_id: uuid.UUID


class KnowledgeBaseCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    language: Language = "id"
    outlet_id: uuid.UUID | None = Field(None, description="Only this outlet answers from it; unset: every outlet.")
    chunk_size: int = Field(500, ge=100, le=4000, description="Characters per chunk.")
    chunk_overlap: int = Field(50, ge=0, le=1000, description="Characters two neighbouring chunks share.")

    @field_validator("chunk_overlap")
    @classmethod
    def _smaller_than_chunks(cls, value: int, info: object) -> int:
        size = getattr(info, "data", {}).get("chunk_size", 500)
        if value >= size:
            raise ValueError("must be smaller than chunk_size")
        return value


class KnowledgeBaseUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    chunk_size: int | None = Field(None, ge=100, le=4000)
    chunk_overlap: int | None = Field(None, ge=0, le=1000)


class UploadUrlRequest(BaseModel):
    file_name: str = Field(min_length=1, max_length=200)
    content_type: str = Field(
        description="The file's type; the PUT must send the same Content-Type.",
        json_schema_extra={"enum": list[JsonValue](sorted(documents.SUPPORTED_TYPES))},
    )
    size_bytes: int = Field(ge=1, description=f"Up to {documents.MAX_DOCUMENT_MB} MB.")

    _name = field_validator("file_name")(_file_name)

    @field_validator("content_type")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in documents.SUPPORTED_TYPES:
            raise ValueError("upload PDF, DOCX, XLSX, CSV, TXT or Markdown")
        return value


class UploadForm(BaseModel):
    file: FileStorage


# Responses


class KnowledgeBaseView(BaseModel):
    id: uuid.UUID
    outlet_id: uuid.UUID | None
    name: str
    description: str | None
    language: str
    chunk_size: int
    chunk_overlap: int
    embedding_model: str | None = Field(description="The model its vectors were made with.")
    documents: int
    size_bytes: int
    created_at: datetime
    updated_at: datetime


class KnowledgeBaseList(BaseModel):
    knowledge_bases: list[KnowledgeBaseView]


class DocumentView(BaseModel):
    id: uuid.UUID
    knowledge_base_id: uuid.UUID
    file_name: str
    content_type: str
    size_bytes: int
    status: DocumentStatus
    error: str | None = Field(description="Why it failed, for the person who uploaded it.")
    chunk_count: int
    pages: int | None
    rows: int | None
    attempts: int
    created_at: datetime
    processed_at: datetime | None


class DocumentList(BaseModel):
    documents: list[DocumentView]


class Deleted(BaseModel):
    id: uuid.UUID
    deleted: Literal[True] = True


class UploadUrl(BaseModel):
    url: str = Field(description="PUT the file's bytes here.")
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str] = Field(description="Send exactly these headers with the PUT.")
    object_name: str
    expires_at: datetime


class Uploaded(BaseModel):
    object_name: str
    generation: int
    size_bytes: int


# Handlers


def _not_found(error: catalog.NotFound) -> ApiError:
    return ApiError(404, str(error))


def _too_large(error: catalog.FileTooLarge) -> ApiError:
    return ApiError(413, str(error), TOO_LARGE)


def list_knowledge_bases(staff: Staff) -> KnowledgeBaseList:
    """Every knowledge base of the tenant."""
    return KnowledgeBaseList.model_validate({"knowledge_bases": catalog.list_knowledge_bases(staff.tenant_id)})


def create_knowledge_base(staff: Staff, body: KnowledgeBaseCreate) -> KnowledgeBaseView:
    """A new, empty knowledge base."""
    try:
        return KnowledgeBaseView.model_validate(catalog.create_knowledge_base(staff.tenant_id, body.model_dump()))
    except catalog.NotFound as error:
        raise _not_found(error) from error


def get_knowledge_base(staff: Staff, path: KnowledgeBasePath) -> KnowledgeBaseView:
    """One knowledge base, with its number of documents and their size."""
    try:
        return KnowledgeBaseView.model_validate(catalog.get_knowledge_base(staff.tenant_id, path.knowledge_base_id))
    except catalog.NotFound as error:
        raise _not_found(error) from error


def update_knowledge_base(staff: Staff, path: KnowledgeBasePath, body: KnowledgeBaseUpdate) -> KnowledgeBaseView:
    """Change name, description or chunking; new chunking re-indexes its documents."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name", "") is None:
        raise ApiError(400, "body.name: may not be null")
    try:
        current = catalog.get_knowledge_base(staff.tenant_id, path.knowledge_base_id)
        size = changes.get("chunk_size") or current["chunk_size"]
        overlap = changes.get("chunk_overlap")
        overlap = current["chunk_overlap"] if overlap is None else overlap
        if overlap >= size:
            raise ApiError(400, "body.chunk_overlap: must be smaller than chunk_size")
        changes = {k: v for k, v in changes.items() if v is not None or k == "description"}
        return KnowledgeBaseView.model_validate(
            catalog.update_knowledge_base(staff.tenant_id, path.knowledge_base_id, changes)
        )
    except catalog.NotFound as error:
        raise _not_found(error) from error


def delete_knowledge_base(staff: Staff, path: KnowledgeBasePath) -> Deleted:
    """The knowledge base and all its documents, their vectors and their files."""
    try:
        catalog.delete_knowledge_base(staff.tenant_id, path.knowledge_base_id)
    except catalog.NotFound as error:
        raise _not_found(error) from error
    return Deleted(id=path.knowledge_base_id)


def list_documents(staff: Staff, path: KnowledgeBasePath) -> DocumentList:
    """The knowledge base's documents, newest first, with their ingest status."""
    try:
        return DocumentList.model_validate(
            {"documents": catalog.list_documents(staff.tenant_id, path.knowledge_base_id)}
        )
    except catalog.NotFound as error:
        raise _not_found(error) from error


def get_document(staff: Staff, path: DocumentPath) -> DocumentView:
    """One document and its ingest status."""
    try:
        return DocumentView.model_validate(
            catalog.get_document(staff.tenant_id, path.knowledge_base_id, path.document_id)
        )
    except catalog.NotFound as error:
        raise _not_found(error) from error


def delete_document(staff: Staff, path: DocumentPath) -> Deleted:
    """The document, every version of its file, and their vectors."""
    try:
        catalog.delete_document(staff.tenant_id, path.knowledge_base_id, path.document_id)
    except catalog.NotFound as error:
        raise _not_found(error) from error
    return Deleted(id=path.document_id)


def create_upload_url(staff: Staff, path: KnowledgeBasePath, body: UploadUrlRequest) -> UploadUrl:
    """A signed URL to PUT one file to, valid for 15 minutes."""
    try:
        catalog.prepare_upload(staff.tenant_id, path.knowledge_base_id, body.size_bytes)
    except catalog.NotFound as error:
        raise _not_found(error) from error
    except catalog.FileTooLarge as error:
        raise _too_large(error) from error
    name = catalog.object_name(staff.tenant_id, path.knowledge_base_id, body.file_name)
    url = storage.signed_upload_url(settings().documents_bucket, name, body.content_type, UPLOAD_URL_LIFETIME)
    return UploadUrl(
        url=url,
        headers={"Content-Type": body.content_type},
        object_name=name,
        expires_at=datetime.now(UTC) + UPLOAD_URL_LIFETIME,
    )


def upload_document(staff: Staff, path: KnowledgeBasePath, form: UploadForm) -> Uploaded:
    """Upload a file through the API (multipart/form-data, field `file`)."""
    upload = form.file
    try:
        file_name = _file_name(upload.filename or "")
    except ValueError as error:
        raise ApiError(400, f"form.file: the file name {error}") from error
    data = upload.read(documents.MAX_DOCUMENT_BYTES + 1)
    if not data:
        raise ApiError(400, "form.file: the file is empty")
    try:
        catalog.prepare_upload(staff.tenant_id, path.knowledge_base_id, len(data))
    except catalog.NotFound as error:
        raise _not_found(error) from error
    except catalog.FileTooLarge as error:
        raise _too_large(error) from error
    name = catalog.object_name(staff.tenant_id, path.knowledge_base_id, file_name)
    content_type = documents.TYPES_BY_EXTENSION[file_name.rsplit(".", 1)[-1].lower()]
    generation = storage.upload(settings().documents_bucket, name, data, content_type)
    return Uploaded(object_name=name, generation=generation, size_bytes=len(data))


KB = "/knowledge-bases/<uuid:knowledge_base_id>"
DOCUMENT = f"{KB}/documents/<uuid:document_id>"
UPLOAD_BODY_BYTES = documents.MAX_DOCUMENT_BYTES + 64 * 1024  # the file and its multipart framing
api = StaffApi(
    "knowledge-api",
    "Knowledge bases and the documents the AI answers from. Authenticate with a Firebase ID token.",
    [
        Route("GET", "/knowledge-bases", list_knowledge_bases, EVERY_ROLE),
        Route(
            "POST",
            "/knowledge-bases",
            create_knowledge_base,
            MANAGING_ROLES,
            status=201,
            errors=(409,),
            audit="knowledge_base.create",
        ),
        Route("GET", KB, get_knowledge_base, EVERY_ROLE),
        Route("PATCH", KB, update_knowledge_base, MANAGING_ROLES, audit="knowledge_base.update"),
        Route("DELETE", KB, delete_knowledge_base, MANAGING_ROLES, audit="knowledge_base.delete"),
        Route("GET", f"{KB}/documents", list_documents, EVERY_ROLE),
        Route(
            "POST",
            f"{KB}/documents",
            upload_document,
            MANAGING_ROLES,
            status=202,
            errors=(409,),
            max_body_bytes=UPLOAD_BODY_BYTES,
            audit="document.upload",
        ),
        Route(
            "POST",
            f"{KB}/upload-url",
            create_upload_url,
            MANAGING_ROLES,
            status=201,
            errors=(409,),
            audit="document.upload_url",
        ),
        Route("GET", DOCUMENT, get_document, EVERY_ROLE),
        Route("DELETE", DOCUMENT, delete_document, MANAGING_ROLES, audit="document.delete"),
    ],
    rate_limit=limits.requests_per_minute,
)
