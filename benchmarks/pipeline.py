"""How fast the whole pipeline answers customers, on this machine.

    .venv/bin/python -m benchmarks.pipeline [--duration 60] [--rate 20] [--warmup 15] [--json PATH]

Starts its own local stack (free ports, temporary state), warms it up with the same load (not
counted), then plays Meta: signed text webhooks at a fixed rate (open loop: a slow system
does not slow the load down), from
customers who each send a few messages 1-3 s apart, so each message should get its own
reply. The WhatsApp simulator is the Graph API. Afterwards PostgreSQL says which inbound
messages each reply answers (`payload["answers"]`, so coalesced replies count correctly)
and the simulator says when each reply reached "WhatsApp".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from emulators.chat import Customer, delivery, derived_bsuid
from emulators.stack import LocalStack, StackOptions
from shared.cloud.settings import settings
from shared.db.engine import reset_engine
from shared.db.models import Conversation, Message
from shared.db.tenancy import tenant_session
from shared.whatsapp.signature import sign

TEXTS = (  # none of them asks for a person: every message should get an AI reply
    "halo kak, selamat pagi",
    "jam berapa buka hari ini?",
    "ada kopi susu gula aren?",
    "berapa harganya yang ukuran besar?",
    "bisa diantar ke Kemang?",
    "oke, terima kasih ya",
    "Hi, do you have oat milk?",
    "what time do you close tonight?",
    "is there wifi?",
    "can I order for pickup at 3pm?",
)
MIN_GAP, MAX_GAP = 1.0, 3.0  # seconds between two messages of one customer
DRAIN = 1.0  # a reply this long after the last delivery still counts towards the sustained rate
SETTLE = 3.0  # quiet time before counting, so a retried (duplicate) send has time to show
TARGET_ACK_P99_MS, TARGET_E2E_P95_S, TARGET_RATE = 50.0, 1.0, 20.0
STAGES = (  # where end-to-end time goes, from the database's transaction start times
    "delivery -> stored (webhook, Pub/Sub push)",
    "stored -> reply written (conversation)",
    "reply written -> at Meta (Cloud Tasks, sender)",
)


@dataclass
class Delivery:
    """One customer message as the benchmark sent it."""

    wamid: str
    phone: str
    conversation: int
    scheduled: float  # seconds after the start of the run
    lag: float = 0.0  # how much later than scheduled it actually left
    sent_at: float = 0.0  # wall clock, comparable with the simulator's record
    ack_ms: float | None = None
    http_status: int | None = None  # None: no answer at all


@dataclass
class Report:
    duration: float
    rate: float
    conversations: int
    conversations_answered: int  # every message answered no later than DRAIN after the load
    messages: int
    acknowledged: int
    webhook_errors: int
    ack_p50_ms: float | None
    ack_p99_ms: float | None
    e2e_p50_s: float | None
    e2e_p95_s: float | None
    offered_msg_per_s: float
    sustained_msg_per_s: float
    conversations_per_s: float
    replies: int
    coalesced_replies: int
    lost: int
    handed_off: int
    duplicated: int
    client_lag_p99_ms: float
    machine_cpu_busy_pct: float | None  # all processes, during the load: is the machine the limit?
    cpu_ms_per_message: dict[str, float] = field(default_factory=dict)  # by part of the stack
    stages_p50_p95_ms: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    reference_loop_ms: tuple[float, float] = (0.0, 0.0)  # machine speed before and after the run
    targets: dict[str, bool] = field(default_factory=dict)


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def plan(duration: float, rate: float, customers: int, rng: random.Random) -> list[tuple[float, int]]:
    """(send offset, conversation) per message: one message every 1/rate s; a conversation's
    messages 1-3 s apart, about rate*duration/customers of them per conversation."""
    total = max(1, round(duration * rate))
    per_conversation = max(1, round(total / max(1, customers)))
    lanes = max(1, round(rate * (MIN_GAP + MAX_GAP) / 2))  # conversations under way at once
    last = [-rng.uniform(0, MAX_GAP) for _ in range(lanes)]
    conversation, sent = list(range(lanes)), [0] * lanes
    next_conversation = lanes
    schedule = []
    for index in range(total):
        now = index / rate
        oldest = min(range(lanes), key=last.__getitem__)
        ready = [lane for lane in range(lanes) if now - last[lane] >= MIN_GAP]
        lane = oldest if not ready or now - last[oldest] >= MAX_GAP - 1 / rate else rng.choice(ready)
        schedule.append((now, conversation[lane]))
        last[lane], sent[lane] = now, sent[lane] + 1
        if sent[lane] == per_conversation:
            conversation[lane], sent[lane] = next_conversation, 0
            next_conversation += 1
    return schedule


class Load:
    """Meta's side: signed deliveries from many threads, one HTTP session per thread."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.webhook_url: str = info["webhook_url"]
        self.app_secret: str = info["app_secret"]
        self.phone_number_id: str = info["demo"]["phone_number_id"]
        self.local = threading.local()

    def deliver(self, item: Delivery, text: str, started: float) -> None:
        session: requests.Session | None = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        customer = Customer(item.phone, derived_bsuid(item.phone), "Pelanggan")
        raw, item.wamid = delivery(self.phone_number_id, customer, text)
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, self.app_secret)}
        item.lag = time.monotonic() - started - item.scheduled
        item.sent_at = time.time()
        before = time.perf_counter()
        try:
            answer = session.post(self.webhook_url, data=raw, headers=headers, timeout=10)
        except requests.RequestException:
            return
        item.ack_ms = (time.perf_counter() - before) * 1000
        item.http_status = answer.status_code

    def run(
        self, schedule: list[tuple[float, int]], phone_base: int, rng: random.Random, threads: int
    ) -> list[Delivery]:
        items = [Delivery("", str(phone_base + conv), conv, offset) for offset, conv in schedule]
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="meta") as pool:
            started = time.monotonic()
            for item in items:
                delay = started + item.scheduled - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self.deliver, item, rng.choice(TEXTS), started)
        return items


@dataclass
class Outcome:
    """What the system did with the deliveries: reply times per message, and the extra sends."""

    reply_times: dict[str, list[float]]  # wamid -> when each reply answering it reached the simulator
    replies: int
    coalesced: int
    orphan_sends: int  # accepted sends that no stored reply accounts for: sent twice
    stored_at: dict[str, float] = field(default_factory=dict)  # wamid -> its transaction began
    reply_written_at: dict[str, float] = field(default_factory=dict)  # wamid -> its reply's began
    # wamid -> of a conversation handed to staff (three "I don't know"s in a row, issue 10): the
    # AI rightly stays silent from then on, so such a message without a reply is not lost.
    handed_off: set[str] = field(default_factory=set)


def observe(info: dict[str, Any], items: list[Delivery]) -> Outcome:
    calls = requests.get(
        f"{info['whatsapp_simulator']}/_sim/calls",
        timeout=30,
        params={"phone_number_id": info["demo"]["phone_number_id"]},
    ).json()["calls"]
    phones = {item.phone for item in items}
    accepted = {
        c["wamid"]: datetime.fromisoformat(c["time"]).timestamp()
        for c in calls
        if c["kind"] == "send" and c["status"] == 200 and (c["body"] or {}).get("to") in phones
    }
    with tenant_session(uuid.UUID(info["demo"]["tenant_id"])) as session:
        columns = (Message.id, Message.direction, Message.wa_message_id, Message.payload, Message.created_at)
        rows = session.execute(select(*columns, Message.conversation_id)).all()
        staffed = set(session.scalars(select(Conversation.id).where(Conversation.status == "handed_off")))
    handed_off = {r.wa_message_id for r in rows if r.direction == "inbound" and r.conversation_id in staffed}
    wamid_of = {str(r.id): r.wa_message_id for r in rows if r.direction == "inbound"}
    stored_at = {r.wa_message_id: r.created_at.timestamp() for r in rows if r.direction == "inbound"}
    reply_written_at: dict[str, float] = {}
    reply_times: dict[str, list[float]] = {}
    replies = coalesced = 0
    # Every send a stored outbound row accounts for: replies, and the notices of handoffs.
    stored_sends = {r.wa_message_id for r in rows if r.direction == "outbound" and r.wa_message_id in accepted}
    for row in rows:
        answers = (row.payload or {}).get("answers") if row.direction == "outbound" else None
        if not answers or row.wa_message_id not in accepted:
            continue
        if (row.payload or {}).get("part", [1])[0] != 1:
            continue  # a long answer's later parts: the same reply, not another one
        replies += 1
        coalesced += len(answers) > 1
        for inbound_id in answers:
            reply_times.setdefault(wamid_of.get(inbound_id, ""), []).append(accepted[row.wa_message_id])
            reply_written_at.setdefault(wamid_of.get(inbound_id, ""), row.created_at.timestamp())
    return Outcome(
        reply_times, replies, coalesced, len(accepted.keys() - stored_sends), stored_at, reply_written_at, handed_off
    )


def wait_for_replies(info: dict[str, Any], items: list[Delivery], grace: float) -> Outcome:
    """Poll until every acknowledged message is answered or `grace` runs out, then settle."""
    wanted = {item.wamid for item in items if item.http_status == 200}
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        seen = observe(info, items)
        if wanted <= seen.reply_times.keys() | seen.handed_off:
            break
        time.sleep(1)
    time.sleep(SETTLE)
    return observe(info, items)


def cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat (Linux only)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # minus idle and iowait


def reference_loop_ms() -> float:
    """This machine's speed right now: the best of three runs of a fixed pure-Python loop.
    Shared virtual machines vary (here, by up to 2x within an hour), so every figure is
    printed next to this one."""
    best = math.inf
    for _ in range(3):
        started, total = time.perf_counter(), 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best * 1000


def cpu_by_part(pids: dict[str, int]) -> dict[str, int]:
    """CPU ticks used so far by each part of the stack: a service and every process under it
    (gunicorn and its workers, a Java emulator and its launcher, PostgreSQL and its backends),
    and this benchmark itself, which plays Meta and the customers (Linux only; else empty)."""
    names = {pid: name for name, pid in pids.items()}
    names[os.getpid()] = "load generator (Meta, customers)"
    processes: dict[int, tuple[int, int, int]] = {}  # pid: parent, process group, ticks
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            processes[int(stat.parent.name)] = (int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]))
        except (OSError, IndexError, ValueError):
            continue
    used: dict[str, int] = {}
    for pid, (_, group, ticks) in processes.items():
        ancestor = pid
        while ancestor not in names and group not in names and ancestor in processes and ancestor > 1:
            ancestor = processes[ancestor][0]
        part = names.get(ancestor) or names.get(group)
        if part:
            used[part] = used.get(part, 0) + ticks
    return used


def busy_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] == before[1]:
        return None
    return 100 * (after[0] - before[0]) / (after[1] - before[1])


def report(
    items: list[Delivery],
    outcome: Outcome,
    duration: float,
    rate: float,
    cpu_busy: float | None,
    cpu_ticks_by_part: dict[str, int],
    reference: tuple[float, float],
) -> Report:
    acked = [item for item in items if item.http_status == 200]
    last = max(item.sent_at for item in items)
    # The schedule's span (each message stands for one interval of it): a reply counts if it
    # came no later than DRAIN after the last delivery; the client's own lag is reported apart.
    window = max(item.scheduled for item in items) - min(item.scheduled for item in items) + 1 / rate
    answered = {item.wamid: min(outcome.reply_times[item.wamid]) for item in acked if item.wamid in outcome.reply_times}
    in_time = {wamid for wamid, at in answered.items() if at <= last + DRAIN}
    per_conversation: dict[int, list[str]] = {}
    for item in items:
        per_conversation.setdefault(item.conversation, []).append(item.wamid)
    whole = sum(1 for wamids in per_conversation.values() if all(w in in_time for w in wamids))
    e2e = [answered[item.wamid] - item.sent_at for item in acked if item.wamid in answered]
    ack = [item.ack_ms for item in items if item.ack_ms is not None]
    twice = sum(len(times) - 1 for wamid, times in outcome.reply_times.items() if wamid and len(times) > 1)
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for item in acked:
        stored, written = outcome.stored_at.get(item.wamid), outcome.reply_written_at.get(item.wamid)
        if stored is None or written is None or item.wamid not in answered:
            continue
        spans = (stored - item.sent_at, written - stored, answered[item.wamid] - written)
        for name, seconds in zip(STAGES, spans, strict=True):
            stages[name].append(1000 * seconds)
    result = Report(
        duration=duration,
        rate=rate,
        conversations=len(per_conversation),
        conversations_answered=whole,
        messages=len(items),
        acknowledged=len(acked),
        webhook_errors=len(items) - len(acked),
        ack_p50_ms=percentile(ack, 50),
        ack_p99_ms=percentile(ack, 99),
        e2e_p50_s=percentile(e2e, 50),
        e2e_p95_s=percentile(e2e, 95),
        offered_msg_per_s=len(acked) / window,
        sustained_msg_per_s=len(in_time) / window,
        conversations_per_s=whole / window,
        replies=outcome.replies,
        coalesced_replies=outcome.coalesced,
        lost=len([item for item in items if item.wamid not in answered and item.wamid not in outcome.handed_off]),
        handed_off=len([item for item in items if item.wamid not in answered and item.wamid in outcome.handed_off]),
        duplicated=twice + outcome.orphan_sends,
        client_lag_p99_ms=(percentile([item.lag for item in items], 99) or 0.0) * 1000,
        machine_cpu_busy_pct=cpu_busy,
        reference_loop_ms=reference,
        stages_p50_p95_ms={name: (percentile(v, 50), percentile(v, 95)) for name, v in stages.items()},
        cpu_ms_per_message={
            part: 1000 * ticks / os.sysconf("SC_CLK_TCK") / max(1, len(acked))
            for part, ticks in sorted(cpu_ticks_by_part.items(), key=lambda item: -item[1])
        },
    )
    result.targets = {
        "ack p99 < 50 ms": result.ack_p99_ms is not None and result.ack_p99_ms < TARGET_ACK_P99_MS,
        "e2e p95 < 1 s": result.e2e_p95_s is not None and result.e2e_p95_s < TARGET_E2E_P95_S,
        ">= 20 msg/s": result.sustained_msg_per_s >= TARGET_RATE,
        "lost 0": result.lost == 0,
        "duplicated 0": result.duplicated == 0,
    }
    return result


def print_report(r: Report, workers: int) -> None:
    def ms(value: float | None, scale: float = 1.0) -> str:
        return "-" if value is None else f"{value * scale:.1f} ms"

    def verdict(name: str) -> str:
        return "PASS" if r.targets[name] else "FAIL"

    rows = [
        ("webhook ack p50", ms(r.ack_p50_ms), "", ""),
        ("webhook ack p99", ms(r.ack_p99_ms), "< 50 ms", verdict("ack p99 < 50 ms")),
        ("end-to-end p50", ms(r.e2e_p50_s, 1000), "", ""),
        ("end-to-end p95", ms(r.e2e_p95_s, 1000), "< 1 s", verdict("e2e p95 < 1 s")),
        ("messages sent / acknowledged", f"{r.messages} / {r.acknowledged}", "", ""),
        ("offered rate", f"{r.offered_msg_per_s:.2f} msg/s", "", ""),
        (
            f"sustained rate (answered <= {DRAIN:g} s after the load)",
            f"{r.sustained_msg_per_s:.2f} msg/s",
            ">= 20 msg/s",
            verdict(">= 20 msg/s"),
        ),
        ("conversations fully answered / started", f"{r.conversations_answered} / {r.conversations}", "", ""),
        ("conversations per second (fully answered)", f"{r.conversations_per_s:.2f}/s", "", ""),
        ("replies (of which coalesced)", f"{r.replies} ({r.coalesced_replies})", "", ""),
        ("lost replies (incl. webhook errors)", f"{r.lost} ({r.webhook_errors})", "0", verdict("lost 0")),
        ("unanswered: handed to staff after three fallbacks", str(r.handed_off), "", ""),
        ("duplicated replies", str(r.duplicated), "0", verdict("duplicated 0")),
        ("client send lag p99", f"{r.client_lag_p99_ms:.1f} ms", "", ""),
        (
            "machine CPU busy during the load",
            "-" if r.machine_cpu_busy_pct is None else f"{r.machine_cpu_busy_pct:.0f} %",
            "",
            "",
        ),
    ]
    rows.append(
        (
            "machine speed: reference loop before / after (lower: faster)",
            f"{ms(r.reference_loop_ms[0])} / {ms(r.reference_loop_ms[1])}",
            "",
            "",
        )
    )
    for name, (p50, p95) in r.stages_p50_p95_ms.items():
        rows.append((f"  {name} p50 / p95", f"{ms(p50)} / {ms(p95)}", "", ""))
    if r.cpu_ms_per_message:
        rows.append(("CPU per customer message, all parts", ms(sum(r.cpu_ms_per_message.values())), "", ""))
        rows += [(f"  {part}", ms(value), "", "") for part, value in r.cpu_ms_per_message.items()]
    print(
        f"\npipeline benchmark: {r.duration:g} s at {r.rate:g} msg/s, {r.conversations} conversations, "
        f"function host {workers} gunicorn workers"
    )
    for name, value, target, result in rows:
        print(f"  {name:52} {value:>18}  {target:>11}  {result}")
    if r.client_lag_p99_ms > 100:
        print("  warning: the client fell behind its schedule; the offered load was lower than asked")
    print("targets: " + ", ".join(f"{name} [{'PASS' if ok else 'FAIL'}]" for name, ok in r.targets.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--rate", type=float, default=20.0, help="customer messages per second (default 20)")
    parser.add_argument("--customers", type=int, default=200, help="conversations over the run (default 200)")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds of uncounted load first (default 15)")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds to wait for late replies")
    parser.add_argument("--function-workers", type=int, default=2, help="gunicorn workers (scripts/dev: 2)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the schedule and texts")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep-state", action="store_true", help="keep the stack's folder (logs) afterwards")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    state = Path(tempfile.mkdtemp(prefix="pipeline-benchmark-"))
    stack = LocalStack(StackOptions(state_dir=state, function_workers=args.function_workers))
    try:
        print(f"starting the local stack in {state} ...", file=sys.stderr, flush=True)
        stack.start()
        settings.cache_clear()  # the stack exported its environment: read it again
        reset_engine()
        load, threads = Load(stack.info), min(64, max(8, int(args.rate)))
        # Warm up at the same rate first (not counted), as production instances are warm: imports,
        # pools, prepared statements, the Java emulators' compiled code.
        print(f"warm-up: {args.warmup:g} s at {args.rate:g} msg/s (not counted) ...", file=sys.stderr, flush=True)
        warm_customers = max(1, round(args.customers * args.warmup / args.duration))
        warm = load.run(plan(args.warmup, args.rate, warm_customers, rng), 628990000000, rng, threads)
        wait_for_replies(stack.info, warm, args.grace)
        print(f"load: {args.duration:g} s at {args.rate:g} msg/s ...", file=sys.stderr, flush=True)
        schedule = plan(args.duration, args.rate, args.customers, rng)
        speed_before = reference_loop_ms()
        pids = stack.info["pids"]
        before, parts_before = cpu_ticks(), cpu_by_part(pids)
        items = load.run(schedule, 628100000000 + rng.randrange(10**8), rng, threads)
        cpu_busy, parts_after = busy_pct(before, cpu_ticks()), cpu_by_part(pids)
        parts = {part: ticks - parts_before.get(part, 0) for part, ticks in parts_after.items()}
        print("waiting for the last replies ...", file=sys.stderr, flush=True)
        outcome = wait_for_replies(stack.info, items, args.grace)
        speed = (speed_before, reference_loop_ms())
        result = report(items, outcome, args.duration, args.rate, cpu_busy, parts, speed)
    finally:
        stack.stop()
        if args.keep_state:
            print(f"state and logs kept in {state}", file=sys.stderr)
        else:
            shutil.rmtree(state, ignore_errors=True)
    print_report(result, args.function_workers)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0 if all(result.targets.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
