"""`scripts/dev` itself: up with the demo tenant, everything answers, Ctrl-C leaves nothing
listening, a second start keeps the data and --reset starts clean."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.processes import port_is_open
from emulators.stack import DEV_PORTS
from shared.deployment import REPO_ROOT
from tests.conftest import fresh_shell_environment

pytestmark = pytest.mark.skipif(
    any(port_is_open(port) for port in DEV_PORTS.values()),
    reason="a scripts/dev is already running on this machine",
)


def run_dev(state: Path, *extra: str) -> tuple[dict[str, Any], float]:
    """Start scripts/dev's program, use it, stop it with Ctrl-C; return dev.json and start time."""
    env = fresh_shell_environment()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators.dev", "--state-dir", str(state), *extra],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = []
    try:
        for line in process.stdout:
            output.append(line)
            if "Ctrl-C stops everything" in line:
                break
        else:
            pytest.fail("scripts/dev exited before it was ready:\n" + "".join(output))
        ready_after = time.monotonic() - started
        info = json.loads((state / "dev.json").read_text())
        for name, url in info["health"].items():
            assert requests.get(url, timeout=5).status_code == 200, name
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    assert process.returncode == 0, "".join(output)
    return info, ready_after


def test_dev_starts_stops_cleanly_keeps_data_and_resets(tmp_path: Path) -> None:
    state = tmp_path / "local"
    first, seconds = run_dev(state)
    assert seconds < 60
    for pid in first["pids"].values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not any(port_is_open(port) for port in DEV_PORTS.values())

    second, _ = run_dev(state)
    assert second["demo"]["tenant_id"] == first["demo"]["tenant_id"]  # the data survived
    assert second["app_secret"] == first["app_secret"]

    third, _ = run_dev(state, "--reset")
    assert third["demo"]["tenant_id"] != first["demo"]["tenant_id"]
