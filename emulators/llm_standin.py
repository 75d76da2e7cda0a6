"""An OpenAI-compatible chat-completions server for the local runtime, as the WhatsApp
simulator stands in for Meta: the production provider code runs end to end, only the base
URL differs. It answers extractively from the passages in the prompt it receives (the
best-matching row or sentence, framed briefly in the customer's language), follows the
structured-output format, streams with usage last, and fails on request for tests
(POST /control/failures {"kind": "429"|"500"|"timeout"|"slow"|"bad_json"|"reply", "count": n,
"retry_after": s, "delay": s, "reply": {...}}; DELETE clears; GET /control/calls lists calls).

    python -m emulators.llm_standin --port 8094
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from werkzeug.wrappers import Request, Response

from emulators.keepalive import serve

log = logging.getLogger("llm_standin")
# Indonesian words and the English ones a document may use for them (and back).
LEXICON = {
    "harga": ["price", "cost", "rp"],
    "harganya": ["price", "cost"],
    "berapa": ["price", "how much"],
    "biaya": ["fee", "cost", "price"],
    "ongkos": ["fee", "cost", "price"],
    "tarif": ["fee", "rate", "price"],
    "cuci": ["wash", "washing", "cleaning"],
    "setrika": ["iron", "ironing"],
    "lipat": ["fold"],
    "kilat": ["express"],
    "selesai": ["ready"],
    "kilo": ["kg"],
    "kering": ["dry"],
    "jas": ["suit"],
    "gaun": ["dress"],
    "baju": ["clothes"],
    "bayi": ["baby"],
    "selimut": ["blanket", "bed cover"],
    "sprei": ["bed cover"],
    "karpet": ["carpet"],
    "gorden": ["curtains"],
    "sepatu": ["sneakers", "shoes"],
    "persegi": ["square"],
    "meter": ["metre", "meter"],
    "rusak": ["damaged", "damage"],
    "lapor": ["reported", "report"],
    "hilang": ["lost"],
    "noda": ["stains", "stain"],
    "tinta": ["ink"],
    "minyak": ["oil"],
    "dibersihkan": ["cleaning", "treated"],
    "deterjen": ["detergent"],
    "minimal": ["minimum"],
    "minimum": ["minimal"],
    "member": ["membership", "member"],
    "bulan": ["monthly", "month"],
    "kopi": ["coffee"],
    "susu": ["milk"],
    "gula": ["sugar"],
    "aren": ["palm"],
    "panas": ["hot"],
    "coklat": ["chocolate"],
    "keju": ["cheese"],
    "roti": ["toast", "bread"],
    "bakar": ["toast"],
    "mentega": ["butter"],
    "es": ["iced", "ice"],
    "biji": ["beans"],
    "teh": ["tea"],
    "buka": ["open", "opening"],
    "tutup": ["close", "closed"],
    "jam": ["hours", "time"],
    "pukul": ["time"],
    "setiap": ["every"],
    "antar": ["delivery"],
    "pengiriman": ["delivery"],
    "kirim": ["delivery"],
    "jemput": ["pickup"],
    "gratis": ["free"],
    "tambahan": ["extra"],
    "bayar": ["payment", "pay"],
    "hari": ["day"],
    "minggu": ["sunday", "week"],
    "sabtu": ["saturday"],
    "jumat": ["friday"],
    "pesan": ["order", "booking", "book"],
    "dipesan": ["book", "booking", "booked"],
    "sewa": ["book", "rent"],
    "reservasi": ["booking", "reservation", "book"],
    "ruang": ["room"],
    "atas": ["upstairs"],
    "merokok": ["smoke", "smoking"],
    "hewan": ["pets", "pet"],
    "peliharaan": ["pets", "pet"],
    "kartu": ["card"],
    "lokasi": ["location", "address"],
    "boleh": ["allowed", "diizinkan", "welcome"],
    "can": ["allowed", "diizinkan", "boleh"],
    "where": ["area", "lokasi"],
    "much": ["price", "harga"],
    "cost": ["price", "harga", "fee"],
    "charge": ["price", "harga", "fee"],
    "lose": ["lost"],
}
ASK_FOR_PERSON = re.compile(
    r"talk to a (person|human)|speak to|bicara dengan|ngobrol sama|\badmin\b|\bmanusia\b|\bstaf", re.I
)
STOP_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "is",
        "are",
        "of",
        "to",
        "for",
        "what",
        "how",
        "do",
        "does",
        "you",
        "your",
        "my",
        "i",
        "it",
        "and",
        "or",
        "in",
        "on",
        "at",
        "per",
        "di",
        "ke",
        "yang",
        "apa",
        "ya",
        "kak",
        "ada",
        "dong",
        "ini",
        "itu",
        "saja",
        "aja",
    ]
)
# Words every price question has: a line must share another word with the question too.
GENERIC = frozenset(
    ["price", "cost", "rp", "harga", "harganya", "how", "much", "fee", "biaya", "berapa", "ongkos", "tarif", "charge"]
)
_WORD = re.compile(r"[\w.,:;()-]+", re.UNICODE)


def _norm(word: str) -> str:
    """Case, punctuation and hyphens dropped, and a crude English stem ("ironing", "sneakers",
    "monthly" become "iron", "sneaker", "month"), the same on both sides."""
    word = word.strip(".,:;()-").replace("-", "").casefold()
    for suffix in ("ing", "ly", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _words(text: str) -> set[str]:
    return {_norm(w) for w in _WORD.findall(text) if _norm(w)} - {_norm(w) for w in STOP_WORDS}


_LEXICON = {_norm(key): {_norm(w) for phrase in values for w in phrase.split()} for key, values in LEXICON.items()}
_GENERIC = {_norm(word) for word in GENERIC}


def _expanded(question: str) -> set[str]:
    words = _words(question)
    for word in list(words):
        words |= _LEXICON.get(word, set())
        words |= {indonesian for indonesian, english in _LEXICON.items() if word in english}
    return words


def _lines(passage: str) -> list[str]:
    """The passage's lines and sentences, a short title sentence ("Lost items.") kept with the next."""
    pieces = [p.strip(" -•") for p in re.split(r"\n|(?<=[.!?])\s+", passage) if p.strip() and not p.startswith("[")]
    lines: list[str] = []
    carried = ""
    for piece in pieces:
        if len(piece.split()) < 4 and piece.endswith(".") and not re.search(r"\d", piece):
            carried = f"{carried}{piece} "
            continue
        lines.append(carried + piece)
        carried = ""
    return [*lines, carried.strip()] if carried.strip() else lines


def _section(content: str, tag: str) -> str:
    """The section's text, still escaped: a source attribute may hold an escaped ">"."""
    match = re.search(rf"<{tag}>\n?(.*?)\n?</{tag}>", content, re.S)
    return match.group(1) if match else ""


def answer(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The structured reply to a prompt built by shared/assistant/prompts.py: the passage line
    sharing most words with the question (its heading counts too), at least two of them."""
    user = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
    system = next((str(m.get("content", "")) for m in messages if m.get("role") == "system"), "")
    question = html.unescape(_section(user, "customer_message"))
    indonesian = "Bahasa Indonesia" in system
    if ASK_FOR_PERSON.search(question):
        text = "Baik, saya hubungkan dengan staf kami." if indonesian else "Sure, I'll connect you with our staff."
        return {"reply": text, "answered_from_context": False, "wants_human": True}
    wanted = _expanded(question)
    best, best_score = "", 0.0
    for escaped in re.findall(r"<passage[^>]*>\n?(.*?)\n?</passage>", _section(user, "passages"), re.S):
        passage = html.unescape(escaped)
        heading = passage.split("\n", 1)[0] if passage.startswith("[") else ""
        # the heading, without the file name: "[menu.md · Menu > Opening hours]"
        heading_words = _words(heading.strip("[]").split(" · ", 1)[-1]) & wanted
        for candidate in _lines(passage):
            own = wanted & _words(candidate)
            shared = own | heading_words
            if not shared - _GENERIC:
                continue  # only "price" in common: a line about something else
            score = len(shared) / (1 + len(_words(candidate)) ** 0.5)
            if len(shared) >= 2 and score > best_score:
                best, best_score = candidate, score
    if not best:
        text = "Maaf, saya belum punya informasi itu." if indonesian else "Sorry, I don't have that information."
        return {"reply": text, "answered_from_context": False, "wants_human": False}
    fact = re.sub(r"\s*\|\s*", ", ", best).rstrip(".")
    text = f"Berikut infonya: {fact}." if indonesian else f"Here you go: {fact}."
    return {"reply": text, "answered_from_context": True, "wants_human": False}


class LlmStandIn:
    """The WSGI app; failure injection and the call record are guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[dict[str, Any]] = []
        self._calls: list[dict[str, Any]] = []

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        if request.path == "/health":
            response = _json({"status": "ok"})
        elif request.path == "/v1/models":
            response = _json({"object": "list", "data": [{"id": "local-stand-in", "object": "model"}]})
        elif request.path == "/control/failures" and request.method == "POST":
            with self._lock:
                self._failures.append(dict(request.get_json(force=True)))
            response = _json({"ok": True})
        elif request.path == "/control/failures" and request.method == "DELETE":
            with self._lock:
                self._failures.clear()
            response = _json({"ok": True})
        elif request.path == "/control/calls":
            with self._lock:
                response = _json({"calls": list(self._calls)})
        elif request.path == "/v1/chat/completions" and request.method == "POST":
            response = self._complete(request)
        else:
            response = _json({"error": {"message": "unknown route", "type": "invalid_request_error"}}, 404)
        return response(environ, start_response)

    def _failure(self) -> dict[str, Any] | None:
        with self._lock:
            for failure in self._failures:
                if failure.get("count") is None or failure["count"] > 0:
                    if failure.get("count") is not None:
                        failure["count"] -= 1
                    return dict(failure)
        return None

    def _complete(self, request: Request) -> Response:
        body = request.get_json(force=True)
        with self._lock:
            self._calls.append({"model": body.get("model"), "stream": bool(body.get("stream")), "at": time.time()})
        failure = self._failure()
        if failure:
            kind = failure.get("kind")
            if kind == "429":
                return _json(
                    {"error": {"message": "rate limited", "type": "rate_limit"}},
                    429,
                    {"Retry-After": str(failure.get("retry_after", 1))},
                )
            if kind == "500":
                return _json({"error": {"message": "server error", "type": "server_error"}}, 500)
            if kind in ("timeout", "slow"):
                time.sleep(float(failure.get("delay", 30.0)))
        reply = answer(body.get("messages") or [])
        if failure and failure.get("kind") == "bad_json":
            content = '{"reply": "broken'
        elif failure and failure.get("kind") == "reply":  # what a model that invents would say
            content = json.dumps(failure["reply"], ensure_ascii=False)
        else:
            content = json.dumps(reply, ensure_ascii=False)
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body.get("messages") or []) // 4
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(content) // 4,
            "total_tokens": prompt_tokens + len(content) // 4,
        }
        model = str(body.get("model") or "local-stand-in")
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return Response(
                _stream(ident, model, content, usage if include_usage else None), mimetype="text/event-stream"
            )
        return _json(
            {
                "id": ident,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": usage,
            }
        )


def _stream(ident: str, model: str, content: str, usage: dict[str, int] | None) -> Iterator[bytes]:
    def event(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> bytes:
        chunk = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            **(extra or {}),
        }
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()

    for start in range(0, len(content), 16):
        yield event([{"index": 0, "delta": {"content": content[start : start + 16]}, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if usage is not None:
        yield event([], {"usage": usage})
    yield b"data: [DONE]\n\n"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json", headers=headers)


def create_app() -> LlmStandIn:
    return LlmStandIn()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="An offline OpenAI-compatible chat server, on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8094)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s llm_standin %(message)s")
    serve(create_app(), args.port, "the LLM stand-in (OpenAI-compatible, /v1)")


if __name__ == "__main__":
    main()
