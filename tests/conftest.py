"""Session-wide real services for the test suite: a real PostgreSQL to begin with.

TEST_POSTGRES_URL (a superuser URL) points the suite at a server you run; otherwise an
embedded PostgreSQL is started in a temporary folder and stopped by PID at the end.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from emulators.postgres import start_postgres
from emulators.stack import LocalStack, StackOptions

POLL_SECONDS = 0.02  # how soon a server notices shutdown(); the default 0.5 s slows every test


def fresh_shell_environment() -> dict[str, str]:
    """os.environ without what the suite's own stack exported (emulator hosts, database URLs,
    the Graph API URL): what a developer's shell has when they run a command of ours."""
    exported = {"DATABASE_URL", "DATABASE_ADMIN_URL", "WHATSAPP_GRAPH_API_URL"}
    return {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST") and k not in exported}


@pytest.fixture(scope="session")
def postgres_superuser_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        yield url
        return
    root: Path = tmp_path_factory.mktemp("postgres")
    service = start_postgres(root / "data", root / "logs")
    try:
        yield service.url
    finally:
        service.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local system, as scripts/dev runs it, on free ports in a temporary folder.

    Started once for the session. It exports its environment (emulator hosts, DATABASE_URL,
    secrets) into this process so tests reach the same services through the same clients.
    """
    from shared.cloud.settings import settings
    from shared.db.engine import reset_engine

    state = tmp_path_factory.mktemp("stack")
    local = LocalStack(StackOptions(state_dir=state))
    local.start()
    try:
        yield local
    finally:
        local.stop()
        settings.cache_clear()
        reset_engine()


@pytest.fixture
def serve_wsgi() -> Iterator[Callable[[Any], str]]:
    """Start any WSGI app on 127.0.0.1 in a thread; returns its base URL."""
    servers = []

    def start(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
