"""Local servers for the WhatsApp protocol tests: the Graph simulator and a webhook receiver.

Both bind to 127.0.0.1 on a free port, run in a thread of the test process, and are shut down
when the test ends.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from emulators.whatsapp_simulator import Simulator, create_app
from tests.conftest import POLL_SECONDS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"


def load_payload(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return payload


@dataclass
class RunningSimulator:
    url: str
    app: Simulator


@pytest.fixture
def simulator(serve_wsgi: Callable[[Any], str]) -> RunningSimulator:
    app = create_app(status_delay=0.01)
    return RunningSimulator(serve_wsgi(app), app)


@dataclass
class ReceivedWebhook:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """Collects every POST it gets, like our webhook function would, and always answers 200."""

    url: str
    received: list[ReceivedWebhook] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedWebhook]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.arrived:
                receiver.received.append(ReceivedWebhook(dict(self.headers.items()), body))
                receiver.arrived.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/whatsapp-webhook")
    thread = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
