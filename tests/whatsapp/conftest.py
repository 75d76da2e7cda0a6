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
from werkzeug.serving import make_server

from emulators.whatsapp_simulator import Simulator, create_app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"
_POLL_SECONDS = 0.02  # how soon a server notices shutdown(); the default 0.5 s slows every test


def load_payload(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return payload


@pytest.fixture
def serve_wsgi() -> Iterator[Callable[[Any], str]]:
    """Start any WSGI app on 127.0.0.1 in a thread; returns its base URL."""
    servers = []

    def start(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, args=(_POLL_SECONDS,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


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
    thread = threading.Thread(target=server.serve_forever, args=(_POLL_SECONDS,), daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
