"""Finalize CloudEvents from the real storage emulator, uploaded to with the real storage client."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from google.cloud import storage

from emulators.processes import Service, start
from emulators.storage import ensure_buckets, start_storage_emulator
from emulators.storage_events import (
    FINALIZED,
    StorageEventWatcher,
    Subscription,
    declared_subscriptions,
    event_id,
)
from shared.cloud.declaration import declaration
from tests.emulators.conftest import MakeReceiver, Receiver, Started, stops_on_sigterm

FUNCTION = "document-ingest"

MakeWatcher = Callable[..., StorageEventWatcher]


@pytest.fixture
def bucket(storage_emulator: Service, storage_client: storage.Client) -> storage.Bucket:
    """A fresh bucket per test, so tests never see each other's objects."""
    name = f"docs-{uuid.uuid4().hex[:12]}"
    ensure_buckets(storage_emulator.url, [name])
    return storage_client.bucket(name)


@pytest.fixture
def make_watcher(storage_emulator: Service, tmp_path: Path, started: Started) -> MakeWatcher:
    def make(receiver: Receiver, bucket: storage.Bucket, state: Path | None = None) -> StorageEventWatcher:
        watcher = StorageEventWatcher(
            storage_emulator.url,
            receiver.url,
            state or tmp_path / "state.json",
            [Subscription(FUNCTION, bucket.name)],
            poll_interval=0.1,
            min_backoff=0.2,
        )
        return started(watcher)

    return make


def upload(bucket: storage.Bucket, name: str, content: bytes) -> storage.Blob:
    blob = bucket.blob(name)
    blob.upload_from_string(content, content_type="application/pdf")
    return blob


def event_data(request_body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(request_body)
    return data


def test_an_upload_produces_one_finalize_event_and_a_new_generation_another(
    make_watcher: MakeWatcher, make_receiver: MakeReceiver, bucket: storage.Bucket
) -> None:
    receiver = make_receiver()
    make_watcher(receiver, bucket)

    blob = upload(bucket, "outlet-1/menu price.pdf", b"%PDF-1 first")

    (event,) = receiver.wait_for(1)
    assert event.method == "POST"
    assert event.path == f"/{FUNCTION}"
    assert event.headers["ce-type"] == FINALIZED == "google.cloud.storage.object.v1.finalized"
    assert event.headers["ce-specversion"] == "1.0"
    assert event.headers["ce-source"] == f"//storage.googleapis.com/projects/_/buckets/{bucket.name}"
    assert event.headers["ce-subject"] == "objects/outlet-1/menu price.pdf"
    assert event.headers["ce-id"] == event_id(bucket.name, blob.name, str(blob.generation))
    assert event.headers["ce-time"].endswith("Z")
    assert event.headers["content-type"] == "application/json"
    data = event_data(event.body)
    assert data["bucket"] == bucket.name
    assert data["name"] == "outlet-1/menu price.pdf"
    assert data["generation"] == str(blob.generation)
    assert data["contentType"] == "application/pdf"
    assert data["size"] == str(len(b"%PDF-1 first"))
    time.sleep(0.5)  # several polls later, still one event
    assert len(receiver.requests) == 1

    again = upload(bucket, "outlet-1/menu price.pdf", b"%PDF-1 second")

    second = receiver.wait_for(2)[1]
    assert again.generation != blob.generation
    assert event_data(second.body)["generation"] == str(again.generation)
    assert second.headers["ce-id"] != event.headers["ce-id"]
    time.sleep(0.5)
    assert len(receiver.requests) == 2


def test_a_restarted_watcher_does_not_resend_what_was_delivered(
    make_watcher: MakeWatcher, make_receiver: MakeReceiver, bucket: storage.Bucket, tmp_path: Path
) -> None:
    receiver, state = make_receiver(), tmp_path / "events" / "state.json"
    first = make_watcher(receiver, bucket, state)
    upload(bucket, "a.pdf", b"a")
    receiver.wait_for(1)
    first.stop()

    make_watcher(receiver, bucket, state)
    time.sleep(0.5)
    assert len(receiver.requests) == 1
    upload(bucket, "b.pdf", b"b")

    assert event_data(receiver.wait_for(2)[1].body)["name"] == "b.pdf"
    time.sleep(0.3)
    assert len(receiver.requests) == 2


def test_objects_that_were_never_delivered_are_sent_after_a_restart(
    make_watcher: MakeWatcher, make_receiver: MakeReceiver, bucket: storage.Bucket
) -> None:
    upload(bucket, "while-down.pdf", b"x")  # no watcher running yet
    receiver = make_receiver()

    make_watcher(receiver, bucket)

    (event,) = receiver.wait_for(1)
    assert event_data(event.body)["name"] == "while-down.pdf"


def test_a_failing_function_gets_the_same_event_again_until_it_accepts(
    make_watcher: MakeWatcher, make_receiver: MakeReceiver, bucket: storage.Bucket, tmp_path: Path
) -> None:
    receiver = make_receiver(500, 503, default=204)
    make_watcher(receiver, bucket)

    blob = upload(bucket, "retry.pdf", b"r")

    events = receiver.wait_for(3)
    assert {e.headers["ce-id"] for e in events} == {event_id(bucket.name, "retry.pdf", str(blob.generation))}
    assert events[2].time - events[1].time > events[1].time - events[0].time  # backoff grows
    time.sleep(0.8)
    assert len(receiver.requests) == 3
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["delivered"][f"{FUNCTION}:{bucket.name}"] == {"retry.pdf": str(blob.generation)}


def test_an_unreachable_function_is_retried_too(
    make_watcher: MakeWatcher, make_receiver: MakeReceiver, bucket: storage.Bucket, tmp_path: Path
) -> None:
    receiver = make_receiver()
    receiver.stop()  # nothing listens on its port any more
    make_watcher(receiver, bucket)
    blob = upload(bucket, "later.pdf", b"l")
    time.sleep(0.6)

    revived = make_receiver()
    make_watcher(revived, bucket, tmp_path / "state.json")  # same state: the first never delivered

    (event,) = revived.wait_for(1)
    assert event_data(event.body)["generation"] == str(blob.generation)


def test_buckets_resolve_from_their_environment_variable_or_local_name() -> None:
    bucket = declaration().buckets["documents"]

    assert declared_subscriptions(env={}) == [Subscription(FUNCTION, bucket.local_name)]
    assert declared_subscriptions(env={bucket.env: "docs-staging"}) == [Subscription(FUNCTION, "docs-staging")]


def test_ensure_buckets_is_idempotent(storage_emulator: Service, storage_client: storage.Client) -> None:
    name = f"docs-{uuid.uuid4().hex[:12]}"

    ensure_buckets(storage_emulator.url, [name])
    ensure_buckets(storage_emulator.url, [name])

    assert storage_client.bucket(name).exists()


def test_the_storage_emulator_keeps_objects_across_restarts(tmp_path: Path) -> None:
    data, logs = tmp_path / "data", tmp_path / "logs"
    service = start_storage_emulator(data, logs)
    try:
        ensure_buckets(service.url, ["persisted"])
        requests.post(
            f"{service.url}/upload/storage/v1/b/persisted/o",
            params={"uploadType": "media", "name": "kept.txt"},
            data=b"still here",
            timeout=5,
        ).raise_for_status()
    finally:
        service.stop()

    service = start_storage_emulator(data, logs)
    try:
        kept = requests.get(f"{service.url}/download/storage/v1/b/persisted/o/kept.txt?alt=media", timeout=5)
        assert kept.content == b"still here"
    finally:
        service.stop()


def test_the_command_line_watches_the_declared_bucket_and_stops_on_sigterm(
    storage_emulator: Service,
    make_receiver: MakeReceiver,
    bucket: storage.Bucket,
    tmp_path: Path,
) -> None:
    receiver = make_receiver()
    documents = declaration().buckets["documents"]
    command = [sys.executable, "-m", "emulators.storage_events", "--storage-url", storage_emulator.url]
    command += ["--functions-base-url", receiver.url, "--state", str(tmp_path / "state.json")]
    command += ["--poll-interval", "0.1"]
    service = start(
        "storage-events",
        command,
        log_dir=tmp_path,
        ready=lambda: "Storage events:" in (tmp_path / "storage-events.log").read_text(),
        env={documents.env: bucket.name},
        cwd=Path(__file__).resolve().parents[2],
        timeout=20,
    )
    with stops_on_sigterm(service):
        upload(bucket, "cli.pdf", b"c")
        (event,) = receiver.wait_for(1)
        assert event.path == f"/{FUNCTION}"
        assert event_data(event.body)["name"] == "cli.pdf"
