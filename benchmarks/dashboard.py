"""How soon a live dashboard sees what happens in a conversation, on this machine.

    .venv/bin/python -m benchmarks.dashboard [--customers 40] [--gap 0.5] [--warmup 3] [--json PATH]

Starts its own local stack and listens to the demo tenant in Firestore as a dashboard does,
with realtime listeners: one on `tenants/{tenant}/conversations`, one on the tenant's messages
(a collection-group query). Then it plays Meta, one customer at a time, `--gap` apart: a
message, and once the reply reached the simulator, the `read` status webhook for that reply
(the simulator's own status webhooks are switched off, so the benchmark knows when it left).
Every fifth customer asks for a person instead. For each event it reports how long after
Meta's request left the listener was told (p50 / p95 / max), against the issue's "within a
second locally":

- new conversation: its conversation document appears
- customer message: the message's document appears
- reply: the reply's document appears
- status change: the reply's document shows `read`
- handoff: the conversation document shows `handed_off`
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from benchmarks.pipeline import percentile
from emulators.chat import Customer, delivery, derived_bsuid
from emulators.stack import LocalStack, StackOptions
from emulators.whatsapp_simulator import status_webhook
from shared.cloud.settings import settings
from shared.db.engine import reset_engine
from shared.whatsapp.signature import sign

LISTENERS = ("conversations", "messages")
EVENTS = ("new conversation", "customer message", "reply", "status change", "handoff")
TARGET_S = 1.0
HANDOFF_EVERY = 5
HELLO, ASK_FOR_A_PERSON = "halo kak, masih buka?", "saya mau bicara dengan manusia"


@dataclass
class Seen:
    """When the listeners were first told of each event, by conversation (filled from their threads)."""

    live: dict[str, threading.Event] = field(default_factory=lambda: {name: threading.Event() for name in LISTENERS})
    phone_of: dict[str, str] = field(default_factory=dict)  # conversation id -> customer phone
    at: dict[tuple[str, str], float] = field(default_factory=dict)  # (event, conversation id) -> time
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first(self, event: str, conversation_id: str, when: float) -> None:
        with self.lock:
            self.at.setdefault((event, conversation_id), when)

    def on_conversations(self, _snapshots: Any, changes: list[Any], _read_time: Any) -> None:
        when = time.time()
        self.live["conversations"].set()
        for change in changes:
            data = change.document.to_dict() or {}
            phone = (data.get("customer") or {}).get("phone")
            if phone:
                with self.lock:
                    self.phone_of[data["id"]] = phone
                self.first("new conversation", data["id"], when)
                if data.get("status") == "handed_off":
                    self.first("handoff", data["id"], when)

    def on_messages(self, _snapshots: Any, changes: list[Any], _read_time: Any) -> None:
        when = time.time()
        self.live["messages"].set()
        for change in changes:
            data = change.document.to_dict() or {}
            conversation_id = data.get("conversation_id")
            if not conversation_id:
                continue
            if data.get("direction") == "inbound":
                self.first("customer message", conversation_id, when)
            elif data.get("sender_type") == "llm":
                self.first("reply", conversation_id, when)
                if data.get("status") == "read":
                    self.first("status change", conversation_id, when)


@dataclass
class Report:
    customers: int
    handoffs: int
    latency_ms: dict[str, dict[str, float | None]]  # event -> p50, p95, max
    seen: dict[str, int]  # event -> how many of the expected the listeners were told of
    expected: dict[str, int]
    targets: dict[str, bool] = field(default_factory=dict)


class Meta:
    """Meta's side: signed message webhooks, and the `read` status webhook of each reply."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.http = requests.Session()
        self.demo = info["demo"]

    def post(self, payload: bytes) -> None:
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(payload, self.info["app_secret"])}
        answer = self.http.post(self.info["webhook_url"], data=payload, headers=headers, timeout=10)
        answer.raise_for_status()

    def say(self, phone: str, text: str) -> float:
        raw, _ = delivery(self.demo["phone_number_id"], Customer(phone, derived_bsuid(phone), "Pelanggan"), text)
        left = time.time()
        self.post(raw)
        return left

    def reply_wamid(self, phone: str, timeout: float = 15.0) -> str:
        """The WhatsApp id of the first send to this customer, once it reached the simulator."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.http.get(f"{self.info['whatsapp_simulator']}/_sim/calls", timeout=10).json()["calls"]
            for call in calls:
                if call["kind"] == "send" and call["status"] == 200 and call["body"].get("to") == phone:
                    return str(call["wamid"])
            time.sleep(0.02)
        raise TimeoutError(f"no reply to {phone} reached the simulator within {timeout:g} s")

    def read(self, phone: str, wamid: str) -> float:
        payload = status_webhook(
            self.demo["display_phone_number"], self.demo["phone_number_id"], wamid, "read", {"recipient_id": phone}
        )
        raw = json.dumps(payload).encode()
        left = time.time()
        self.post(raw)
        return left


def play(meta: Meta, customers: int, gap: float, phone_base: int) -> dict[str, dict[str, float]]:
    """Each customer's events, by phone: when the request that causes each one left."""
    caused: dict[str, dict[str, float]] = {}
    for number in range(customers):
        phone = str(phone_base + number)
        handoff = number % HANDOFF_EVERY == HANDOFF_EVERY - 1
        left = meta.say(phone, ASK_FOR_A_PERSON if handoff else HELLO)
        caused[phone] = {"new conversation": left, "customer message": left}
        if handoff:
            caused[phone]["handoff"] = left
        else:
            caused[phone]["reply"] = left
            caused[phone]["status change"] = meta.read(phone, meta.reply_wamid(phone))
        time.sleep(gap)
    return caused


def report(caused: dict[str, dict[str, float]], seen: Seen) -> Report:
    with seen.lock:
        conversation_of = {phone: cid for cid, phone in seen.phone_of.items()}
        at = dict(seen.at)
    latencies: dict[str, list[float]] = {event: [] for event in EVENTS}
    expected = dict.fromkeys(EVENTS, 0)
    for phone, events in caused.items():
        for event, left in events.items():
            expected[event] += 1
            told = at.get((event, conversation_of.get(phone, "")))
            if told is not None:
                latencies[event].append((told - left) * 1000)
    figures = {
        event: {"p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values, default=None)}
        for event, values in latencies.items()
    }
    targets = {
        f"{event} p95 < 1 s": len(latencies[event]) == expected[event]
        and (figures[event]["p95"] or 0) < TARGET_S * 1000
        for event in EVENTS
    }
    handoffs = expected["handoff"]
    counts = {event: len(values) for event, values in latencies.items()}
    return Report(len(caused), handoffs, figures, counts, expected, targets)


def print_report(r: Report) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    print(f"\ndashboard benchmark: {r.customers} customers one after another, {r.handoffs} of them asking for a person")
    print(f"  {'event':<18} {'seen':>9} {'p50':>8} {'p95':>8} {'max':>8}  target")
    for event in EVENTS:
        f = r.latency_ms[event]
        verdict = "PASS" if r.targets[f"{event} p95 < 1 s"] else "FAIL"
        seen = f"{r.seen[event]}/{r.expected[event]}"
        print(f"  {event:<18} {seen:>9} {ms(f['p50']):>8} {ms(f['p95']):>8} {ms(f['max']):>8}  p95 < 1 s {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dashboard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=40, help="customers, one after another (default 40)")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between two customers (default 0.5)")
    parser.add_argument("--warmup", type=int, default=3, help="customers first, not counted (default 3)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    state = Path(tempfile.mkdtemp(prefix="dashboard-benchmark-"))
    stack = LocalStack(StackOptions(state_dir=state))
    watches = []
    try:
        print(f"starting the local stack in {state} ...", file=sys.stderr, flush=True)
        stack.start()
        settings.cache_clear()  # the stack exported its environment: read it again
        reset_engine()
        info = stack.info
        simulator = requests.post(
            f"{info['whatsapp_simulator']}/_sim/config", json={"status_webhooks": False}, timeout=5
        )
        simulator.raise_for_status()  # Meta's status webhooks come from the benchmark, timed
        tenant = info["demo"]["tenant_id"]
        client = firestore.Client(project=info["project"])
        seen = Seen()
        watches.append(client.collection(f"tenants/{tenant}/conversations").on_snapshot(seen.on_conversations))
        messages = client.collection_group("messages").where(filter=FieldFilter("tenant_id", "==", tenant))
        watches.append(messages.on_snapshot(seen.on_messages))
        for name, live in seen.live.items():  # told of the current state: listening from here on
            if not live.wait(30):
                raise RuntimeError(f"the {name} listener did not start within 30 s")
        meta = Meta(info)
        phone_base = 628200000000 + uuid.uuid4().int % 10**8 * 100
        print(f"warm-up: {args.warmup} customers (not counted) ...", file=sys.stderr, flush=True)
        play(meta, args.warmup, args.gap, phone_base)
        print(f"{args.customers} customers, {args.gap:g} s apart ...", file=sys.stderr, flush=True)
        caused = play(meta, args.customers, args.gap, phone_base + args.warmup)
        time.sleep(3)  # whatever the listeners have not been told by now counts as not seen
        result = report(caused, seen)
    finally:
        for watch in watches:
            watch.unsubscribe()
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0 if all(result.targets.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
