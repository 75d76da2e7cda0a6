"""What the AI answers, and whether the tenant may send it.

PLACEHOLDER (issue 3 allows it until the knowledge/LLM and billing issues land):
`generate_reply` answers with the tenant's fallback text in the customer's language, never
echoing the customer, and `may_send` allows every tenant that is not suspended. Both keep
the signatures the real implementations will have, so the conversation flow does not change
when they arrive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_FALLBACK = {
    "en": "Thanks for your message! Our team will get back to you shortly. "
    'Type "talk to a person" any time to reach a staff member.',
    "id": "Terima kasih atas pesannya! Tim kami akan segera membalas. "
    'Ketik "bicara dengan manusia" kapan saja untuk terhubung dengan staf kami.',
}
_INDONESIAN = frozenset(
    [
        "saya",
        "aku",
        "kamu",
        "anda",
        "mau",
        "ingin",
        "bisa",
        "ada",
        "apa",
        "apakah",
        "berapa",
        "harga",
        "kopi",
        "yang",
        "dan",
        "di",
        "ke",
        "dari",
        "ini",
        "itu",
        "tidak",
        "gak",
        "nggak",
        "enggak",
        "dong",
        "ya",
        "kak",
        "min",
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
        "buka",
        "tutup",
        "jam",
    ]
)


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    confidence: float | None  # None: the generator does not know (the placeholder)
    language: str


@dataclass(frozen=True, slots=True)
class SendDecision:
    allowed: bool
    reason: str = ""


def detect_language(texts: Sequence[str], default: str = "id") -> str:
    """'id' or 'en' by counting common Indonesian words: enough to pick a fallback text. With
    no words to go by (a photo, emoji, another script) the tenant's default, if it is one of
    the two, else Indonesian."""
    words = re.findall(r"[a-z]+", " ".join(texts).casefold())
    if not words:
        return default if default in DEFAULT_FALLBACK else "id"
    indonesian = sum(1 for w in words if w in _INDONESIAN)
    return "id" if indonesian * 4 >= len(words) else "en"


def generate_reply(
    tenant_settings: Mapping[str, Any], customer_texts: Sequence[str], default_language: str = "id"
) -> Reply:
    """PLACEHOLDER: the tenant's fallback text, in the language the customer wrote in."""
    language = detect_language(customer_texts, default_language)
    fallback = tenant_settings.get("fallback_reply") or {}
    text = fallback.get(language) if isinstance(fallback, Mapping) else None
    return Reply(text=text or DEFAULT_FALLBACK[language], confidence=None, language=language)


def may_send(tenant_status: str) -> SendDecision:
    """PLACEHOLDER for the billing rules: every active tenant may send."""
    if tenant_status != "active":
        return SendDecision(False, f"tenant is {tenant_status}")
    return SendDecision(True)
