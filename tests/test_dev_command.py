"""`scripts/dev` itself: up with the demo tenant, everything answers, Ctrl-C leaves nothing
listening, a second start keeps the data, --reset starts clean, and WHATSAPP_GRAPH_API_URL
set beforehand sends the replies there instead of to the built-in simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.processes import port_is_open
from emulators.stack import DEV_PORTS
from emulators.whatsapp_simulator import create_app
from shared.cloud.declaration import REPO_ROOT
from tests.conftest import fresh_shell_environment
from tests.pipeline.driver import Meta, new_customer, wait_for

pytestmark = pytest.mark.skipif(
    any(port_is_open(port) for port in DEV_PORTS.values()),
    reason="a scripts/dev is already running on this machine",
)


def run_dev(
    state: Path,
    *extra: str,
    env_extra: dict[str, str] | None = None,
    use: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], float]:
    """Start scripts/dev's program, use it, stop it with Ctrl-C; return dev.json and start time."""
    env = {**fresh_shell_environment(), **(env_extra or {})}
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
        if use is not None:
            use(info)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    assert process.returncode == 0, "".join(output)
    return info, ready_after


def test_dev_starts_stops_cleanly_keeps_data_and_resets(tmp_path: Path, serve_wsgi: Callable[[Any], str]) -> None:
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

    # Meta's side elsewhere: a Graph API of the developer's own, named before scripts/dev starts.
    graph_url = serve_wsgi(create_app(status_delay=0.01))

    def say_hello(info: dict[str, Any]) -> None:
        assert info["whatsapp_graph_api_url"] == graph_url
        assert "whatsapp-simulator" not in info["pids"]
        assert not port_is_open(DEV_PORTS["whatsapp"])  # the built-in simulator did not start
        meta = Meta(info)
        customer = new_customer()
        meta.say(customer, "hello")
        [reply] = wait_for(lambda: meta.sends_to(customer) or None, timeout=30)
        assert reply["body"]["text"]["body"]

    third, _ = run_dev(state, "--reset", env_extra={"WHATSAPP_GRAPH_API_URL": graph_url}, use=say_hello)
    assert third["demo"]["tenant_id"] != first["demo"]["tenant_id"]
