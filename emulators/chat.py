"""`scripts/chat`: be a customer of the demo outlet, in a terminal, against the running
`scripts/dev`. Every line typed goes in as a signed webhook delivery, exactly as Meta would
send it; what the system answers is read back from the WhatsApp simulator's call record.

    scripts/chat                                  talk interactively (Ctrl-D or Ctrl-C ends)
    scripts/chat --no-phone --name Sari           a username user: WhatsApp withholds the number
    scripts/chat --say hello --say "saya mau bicara dengan manusia" --wait 10
                                                  send, wait for each reply, exit 0 if each got one
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from shared.cloud.declaration import REPO_ROOT
from shared.conversations.handoff import HANDOFF_NOTICE
from shared.whatsapp.signature import sign

DEFAULT_PHONE = "6281234567890"
HANDOFF_GRACE = 3.0  # after a handoff notice, silence is the expected answer
QUIET = 1.0  # how long --say keeps listening after the last reply, to catch a duplicate
POLL = 0.2
PROMPT = "you> "


class ChatError(RuntimeError):
    """The local system is not there or refused us; the message says what to do."""


@dataclass(frozen=True)
class Customer:
    phone: str
    bsuid: str
    name: str
    withhold_phone: bool = False  # a username user: WhatsApp sends only the BSUID

    def addressed(self, send: dict[str, Any]) -> bool:
        """Whether a Graph send call goes to this customer. By either identity: a business that
        learnt the number earlier still sends to it when the customer has a username now."""
        body = send.get("body") or {}
        return body.get("to") == self.phone or body.get("recipient") == self.bsuid


@dataclass(frozen=True)
class Event:
    kind: str  # "reply" | "read"
    text: str


def derived_bsuid(phone: str) -> str:
    """A stable BSUID per phone, so the same customer comes back to the same conversation."""
    return "ID." + str(int(hashlib.sha256(phone.encode()).hexdigest(), 16))[:18]


def load_info(state_dir: Path) -> dict[str, Any]:
    path = state_dir / "dev.json"
    if not path.exists():
        raise ChatError(f"{path} not found: start scripts/dev first")
    info: dict[str, Any] = json.loads(path.read_text())
    if not info.get("whatsapp_simulator") or not (info.get("demo") or {}).get("phone_number_id"):
        raise ChatError("scripts/chat needs the WhatsApp simulator and the demo outlet of scripts/dev")
    return info


def delivery(phone_number_id: str, customer: Customer, text: str) -> tuple[bytes, str]:
    """The raw body Meta posts for one text message, and the message's wamid."""
    wamid = f"wamid.CHAT{uuid.uuid4().hex.upper()}"
    contact: dict[str, Any] = {"profile": {"name": customer.name}, "user_id": customer.bsuid}
    message: dict[str, Any] = {
        "from_user_id": customer.bsuid,
        "id": wamid,
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": text},
    }
    if not customer.withhold_phone:
        contact["wa_id"] = message["from"] = customer.phone
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "6281110002000",
                                "phone_number_id": phone_number_id,
                            },
                            "contacts": [contact],
                            "messages": [message],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload).encode(), wamid


class Chat:
    """One customer's side of the conversation: deliver lines, collect what came back."""

    def __init__(self, info: dict[str, Any], customer: Customer) -> None:
        self.customer = customer
        self.webhook_url: str = info["webhook_url"]
        self.app_secret: str = info["app_secret"]
        self.phone_number_id: str = info["demo"]["phone_number_id"]
        self.calls_url = f"{info['whatsapp_simulator']}/_sim/calls"
        self.http = requests.Session()
        self.sent: set[str] = set()
        self.cursor = len(self._calls())  # what happened before this chat is not shown again

    def say(self, text: str) -> str:
        raw, wamid = delivery(self.phone_number_id, self.customer, text)
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, self.app_secret)}
        try:
            answer = self.http.post(self.webhook_url, data=raw, headers=headers, timeout=10)
        except requests.ConnectionError as exc:
            raise ChatError(f"no answer from {self.webhook_url}: is scripts/dev running?") from exc
        if answer.status_code != 200:
            raise ChatError(f"the webhook answered HTTP {answer.status_code}: {answer.text[:200]}")
        self.sent.add(wamid)
        return wamid

    def poll(self) -> list[Event]:
        """New replies to this customer and read receipts of their messages, oldest first."""
        calls = self._calls()
        if len(calls) < self.cursor:  # someone cleared the record
            self.cursor = 0
        fresh, self.cursor = calls[self.cursor :], len(calls)
        events = []
        for call in (c for c in fresh if c["status"] == 200):
            body = call.get("body") or {}
            if call["kind"] == "send" and self.customer.addressed(call):
                events.append(Event("reply", _text_of(body)))
            elif call["kind"] == "mark_read" and body.get("message_id") in self.sent:
                events.append(Event("read", "✓✓ read"))
        return events

    def _calls(self) -> list[dict[str, Any]]:
        try:
            answer = self.http.get(self.calls_url, params={"phone_number_id": self.phone_number_id}, timeout=10)
            answer.raise_for_status()
        except requests.RequestException as exc:
            raise ChatError(f"the WhatsApp simulator at {self.calls_url} does not answer: {exc}") from exc
        calls: list[dict[str, Any]] = answer.json()["calls"]
        return calls


def _text_of(body: dict[str, Any]) -> str:
    kind = body.get("type", "?")
    content = body.get(kind)
    if kind == "text" and isinstance(content, dict):
        return str(content.get("body", ""))
    return f"[{kind}] {json.dumps(content, ensure_ascii=False)}"


def is_handoff_notice(text: str) -> bool:
    return text in HANDOFF_NOTICE.values()


def show(event: Event, business: str) -> None:
    print(f"  {event.text}" if event.kind == "read" else f"{business}> {event.text}", flush=True)


def converse(chat: Chat, lines: list[str], wait: float, business: str) -> int:
    """--say: each line, then its reply. 0 when every line got exactly one reply (or, once
    handed off, the silence of a conversation waiting for an agent)."""
    failures = 0
    handed_off = False
    for index, line in enumerate(lines):
        print(f"{PROMPT}{line}", flush=True)
        chat.say(line)
        # A duplicate of a reply shows up in the next line's wait; after the last line, linger.
        linger = QUIET if index == len(lines) - 1 else 0.0
        replies = await_replies(chat, HANDOFF_GRACE if handed_off else wait, linger, business)
        handed_off = handed_off or any(is_handoff_notice(text) for text in replies)
        if not replies and handed_off:
            print("  (handed off: waiting for a human agent)", flush=True)
        elif len(replies) != 1:
            failures += 1
            print(f"  (expected one reply, got {len(replies)})", flush=True)
    return 1 if failures else 0


def await_replies(chat: Chat, timeout: float, linger: float, business: str) -> list[str]:
    """Show events until the first reply (or `timeout`), then for `linger` seconds more."""
    replies: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        for event in chat.poll():
            show(event, business)
            if event.kind == "reply":
                if not replies:
                    deadline = time.monotonic() + linger
                replies.append(event.text)
        if time.monotonic() >= deadline:
            return replies
        time.sleep(POLL)


def interactive(chat: Chat, business: str) -> int:
    """Read lines from the terminal; a background poller prints replies as they arrive."""
    stop = threading.Event()

    def listen() -> None:
        while not stop.wait(POLL):
            try:
                events = chat.poll()
            except ChatError as exc:
                print(f"\n{exc}", file=sys.stderr, flush=True)
                continue
            for event in events:
                print("\r", end="")
                show(event, business)
            if events:
                print(PROMPT, end="", flush=True)

    listener = threading.Thread(target=listen, name="chat-listener", daemon=True)
    who = f"{chat.customer.bsuid} (number withheld)" if chat.customer.withhold_phone else chat.customer.phone
    print(f"Chatting with {business} as {chat.customer.name}, {who}. Ctrl-D ends.", flush=True)
    listener.start()
    try:
        while True:
            line = input(PROMPT).strip()
            if line:
                chat.say(line)
    except (EOFError, KeyboardInterrupt):
        print()
        return 0
    finally:
        stop.set()
        listener.join(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/chat", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=REPO_ROOT / ".local",
        help="where scripts/dev wrote dev.json (default .local/)",
    )
    parser.add_argument("--phone", default=DEFAULT_PHONE, help="the customer's number (default %(default)s)")
    parser.add_argument("--bsuid", help="the customer's business-scoped user id (default: from --phone)")
    parser.add_argument("--no-phone", action="store_true", help="a username user: only the BSUID is sent")
    parser.add_argument("--name", default="Budi", help="the customer's WhatsApp profile name")
    parser.add_argument("--say", action="append", metavar="TEXT", help="send this line (repeatable); no prompt")
    parser.add_argument("--wait", type=float, default=15.0, help="seconds to wait for each reply with --say")
    args = parser.parse_args(argv)

    customer = Customer(args.phone, args.bsuid or derived_bsuid(args.phone), args.name, args.no_phone)
    try:
        info = load_info(args.state_dir)
        business = (info.get("demo") or {}).get("tenant_name") or "business"
        chat = Chat(info, customer)
        return converse(chat, args.say, args.wait, business) if args.say else interactive(chat, business)
    except ChatError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
