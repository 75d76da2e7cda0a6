"""Knowledge bases that ingest and answer: chunking settings, ingest state, reply claims, LLM usage.

Self-contained like 0001: the columns are spelled out here, not imported from the models.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _nullable(name: str, type_: sa.types.TypeEngine[Any]) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=True)


def upgrade() -> None:
    op.add_column(
        "outlets",
        sa.Column("settings", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    op.add_column("conversations", _nullable("reply_claim", sa.Uuid()))
    op.add_column("conversations", _nullable("reply_claim_until", sa.DateTime(timezone=True)))

    op.add_column("messages", _nullable("llm_model", sa.Text()))
    op.add_column("messages", _nullable("prompt_tokens", sa.Integer()))
    op.add_column("messages", _nullable("completion_tokens", sa.Integer()))
    op.add_column("messages", _nullable("llm_cost_usd", sa.Numeric(12, 6)))

    op.add_column("knowledge_bases", _nullable("description", sa.Text()))
    op.add_column(
        "knowledge_bases", sa.Column("chunk_size", sa.Integer(), server_default=sa.text("500"), nullable=False)
    )
    op.add_column(
        "knowledge_bases", sa.Column("chunk_overlap", sa.Integer(), server_default=sa.text("50"), nullable=False)
    )
    op.add_column("knowledge_bases", _nullable("embedding_model", sa.Text()))
    op.create_check_constraint(
        op.f("ck_knowledge_bases_chunk_size"), "knowledge_bases", "chunk_size BETWEEN 100 AND 4000"
    )
    op.create_check_constraint(
        op.f("ck_knowledge_bases_chunk_overlap"), "knowledge_bases", "chunk_overlap >= 0 AND chunk_overlap < chunk_size"
    )

    op.add_column("documents", sa.Column("file_name", sa.Text(), server_default="", nullable=False))
    op.add_column("documents", _nullable("pages", sa.Integer()))
    op.add_column("documents", _nullable("rows", sa.Integer()))
    op.add_column("documents", _nullable("embedding_model", sa.Text()))
    op.add_column("documents", sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("documents", _nullable("processing_deadline", sa.DateTime(timezone=True)))
    op.add_column("documents", _nullable("processed_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_documents_processing_deadline",
        "documents",
        ["processing_deadline"],
        postgresql_where=sa.text("status = 'processing'"),
    )


def downgrade() -> None:
    op.drop_index("ix_documents_processing_deadline", table_name="documents")
    for column in ("processed_at", "processing_deadline", "attempts", "embedding_model", "rows", "pages", "file_name"):
        op.drop_column("documents", column)
    op.drop_constraint(op.f("ck_knowledge_bases_chunk_overlap"), "knowledge_bases", type_="check")
    op.drop_constraint(op.f("ck_knowledge_bases_chunk_size"), "knowledge_bases", type_="check")
    for column in ("embedding_model", "chunk_overlap", "chunk_size", "description"):
        op.drop_column("knowledge_bases", column)
    for column in ("llm_cost_usd", "completion_tokens", "prompt_tokens", "llm_model"):
        op.drop_column("messages", column)
    op.drop_column("conversations", "reply_claim_until")
    op.drop_column("conversations", "reply_claim")
    op.drop_column("outlets", "settings")
