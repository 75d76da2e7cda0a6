"""The push dispatcher against the real Pub/Sub emulator, delivering to loopback receivers."""

from __future__ import annotations

import base64
import itertools
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from emulators.processes import Service, free_port, start
from emulators.pubsub_push import MIN_BACKOFF, PushDispatcher, subscription_name
from emulators.services import start_pubsub
from shared.cloud.declaration import PubSubTrigger, declaration
from shared.cloud.settings import settings
from tests.emulators.conftest import MakeReceiver, Received, Started

ORDERED, UNORDERED = "conversation", "message-status"  # declared Pub/Sub functions, with and without ordering
_projects = itertools.count(1)

Publish = Callable[..., None]
StartDispatcher = Callable[..., PushDispatcher]


@pytest.fixture(scope="module")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_pubsub(free_port(), tmp_path_factory.mktemp("pubsub") / "logs")
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def project(pubsub_emulator: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A project of its own for each test, which the dispatcher finds through its settings."""
    name = f"push-test-{next(_projects)}"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", name)
    settings.cache_clear()
    yield name
    settings.cache_clear()


@pytest.fixture
def wire(project: str) -> Callable[..., None]:
    """Topics and push subscriptions as the local stack makes them, with a chosen ack deadline."""

    def make(ack_deadline: int = 60) -> None:
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        topics = set()
        for name, fn in declaration().functions.items():
            if not isinstance(fn.trigger, PubSubTrigger):
                continue
            topic = publisher.topic_path(project, fn.trigger.topic)
            if topic not in topics:
                publisher.create_topic(name=topic)
                topics.add(topic)
            subscriber.create_subscription(
                request={
                    "name": subscriber.subscription_path(project, subscription_name(name)),
                    "topic": topic,
                    "enable_message_ordering": fn.trigger.ordering,
                    "ack_deadline_seconds": ack_deadline,
                }
            )

    return make


@pytest.fixture
def publish(project: str) -> Publish:
    """`publish(function, data, ordering_key="", **attributes)`: one message, in order, to its topic."""
    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    publisher = pubsub_v1.PublisherClient(publisher_options=options)

    def send(function: str, data: bytes, ordering_key: str = "", **attributes: str) -> None:
        trigger = declaration().functions[function].trigger
        assert isinstance(trigger, PubSubTrigger)
        topic = publisher.topic_path(project, trigger.topic)
        publisher.publish(topic, data, ordering_key=ordering_key, **attributes).result(timeout=10)

    return send


@pytest.fixture
def start_dispatcher(started: Started) -> StartDispatcher:
    def make(base_url: str, concurrency: int = 8) -> PushDispatcher:
        return started(PushDispatcher(base_url, concurrency))

    return make


def pushed(received: Received) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(received.body)
    return body


def data_of(received: Received) -> bytes:
    return base64.b64decode(pushed(received)["message"]["data"])


def test_messages_are_pushed_to_their_function_in_the_push_format(
    wire: Callable[..., None],
    publish: Publish,
    start_dispatcher: StartDispatcher,
    make_receiver: MakeReceiver,
    project: str,
) -> None:
    wire()
    receiver = make_receiver()
    start_dispatcher(receiver.url)

    publish(UNORDERED, b'{"status": "sent"}', kind="status")
    publish(ORDERED, b'{"text": "halo"}', ordering_key="outlet-1:customer-1")

    received = sorted(receiver.wait_for(2, timeout=10), key=lambda r: r.path)
    assert [r.path for r in received] == [f"/{ORDERED}", f"/{UNORDERED}"]
    assert all(r.method == "POST" and r.headers["content-type"] == "application/json" for r in received)
    conversation, status = (pushed(r) for r in received)
    assert conversation["subscription"] == f"projects/{project}/subscriptions/{subscription_name(ORDERED)}"
    assert conversation["deliveryAttempt"] == 1
    message = conversation["message"]
    assert base64.b64decode(message["data"]) == b'{"text": "halo"}'
    assert message["orderingKey"] == "outlet-1:customer-1"
    assert message["messageId"]
    assert message["publishTime"].endswith("+00:00")
    assert status["message"]["attributes"] == {"kind": "status"}
    assert status["message"]["orderingKey"] == ""


def test_messages_of_one_ordering_key_go_one_at_a_time_in_order_while_keys_overlap(
    wire: Callable[..., None], publish: Publish, start_dispatcher: StartDispatcher, make_receiver: MakeReceiver
) -> None:
    wire()
    receiver = make_receiver(delay=0.3)
    start_dispatcher(receiver.url)

    for n in range(4):
        for key in ("a", "b"):
            publish(ORDERED, f"{key}{n}".encode(), ordering_key=key)

    received = receiver.wait_for(8, timeout=15)
    by_key = {key: [r for r in received if data_of(r).startswith(key.encode())] for key in ("a", "b")}
    for key, requests in by_key.items():
        assert [data_of(r) for r in requests] == [f"{key}{n}".encode() for n in range(4)]
        for earlier, later in itertools.pairwise(requests):
            assert later.time - earlier.time >= 0.3 - 0.01  # the previous one was answered first
    assert abs(by_key["a"][0].time - by_key["b"][0].time) < 0.3  # different keys do not wait for each other


def test_no_more_than_the_concurrency_is_in_flight(
    wire: Callable[..., None], publish: Publish, start_dispatcher: StartDispatcher, make_receiver: MakeReceiver
) -> None:
    wire()
    receiver = make_receiver(delay=0.4)
    start_dispatcher(receiver.url, concurrency=2)

    for n in range(6):
        publish(UNORDERED, str(n).encode())

    arrivals = sorted(r.time for r in receiver.wait_for(6, timeout=15))
    assert arrivals[1] - arrivals[0] < 0.4  # two at once
    for first, third in zip(arrivals, arrivals[2:], strict=False):
        assert third - first >= 0.4 - 0.01  # never a third while two are in flight


def test_a_failed_push_comes_back_after_the_backoff_and_an_answered_one_does_not(
    wire: Callable[..., None], publish: Publish, start_dispatcher: StartDispatcher, make_receiver: MakeReceiver
) -> None:
    wire()
    receiver = make_receiver(500, default=204)
    start_dispatcher(receiver.url)

    publish(UNORDERED, b"flaky")

    failed, retried = receiver.wait_for(2, timeout=10)
    assert pushed(failed)["message"]["messageId"] == pushed(retried)["message"]["messageId"]
    assert MIN_BACKOFF - 0.05 <= retried.time - failed.time < 5  # the emulator delivers it again once it passed
    time.sleep(2)
    assert len(receiver.requests) == 2


def test_messages_stay_leased_while_pushed_or_waiting_for_their_key(
    wire: Callable[..., None], publish: Publish, start_dispatcher: StartDispatcher, make_receiver: MakeReceiver
) -> None:
    wire(ack_deadline=1)
    receiver = make_receiver(delay=2.5)  # each push outlasts the ack deadline; the second waits for the first
    start_dispatcher(receiver.url)

    publish(ORDERED, b"first", ordering_key="slow")
    publish(ORDERED, b"second", ordering_key="slow")

    received = receiver.wait_for(2, timeout=10)
    assert [data_of(r) for r in received] == [b"first", b"second"]
    time.sleep(3)
    assert len(receiver.requests) == 2  # neither lease ran out: nothing came back


def test_the_command_line_pushes_and_stops_on_sigterm(
    wire: Callable[..., None], publish: Publish, make_receiver: MakeReceiver, tmp_path: Path
) -> None:
    wire()
    receiver = make_receiver()
    service = start(
        "pubsub-push",
        [sys.executable, "-m", "emulators.pubsub_push", "--functions-base-url", receiver.url],
        log_dir=tmp_path,
        ready=lambda: "delivering to" in (tmp_path / "pubsub-push.log").read_text(),
        cwd=Path(__file__).resolve().parents[2],
        timeout=20,
    )
    try:
        publish(UNORDERED, b"hello")
        (request,) = receiver.wait_for(1, timeout=10)
        assert request.path == f"/{UNORDERED}"
        service.process.send_signal(signal.SIGTERM)
        returncode = service.process.wait(10)
    finally:
        service.stop()
    assert returncode == 0
