"""The passages an outlet's assistant may answer from, for one question."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.cloud.settings import settings
from shared.db.models import KnowledgeBase, Outlet
from shared.knowledge import vectors
from shared.knowledge.embeddings import embedder


def knowledge_base_ids(session: Session, outlet: Outlet) -> list[uuid.UUID]:
    """The outlet's choice (settings.knowledge_base_ids) if it made one, else every knowledge
    base of its tenant that is tenant-wide or this outlet's. Row-level security keeps a
    forged id of another tenant out: it is simply not found."""
    query = select(KnowledgeBase.id).where(
        KnowledgeBase.tenant_id == outlet.tenant_id,
        or_(KnowledgeBase.outlet_id.is_(None), KnowledgeBase.outlet_id == outlet.id),
    )
    chosen = (outlet.settings or {}).get("knowledge_base_ids")
    if isinstance(chosen, list) and chosen:
        wanted = []
        for value in chosen:
            try:
                wanted.append(uuid.UUID(str(value)))
            except ValueError:
                continue
        query = query.where(KnowledgeBase.id.in_(wanted))
    return list(session.scalars(query))


def search(
    tenant_id: uuid.UUID, knowledge_base_ids: Sequence[uuid.UUID], question: str, limit: int | None = None
) -> list[vectors.Hit]:
    """The best passages above the embedder's minimum score, best first."""
    if not knowledge_base_ids or not question.strip():
        return []
    model = embedder()
    return vectors.search(
        model=model.model,
        tenant_id=tenant_id,
        knowledge_base_ids=knowledge_base_ids,
        vector=model.query(question),
        text=question,
        limit=limit or settings().retrieval_top_k,
        min_score=model.min_score,
    )
