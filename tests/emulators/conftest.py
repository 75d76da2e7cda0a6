"""Loopback HTTP receivers that stand in for the functions, and a real storage emulator."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from emulators.processes import Service
from emulators.storage import start_storage_emulator


class Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


class Started:
    """`started(thing)` starts an emulator part and returns it; each is stopped after the test."""

    def __init__(self) -> None:
        self.running: list[Startable] = []

    def __call__(self, thing: S) -> S:
        thing.start()
        self.running.append(thing)
        return thing


@contextmanager
def stops_on_sigterm(service: Service) -> Iterator[Service]:
    """Run the block against a command-line emulator, then SIGTERM it: it must exit by itself
    with status 0 (and is stopped by PID whatever happens)."""
    try:
        yield service
    finally:
        service.process.send_signal(signal.SIGTERM)
        try:
            returncode = service.process.wait(10)
        finally:
            service.stop()
    assert returncode == 0


@pytest.fixture
def started() -> Iterator[Started]:
    parts = Started()
    yield parts
    for thing in parts.running:
        thing.stop()


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    time: float  # time.time() when the request arrived


class Receiver:
    """Records every request; answers with `statuses` in turn, then with `default`."""

    def __init__(self, statuses: tuple[int, ...], default: int, delay: float) -> None:
        self.requests: list[Received] = []
        self._statuses = list(statuses)
        self._default = default
        self._delay = delay
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until `count` requests arrived; fail the test if they do not."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                pytest.fail(f"expected {count} requests within {timeout}s, got {len(self.requests)}")
            return list(self.requests)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, received: Received) -> int:
        with self._changed:
            self.requests.append(received)
            self._changed.notify_all()
            return self._statuses.pop(0) if self._statuses else self._default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._answer(Received(self.command, self.path, headers, body, arrived))
                time.sleep(receiver._delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output quiet

        return Handler


MakeReceiver = Callable[..., Receiver]


@pytest.fixture
def make_receiver() -> Iterator[MakeReceiver]:
    """`make_receiver(503, 503, default=200, delay=0.0)` starts a receiver on 127.0.0.1."""
    receivers: list[Receiver] = []

    def make(*statuses: int, default: int = 200, delay: float = 0.0) -> Receiver:
        receiver = Receiver(statuses, default, delay)
        receivers.append(receiver)
        return receiver

    yield make
    for receiver in receivers:
        receiver.stop()


@pytest.fixture(scope="session")
def storage_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root: Path = tmp_path_factory.mktemp("storage")
    service = start_storage_emulator(root / "data", root / "logs")
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def storage_client(storage_emulator: Service) -> storage.Client:
    return storage.Client(
        project="whatsapp-crm-test",
        client_options={"api_endpoint": storage_emulator.url},
        credentials=AnonymousCredentials(),
    )
