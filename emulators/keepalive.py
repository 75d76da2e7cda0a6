"""HTTP on kept-alive connections for the local emulators: a client side (`Connections`) and a
werkzeug request handler (`KeepAliveRequestHandler`). Opening a TCP connection per call, as
requests with a new session and werkzeug's own handler do, cost the emulators more CPU than
the work they emulate."""

from __future__ import annotations

import http.client
import io
import logging
import select
import threading
from typing import Any
from urllib.parse import urlsplit

from werkzeug.exceptions import InternalServerError
from werkzeug.serving import WSGIRequestHandler, make_server

logger = logging.getLogger(__name__)


class Connections(threading.local):
    """This thread's kept-alive HTTP connections, one per host: opening a TCP connection (and
    going through requests) for each call costs more CPU than the rest of an emulated delivery."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float) -> int:
        """Send, read the whole answer and return its status. A connection the host closed while
        idle is replaced before sending or, if it closes just as the request goes, by sending again."""
        parts = urlsplit(url)
        connection = self.open.get((parts.scheme, parts.netloc))
        if connection is None:
            kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            connection = self.open[parts.scheme, parts.netloc] = kind(parts.hostname or "", parts.port)
        elif connection.sock is not None and select.select([connection.sock], [], [], 0)[0]:
            connection.close()  # readable while idle: the host hung up
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        reused = connection.sock is not None
        try:
            return _exchange(connection, method, path, body, headers)
        except (ConnectionResetError, BrokenPipeError):  # http.client.RemoteDisconnected is one
            if not reused:
                raise
        return _exchange(connection, method, path, body, headers)


def _exchange(
    connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> int:
    try:
        connection.request(method, path, body, headers)
        answer = connection.getresponse()
        answer.read()
    except BaseException:
        connection.close()  # half-used: the next request must start afresh
        raise
    return answer.status


class KeepAliveRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, answering on a kept-alive connection. Its own closes the
    connection after every answer, so each call pays a TCP handshake and a new thread, which
    cost more CPU than our handlers (measured: 0.67 ms of CPU a request, against 0.40).
    Request bodies are read whole and answers buffered, which is what lets the connection carry
    the next request safely; fine for the small JSON calls emulators get."""

    def run_wsgi(self) -> None:
        environ = self.make_environ()
        if environ.get("wsgi.input_terminated"):  # chunked: make_environ set up the decoding
            body = environ["wsgi.input"].read()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        started: list[Any] = []  # [status, headers] once the app called start_response
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return written.append

        try:
            chunks = self.server.app(environ, start_response)
            try:
                data = b"".join(chunks)
            finally:
                getattr(chunks, "close", lambda: None)()
            data = b"".join(written) + data
        except Exception:
            logger.exception("error on request %s %s", self.command, self.path)
            data = b"".join(InternalServerError()(environ, start_response))
        status, headers = started
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("connection", "transfer-encoding"):
                self.send_header(name, value)
        if not any(name.lower() == "content-length" for name, _ in headers):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def serve(app: Any, port: int, what: str) -> None:
    """Serve a WSGI app on 127.0.0.1:`port` with kept-alive connections until interrupted."""
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=KeepAliveRequestHandler)
    logger.info("%s listening on http://127.0.0.1:%s", what, server.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
