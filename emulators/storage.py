"""The local Cloud Storage: the `gcp-storage-emulator` package as a child process, and its buckets.

The emulator keeps objects on disk under `data_dir` (it rewrites its index on every change),
so uploads survive restarts. It stops on SIGTERM without losing anything, which is also the
one signal that works when its parent was started with SIGINT ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import requests

from emulators.processes import Service, free_port, http_answers, start


def start_storage_emulator(data_dir: Path, log_dir: Path, port: int | None = None) -> Service:
    """Start the emulator on 127.0.0.1 with its data in `data_dir`; `.url` is its API endpoint."""
    data_dir = data_dir.resolve()  # the emulator refuses relative data directories
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "gcp_storage_emulator",
        "--data-dir",
        str(data_dir),
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--quiet",  # otherwise it logs every request, and the event watcher polls twice a second
    ]
    return start(
        "storage",
        command,
        log_dir=log_dir,
        ready=lambda: http_answers(f"{url}/storage/v1/b"),
        timeout=30,
        url=url,
    )


def ensure_buckets(storage_url: str, names: Iterable[str], project: str = "local") -> None:
    """Create the buckets that do not exist yet; the emulator answers 409 for those that do."""
    for name in names:
        response = requests.post(
            f"{storage_url}/storage/v1/b",
            params={"project": project},
            json={"name": name},
            timeout=10,
        )
        if response.status_code != 409:
            response.raise_for_status()
