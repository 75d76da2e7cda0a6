"""Start local servers as child processes, wait until they answer, stop them by PID.

Every server binds to 127.0.0.1. Each process gets its own process group so that stopping
it also stops what it spawned (the Java emulators start a JVM under a shell script).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class StartupError(RuntimeError):
    """A local server did not come up; the message says which and where its log is."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URLs we built
            return True
    except urllib.error.HTTPError:
        return True  # it answered, even if not with 200
    except OSError:
        return False


@dataclass
class Service:
    """One running child process and how to reach it."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, self.stop_signal)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def start(
    name: str,
    command: Sequence[str],
    *,
    log_dir: Path,
    ready: Callable[[], bool],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    url: str = "",
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
) -> Service:
    """Start `command`, wait until `ready()` is true, and return the running service."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        list(command),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd or Path(__file__).resolve().parent.parent,
        start_new_session=True,
        user=user,
    )
    log.close()
    service = Service(name=name, process=process, log_path=log_path, url=url, stop_signal=stop_signal)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartupError(f"{name} exited with code {process.returncode}; {_tail(log_path)}")
        if ready():
            return service
        time.sleep(0.1)
    service.stop()
    raise StartupError(f"{name} did not become ready within {timeout:.0f}s; {_tail(log_path)}")


def _tail(log_path: Path, lines: int = 5) -> str:
    """The end of a service's log, so a failed start says why even after its directory is gone."""
    try:
        last = log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        last = []
    return f"see {log_path}" + "".join(f"\n    {line}" for line in last)
