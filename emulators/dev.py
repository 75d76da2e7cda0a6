"""`scripts/dev`: start the local stack, print where everything is, stop it all on Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from emulators.processes import port_is_open
from emulators.services import MissingTool
from emulators.stack import DEV_PORTS, LocalStack, StackOptions
from shared.cloud.declaration import REPO_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/dev", description=__doc__)
    parser.add_argument("--reset", action="store_true", help="delete the local state (.local/) first")
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".local")
    args = parser.parse_args(argv)

    busy = [f"{name} ({port})" for name, port in DEV_PORTS.items() if port_is_open(port)]
    if busy:
        print(f"These ports are in use, is another scripts/dev running? {', '.join(busy)}", file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    started = time.monotonic()
    stack = LocalStack(StackOptions(state_dir=args.state_dir, ports=dict(DEV_PORTS), reset=args.reset))
    try:
        stack.start()
    except MissingTool as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        _print_summary(stack, time.monotonic() - started)
        while not stop.wait(1):
            dead = [s.name for s in stack.services if s.process.poll() is not None]
            if dead:
                print(f"stopped unexpectedly: {', '.join(dead)}; see {stack.info['logs']}", file=sys.stderr)
                return 1
        return 0
    finally:
        print("\nstopping...", file=sys.stderr)
        stack.stop()
        print("stopped.", file=sys.stderr)


def _print_summary(stack: LocalStack, seconds: float) -> None:
    info = stack.info
    lines = [f"whatsapp-crm is running locally (ready in {seconds:.1f}s). Ctrl-C stops everything.", ""]
    lines += [f"  {name:22} {url}" for name, url in info["functions"].items()]
    lines += [
        "",
        f"  Pub/Sub emulator       {info['pubsub_emulator_host']}",
        f"  Firestore emulator     {info['firestore_emulator_host']}",
        f"  Storage emulator       {info['storage_emulator_host']}  (bucket {info['documents_bucket']})",
        f"  Auth emulator          {info['firebase_auth_emulator_host']}",
        f"  Cloud Tasks emulator   {info['cloud_tasks_emulator_host']} (gRPC), {info['cloud_tasks_url']} (REST)",
        f"  Scheduler control      {info['scheduler_url']}",
        f"  WhatsApp Graph API     {info['whatsapp_graph_api_url']}",
        f"  Webhook (Meta's side)  {info['webhook_url']}",
        "  PostgreSQL             " + _hide_password(info["database_url"]),
    ]
    demo = info.get("demo") or {}
    if demo:
        lines += [
            "",
            f"  Demo tenant            {demo.get('tenant_name')} ({demo.get('tenant_id')})",
            f"  Demo outlet            phone_number_id {demo.get('phone_number_id')}",
            "  Staff logins           " + ", ".join(f"{u['email']} ({u['role']})" for u in demo.get("users", [])),
        ]
    lines += [
        "",
        f"  Everything above, machine-readable: {Path(info['state_dir']) / 'dev.json'}",
        f"  Logs: {info['logs']}",
        "  Chat as a customer:    scripts/chat",
    ]
    print("\n".join(lines), flush=True)


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    raise SystemExit(main())
