"""The local runtime as a developer meets it: everything up, wired as in production,
findable through dev.json, logging JSON, keeping secrets out of logs."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from sqlalchemy import select

from emulators.stack import REQUEST_PATH, LocalStack, autogroup_nice, background_nice
from shared.cloud.declaration import declaration
from shared.db.models import Document
from shared.db.tenancy import tenant_session
from tests.pipeline.driver import Meta, new_customer, wait_for


def test_dev_json_says_where_everything_is(stack: LocalStack) -> None:
    info = json.loads((stack.options.state_dir / "dev.json").read_text())
    for key in (
        "functions",
        "webhook_url",
        "webhook_verify_token",
        "app_secret",
        "database_url",
        "pubsub_emulator_host",
        "firestore_emulator_host",
        "storage_emulator_host",
        "firebase_auth_emulator_host",
        "cloud_tasks_emulator_host",
        "cloud_tasks_url",
        "whatsapp_graph_api_url",
    ):
        assert info[key], key
    assert set(info["functions"]) == set(declaration().functions)
    assert info["demo"]["phone_number_id"]
    uuid.UUID(info["demo"]["tenant_id"])
    assert {u["role"] for u in info["demo"]["users"]} == {"owner", "admin", "agent", "viewer"}
    for name, pid in info["pids"].items():
        os.kill(pid, 0)  # raises if the process is gone
        assert name


def test_function_host_lists_functions_and_answers_unknown_paths_with_404(stack: LocalStack) -> None:
    base = stack.info["functions_base_url"]
    assert set(requests.get(base, timeout=5).json()["functions"]) == set(declaration().functions)
    assert requests.get(f"{base}/no-such-function", timeout=5).status_code == 404


def test_the_webhook_has_a_host_of_its_own_serving_only_it(stack: LocalStack) -> None:
    """Like its own Cloud Run service: conversation work elsewhere never delays its answer."""
    webhook_url = stack.info["webhook_url"]
    own_host = webhook_url.rsplit("/", 1)[0]
    assert own_host != stack.info["functions_base_url"]
    assert requests.get(own_host, timeout=5).json() == {"functions": ["whatsapp-webhook"]}
    assert requests.get(f"{webhook_url}/health", timeout=5).status_code == 200
    assert requests.get(f"{own_host}/conversation", timeout=5).status_code == 404


def _upload(stack: LocalStack, name: str, data: bytes, content_type: str) -> None:
    client = storage.Client(project=stack.info["project"], credentials=AnonymousCredentials())
    client.bucket(stack.info["documents_bucket"]).blob(name).upload_from_string(data, content_type=content_type)


def _documents(tenant: uuid.UUID) -> dict[str, Document]:
    with tenant_session(tenant) as session:
        return {d.object_name: d for d in session.scalars(select(Document))}


def test_upload_to_the_bucket_triggers_document_registration(stack: LocalStack) -> None:
    demo = stack.info["demo"]
    tenant = uuid.UUID(demo["tenant_id"])
    prefix = f"tenants/{demo['tenant_id']}/knowledge/{demo['knowledge_base_id']}"
    wait_for(lambda: any(n.endswith("menu-dan-faq.md") for n in _documents(tenant)))  # seeded at startup
    _upload(stack, f"{prefix}/promo.txt", b"Promo: beli 2 gratis 1 setiap Jumat.", "text/plain")
    _upload(stack, f"{prefix}/logo.png", b"\x89PNG fake", "image/png")
    wanted = {f"{prefix}/promo.txt", f"{prefix}/logo.png"}

    def registered() -> dict[str, Document] | None:
        found = _documents(tenant)
        return found if wanted <= set(found) else None

    documents = wait_for(registered)
    assert documents[f"{prefix}/promo.txt"].status in ("uploaded", "processing", "ready")
    promo = wait_for(lambda: (d := _documents(tenant)[f"{prefix}/promo.txt"]).status == "ready" and d, timeout=60)
    assert (promo.chunk_count, promo.error) == (1, None)
    assert documents[f"{prefix}/logo.png"].status == "failed"
    assert "unsupported content type" in (documents[f"{prefix}/logo.png"].error or "")


def test_scheduled_jobs_can_be_fired_now(stack: LocalStack) -> None:
    response = requests.post(f"{stack.info['scheduler_url']}/_emulator/run/conversation-expiry", timeout=30)
    assert response.status_code == 200, response.text
    direct = requests.post(stack.info["functions"]["retention-purge"], timeout=30)
    assert direct.status_code == 200
    assert direct.json()["purged"] >= 0
    assert requests.get(stack.info["functions"]["retention-purge"], timeout=5).status_code == 405


def test_function_logs_are_json_lines_with_severity_function_and_tenant(stack: LocalStack) -> None:
    meta = Meta(stack.info)
    customer = new_customer()
    meta.say(customer, "hello")
    wait_for(lambda: meta.sends_to(customer))
    log_file = Path(stack.info["logs"]) / "functions.log"

    def handled() -> list[dict[str, object]] | None:
        records = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
        return records if any(r["message"] == "inbound message handled" for r in records) else None

    records = handled() or wait_for(handled)
    assert all(r["severity"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"} for r in records)
    [line] = [
        r
        for r in records
        if r["message"] == "inbound message handled"
        and r.get("wa_message_id")
        and r["function"] == "conversation"
        and r["tenant_id"] == stack.info["demo"]["tenant_id"]
    ][-1:]
    assert line["time"]
    senders = [r for r in records if r["function"] == "message-sender"]
    assert senders
    task_lines = [r for r in senders if r["message"].startswith("task")]
    assert task_lines
    assert all(r["tenant_id"] for r in task_lines)
    assert any(r["tenant_id"] == stack.info["demo"]["tenant_id"] for r in task_lines)


def test_secrets_never_reach_the_logs(stack: LocalStack) -> None:
    time.sleep(0.5)
    secrets = json.loads((stack.options.state_dir / "secrets.json").read_text())
    for log_file in Path(stack.info["logs"]).glob("*.log"):
        text = log_file.read_text(errors="replace")
        for name in ("app_secret", "demo_access_token", "token_key"):
            assert secrets[name] not in text, f"{name} appears in {log_file.name}"


def test_a_poison_event_is_acknowledged_not_redelivered_forever(stack: LocalStack) -> None:
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(stack.info["project"], "whatsapp.incoming.messages")
    message_id = publisher.publish(topic, b"this is not an envelope").result(timeout=10)
    log_file = Path(stack.info["logs"]) / "functions.log"

    def acknowledged() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
        return [r for r in lines if r.get("event_id") == message_id and "no retry can fix" in str(r["message"])]

    wait_for(acknowledged)
    time.sleep(3)  # a redelivery (1 s backoff) would have logged again by now
    assert len(acknowledged()) == 1


def _nice_of_group(pgid: int) -> list[int]:
    """The nice value of every thread of every process in a process group, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/task/[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ... nice is the 17th
            found.append(int(fields[16]))
    return found


def test_what_meta_does_not_wait_on_yields_the_cpu(stack: LocalStack) -> None:
    """The webhook host and the Pub/Sub emulator it publishes to keep their priority; every
    other part, with all its threads and children (gunicorn workers, JVM threads, PostgreSQL
    backends), and where Linux groups by session, its session, runs nicer."""
    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux /proc")
    base = os.getpriority(os.PRIO_PROCESS, 0)
    session_base = autogroup_nice()
    requests.get(stack.info["health"]["agent-actions"], timeout=5)  # a PostgreSQL backend or two exist by now
    for service in stack.services:
        request_path = service.name in REQUEST_PATH
        nice = _nice_of_group(service.pid)
        assert nice, service.name
        expected = base if request_path else background_nice(base)
        assert set(nice) == {expected}, service.name
        if session_base is not None:
            expected_session = session_base if request_path else background_nice(session_base)
            assert autogroup_nice(service.pid) == expected_session, service.name
    assert {s.name for s in stack.services} >= REQUEST_PATH
