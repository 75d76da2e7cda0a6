"""What the AI answers: retrieval, the prompt, the model, the grounding guard, WhatsApp text.

`answer` never raises for what the customer could not help: with no passage above the
threshold, an answer the model says is not from the documents, a number the documents do
not contain, or a provider that stays down, the customer gets the tenant's honest fallback
and the reply counts as low confidence (three of those in the last six hand the
conversation to staff). It takes no database session: nothing is held open while the model
thinks.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

from shared.assistant import formatting, grounding, prompts
from shared.assistant.provider import ChatProvider, Completion, ModelPrice, ProviderUnavailable
from shared.cloud.settings import settings
from shared.knowledge import retrieval

log = logging.getLogger(__name__)

CONFIDENT = 0.9
NOT_CONFIDENT = 0.0  # below handoff.LOW_CONFIDENCE: counted by the 3-of-6 rule
DEFAULT_FALLBACK = {
    "en": "Sorry, I don't have that information. Our team can help: "
    'type "talk to a person" any time to reach a staff member.',
    "id": "Maaf, saya belum punya informasi itu. Tim kami bisa membantu: "
    'ketik "bicara dengan manusia" kapan saja untuk terhubung dengan staf kami.',
}
# Common Indonesian words (function words, question words, shop talk) that English lacks.
_INDONESIAN = frozenset(
    [
        "saya",
        "aku",
        "kamu",
        "anda",
        "kak",
        "kakak",
        "min",
        "mas",
        "mbak",
        "bang",
        "pak",
        "bu",
        "mau",
        "ingin",
        "bisa",
        "boleh",
        "ada",
        "apa",
        "apakah",
        "berapa",
        "bagaimana",
        "gimana",
        "kapan",
        "mana",
        "dimana",
        "kenapa",
        "mengapa",
        "siapa",
        "yang",
        "dan",
        "atau",
        "di",
        "ke",
        "dari",
        "untuk",
        "buat",
        "dengan",
        "sama",
        "pakai",
        "ini",
        "itu",
        "tidak",
        "gak",
        "nggak",
        "enggak",
        "ga",
        "belum",
        "sudah",
        "udah",
        "lagi",
        "juga",
        "saja",
        "aja",
        "dong",
        "ya",
        "yah",
        "nih",
        "sih",
        "deh",
        "kok",
        "kalau",
        "kalo",
        "tapi",
        "harga",
        "harganya",
        "biaya",
        "ongkos",
        "tarif",
        "bayar",
        "murah",
        "mahal",
        "jam",
        "buka",
        "tutup",
        "hari",
        "minggu",
        "sabtu",
        "jumat",
        "besok",
        "hari",
        "ini",
        "sekarang",
        "halo",
        "hai",
        "selamat",
        "pagi",
        "siang",
        "sore",
        "malam",
        "terima",
        "kasih",
        "makasih",
        "tolong",
        "pesan",
        "pesanan",
        "antar",
        "kirim",
        "jemput",
        "ruang",
        "atas",
        "bawah",
        "tempat",
        "lokasi",
        "alamat",
        "cuci",
        "setrika",
        "kering",
        "baju",
        "kopi",
        "susu",
        "teh",
        "es",
        "panas",
        "gula",
        "makan",
        "minum",
        "berapaan",
        "satu",
        "dua",
        "tiga",
        "gratis",
        "diskon",
        "ongkir",
        "reservasi",
    ]
)


@dataclass(frozen=True, slots=True)
class Question:
    """Everything the reply depends on, read from the database before the model is called."""

    tenant_id: uuid.UUID
    business_name: str
    outlet_name: str
    tenant_settings: Mapping[str, Any]
    default_language: str
    knowledge_base_ids: Sequence[uuid.UUID]
    history: Sequence[prompts.Turn]
    texts: Sequence[str]  # the customer's waiting messages: one turn


@dataclass(frozen=True, slots=True)
class Answer:
    parts: tuple[str, ...]  # one or two WhatsApp texts, never empty
    confidence: float
    language: str
    low_confidence: str | None = None  # why: no_passages | not_in_documents | ungrounded | provider_failed
    wants_human: bool = False
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: Decimal | None = None
    sources: tuple[str, ...] = field(default=())

    @property
    def text(self) -> str:
        return "\n\n".join(self.parts)


def detect_language(texts: Sequence[str], default: str = "id") -> str:
    """'id' or 'en' by counting common Indonesian words. With no words to go by (a photo,
    emoji, another script) the tenant's default, if it is one of the two, else Indonesian."""
    words = re.findall(r"[a-z]+", " ".join(texts).casefold())
    if not words:
        return default if default in DEFAULT_FALLBACK else "id"
    indonesian = sum(1 for w in words if w in _INDONESIAN)
    return "id" if indonesian * 4 >= len(words) else "en"


def fallback_text(tenant_settings: Mapping[str, Any], language: str) -> str:
    fallback = tenant_settings.get("fallback_reply") or {}
    text = fallback.get(language) if isinstance(fallback, Mapping) else None
    return str(text or DEFAULT_FALLBACK.get(language, DEFAULT_FALLBACK["id"]))


@cache
def provider() -> ChatProvider:
    config = settings()
    return ChatProvider(
        api_key=config.openai_api_key.get_secret_value() or "unset",
        base_url=config.openai_base_url,
        model=config.llm_model,
        prices=ModelPrice.table(config.llm_prices),
        max_attempts=config.llm_max_attempts,
        request_timeout=config.llm_request_timeout_seconds,
    )


@dataclass(frozen=True, slots=True)
class _Prepared:
    language: str
    messages: list[dict[str, str]] | None  # None: nothing to ask the model
    evidence: tuple[str, ...]
    sources: tuple[str, ...]
    low_confidence: str | None


def _prepare(question: Question) -> _Prepared:
    language = detect_language(question.texts, question.default_language)
    query = " ".join(question.texts)
    try:
        hits = retrieval.search(question.tenant_id, question.knowledge_base_ids, query)
    except Exception as error:  # the embeddings server or Qdrant is down: their clients' own errors
        log.error("retrieval failed: %s", type(error).__name__)
        return _Prepared(language, None, (), (), "provider_failed")
    if not hits:
        return _Prepared(language, None, (), (), "no_passages")
    reply_language = question.tenant_settings.get("reply_language")
    context = prompts.PromptContext(
        business_name=question.business_name,
        outlet_name=question.outlet_name,
        tone=str(question.tenant_settings.get("tone") or "friendly, warm and concise"),
        reply_language=str(reply_language) if reply_language in ("id", "en") else None,
        customer_language=language,
        history=question.history,
        passages=[prompts.Passage(hit.text, hit.source, hit.score) for hit in hits],
        customer_messages=question.texts,
    )
    evidence = (*(hit.text for hit in hits), *(turn.text for turn in question.history), *question.texts)
    return _Prepared(language, prompts.build_messages(context), evidence, tuple(h.source for h in hits), None)


def answer(question: Question, deadline: float | None = None) -> Answer:
    """The reply to the customer's waiting messages (see the module docstring)."""
    finish_by = deadline or time.monotonic() + settings().reply_deadline_seconds
    prepared = _prepare(question)
    if prepared.messages is None:
        return _fallback(question, prepared, prepared.low_confidence or "no_passages")
    try:
        completion = provider().complete(prepared.messages, deadline=finish_by)
    except ProviderUnavailable as error:
        log.error("the language model is unavailable: %s", error)
        return _fallback(question, prepared, "provider_failed")
    return _judge(question, prepared, completion)


def stream(question: Question, deadline: float | None = None) -> Iterator[str | Answer]:
    """The same answer for "suggest a reply": the text's pieces as they come, then the Answer."""
    finish_by = deadline or time.monotonic() + settings().reply_deadline_seconds
    prepared = _prepare(question)
    if prepared.messages is None:
        yield _fallback(question, prepared, prepared.low_confidence or "no_passages")
        return
    try:
        for piece in provider().stream(prepared.messages, deadline=finish_by):
            if isinstance(piece, Completion):
                yield _judge(question, prepared, piece)
            else:
                yield piece
    except ProviderUnavailable as error:
        log.error("the language model is unavailable: %s", error)
        yield _fallback(question, prepared, "provider_failed")


def _judge(question: Question, prepared: _Prepared, completion: Completion) -> Answer:
    return dataclasses.replace(
        _verdict(question, prepared, completion),
        model=completion.model,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        cost_usd=completion.cost,
    )


def _verdict(question: Question, prepared: _Prepared, completion: Completion) -> Answer:
    if completion.wants_human:
        return _fallback(question, prepared, None, wants_human=True)
    if not completion.answered_from_context:
        return _fallback(question, prepared, "not_in_documents")
    invented = grounding.ungrounded_facts(completion.reply, prepared.evidence)
    if invented:
        log.warning("reply refused by the grounding guard", extra={"ungrounded": invented})
        return _fallback(question, prepared, "ungrounded")
    text = formatting.to_whatsapp(completion.reply).strip()
    if not text:
        return _fallback(question, prepared, "not_in_documents")
    return Answer(
        parts=tuple(formatting.split_for_whatsapp(text)),
        confidence=CONFIDENT,
        language=prepared.language,
        sources=prepared.sources,
    )


def _fallback(question: Question, prepared: _Prepared, reason: str | None, *, wants_human: bool = False) -> Answer:
    return Answer(
        parts=(fallback_text(question.tenant_settings, prepared.language),),
        confidence=CONFIDENT if wants_human else NOT_CONFIDENT,
        language=prepared.language,
        low_confidence=reason,
        wants_human=wants_human,
        sources=prepared.sources,
    )
