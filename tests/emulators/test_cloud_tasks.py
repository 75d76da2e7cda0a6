"""The local Cloud Tasks, driven by the official client over REST and gRPC, delivering to loopback receivers."""

from __future__ import annotations

import http.client
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import Conflict, InvalidArgument, NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from emulators.cloud_tasks import CloudTasksServer, create_server
from emulators.keepalive import Connections
from emulators.processes import free_port, port_is_open, start
from shared.cloud.declaration import QueueConfig
from tests.emulators.conftest import MakeReceiver, Started, stops_on_sigterm

PROJECT, LOCATION, QUEUE = "whatsapp-crm-test", "asia-southeast2", "fast"

FAST = QueueConfig(
    max_attempts=5,
    min_backoff_seconds=0.1,
    max_backoff_seconds=2,
    max_doublings=3,
    max_dispatches_per_second=100,
    max_concurrent_dispatches=10,
)

MakeServer = Callable[..., CloudTasksServer]


@pytest.fixture
def make_server(started: Started) -> MakeServer:
    def make(config: QueueConfig = FAST, **kwargs: Any) -> CloudTasksServer:
        return started(create_server(PROJECT, LOCATION, {QUEUE: config}, **kwargs))

    return make


def client_for(url: str) -> tasks_v2.CloudTasksClient:
    return tasks_v2.CloudTasksClient(
        transport="rest",
        client_options=ClientOptions(api_endpoint=url),
        credentials=AnonymousCredentials(),
    )


def grpc_client_for(target: str) -> tasks_v2.CloudTasksClient:
    """As shared/cloud/tasks.py builds it when CLOUD_TASKS_EMULATOR_HOST is set."""
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(target)))


def http_task(url: str, payload: dict[str, Any], task_id: str | None = None, **extra: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "http_request": {
            "http_method": tasks_v2.HttpMethod.POST,
            "url": url,
            "headers": {"Content-Type": "application/json", "X-Trace": "abc"},
            "body": json.dumps(payload).encode(),
        },
        **extra,
    }
    if task_id is not None:
        task["name"] = tasks_v2.CloudTasksClient.task_path(PROJECT, LOCATION, QUEUE, task_id)
    return task


def records(server: CloudTasksServer) -> list[dict[str, Any]]:
    """The attempt log, read the way a developer would: over HTTP."""
    response = requests.get(f"{server.url}/_emulator/tasks", timeout=5)
    response.raise_for_status()
    tasks: list[dict[str, Any]] = response.json()["tasks"]
    return tasks


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.02)


PARENT = tasks_v2.CloudTasksClient.queue_path(PROJECT, LOCATION, QUEUE)
LOCATION_FLAGS = ("--project", PROJECT, "--location", LOCATION)


def test_create_task_reaches_the_target_with_body_and_cloud_tasks_headers(
    make_server: MakeServer, make_receiver: MakeReceiver
) -> None:
    server, receiver = make_server(), make_receiver()
    client = client_for(server.url)
    before = time.time()

    created = client.create_task(parent=PARENT, task=http_task(f"{receiver.url}/message-sender", {"m": 1}, "t1"))

    assert created.name == f"{PARENT}/tasks/t1"
    assert created.http_request.url == f"{receiver.url}/message-sender"
    (request,) = receiver.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/message-sender"
    assert json.loads(request.body) == {"m": 1}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-trace"] == "abc"
    assert request.headers["user-agent"] == "Google-Cloud-Tasks"
    assert request.headers["x-cloudtasks-queuename"] == QUEUE
    assert request.headers["x-cloudtasks-taskname"] == "t1"
    assert request.headers["x-cloudtasks-taskretrycount"] == "0"
    assert request.headers["x-cloudtasks-taskexecutioncount"] == "0"
    assert before - 0.01 <= float(request.headers["x-cloudtasks-tasketa"]) <= request.time
    assert "x-cloudtasks-taskpreviousresponse" not in request.headers
    wait_until(lambda: records(server)[0]["state"] == "succeeded")


def test_the_grpc_face_creates_and_refuses_as_the_rest_face_does(
    make_server: MakeServer, make_receiver: MakeReceiver
) -> None:
    server, receiver = make_server(), make_receiver()
    client = grpc_client_for(server.grpc_target)
    later = datetime.now(UTC) + timedelta(seconds=0.5)

    created = client.create_task(
        parent=PARENT, task=http_task(f"{receiver.url}/message-sender", {"m": 2}, "g1", schedule_time=later)
    )

    assert created.name == f"{PARENT}/tasks/g1"
    assert abs(created.schedule_time.timestamp() - later.timestamp()) < 0.001
    (request,) = receiver.wait_for(1)
    assert request.time >= later.timestamp()
    assert json.loads(request.body) == {"m": 2}
    assert request.headers["x-trace"] == "abc"
    assert request.headers["x-cloudtasks-taskname"] == "g1"
    with pytest.raises(Conflict):  # one set of tasks behind both faces
        client.create_task(parent=PARENT, task=http_task(receiver.url, {}, "g1"))
    with pytest.raises(Conflict):
        client_for(server.url).create_task(parent=PARENT, task=http_task(receiver.url, {}, "g1"))
    with pytest.raises(NotFound):
        client.create_task(parent=f"{PARENT}-missing", task=http_task(receiver.url, {}))
    with pytest.raises(InvalidArgument):
        client.create_task(parent=PARENT, task={"http_request": {"url": "ftp://127.0.0.1/"}})
    with pytest.raises(InvalidArgument):
        client.create_task(parent=PARENT, task={"app_engine_http_request": {"relative_uri": "/x"}})


def test_unnamed_tasks_get_distinct_generated_names(make_server: MakeServer, make_receiver: MakeReceiver) -> None:
    server, receiver = make_server(), make_receiver()
    client = client_for(server.url)

    first = client.create_task(parent=PARENT, task=http_task(receiver.url, {"n": 1}))
    second = client.create_task(parent=PARENT, task=http_task(receiver.url, {"n": 2}))

    assert first.name.startswith(f"{PARENT}/tasks/")
    assert second.name.startswith(f"{PARENT}/tasks/")
    assert first.name != second.name
    received = receiver.wait_for(2)
    assert {r.headers["x-cloudtasks-taskname"] for r in received} == {
        first.name.rsplit("/", 1)[1],
        second.name.rsplit("/", 1)[1],
    }


def test_a_named_task_is_created_and_dispatched_once(make_server: MakeServer, make_receiver: MakeReceiver) -> None:
    server, receiver = make_server(), make_receiver()
    client = client_for(server.url)
    client.create_task(parent=PARENT, task=http_task(receiver.url, {"m": 1}, "send-42"))

    # The REST transport maps HTTP 409 to Conflict; gRPC's AlreadyExists is its subclass.
    with pytest.raises(Conflict) as pending_duplicate:
        client.create_task(parent=PARENT, task=http_task(receiver.url, {"m": 1}, "send-42"))
    receiver.wait_for(1)
    wait_until(lambda: records(server)[0]["state"] == "succeeded")
    with pytest.raises(Conflict):  # a name stays taken after the task ran, as in Cloud Tasks
        client.create_task(parent=PARENT, task=http_task(receiver.url, {"m": 1}, "send-42"))

    error = pending_duplicate.value.response.json()["error"]
    assert error["status"] == "ALREADY_EXISTS"
    time.sleep(0.3)
    assert len(receiver.requests) == 1


def test_a_finished_task_name_is_free_again_after_the_reuse_window(
    make_server: MakeServer, make_receiver: MakeReceiver
) -> None:
    server, receiver = make_server(name_reuse_seconds=0.2), make_receiver()
    client = client_for(server.url)
    client.create_task(parent=PARENT, task=http_task(receiver.url, {"m": 1}, "again"))
    receiver.wait_for(1)
    wait_until(lambda: records(server)[0]["state"] == "succeeded")
    time.sleep(0.3)

    client.create_task(parent=PARENT, task=http_task(receiver.url, {"m": 2}, "again"))

    assert json.loads(receiver.wait_for(2)[1].body) == {"m": 2}


def test_an_unknown_queue_is_not_found(make_server: MakeServer) -> None:
    server = make_server()
    client = client_for(server.url)
    other = client.queue_path(PROJECT, LOCATION, "no-such-queue")

    with pytest.raises(NotFound) as missing:
        client.create_task(parent=other, task=http_task("http://127.0.0.1:9/", {}))

    assert missing.value.response.json()["error"]["status"] == "NOT_FOUND"


def test_failed_attempts_are_retried_with_the_queue_backoff(
    make_server: MakeServer, make_receiver: MakeReceiver
) -> None:
    server, receiver = make_server(), make_receiver(503, 503, default=200)
    client = client_for(server.url)

    client.create_task(parent=PARENT, task=http_task(receiver.url, {"m": 1}, "flaky"))

    received = receiver.wait_for(3)
    assert [r.headers["x-cloudtasks-taskretrycount"] for r in received] == ["0", "1", "2"]
    assert [r.headers["x-cloudtasks-taskexecutioncount"] for r in received] == ["0", "1", "2"]
    assert [r.headers.get("x-cloudtasks-taskpreviousresponse") for r in received] == [None, "503", "503"]
    wait_until(lambda: records(server)[0]["state"] == "succeeded")
    attempts = records(server)[0]["attempts"]
    assert [a["status"] for a in attempts] == [503, 503, 200]
    waits = [attempts[i + 1]["dispatchTime"] - attempts[i]["responseTime"] for i in range(2)]
    for failed_attempt, waited in enumerate(waits, start=1):
        expected = FAST.backoff_after(failed_attempt)  # 0.1 s, then 0.2 s
        assert expected - 0.01 <= waited <= expected + 0.15
    assert waits[1] > waits[0]
    time.sleep(0.3)
    assert len(receiver.requests) == 3


def test_a_task_that_always_fails_is_dropped_after_max_attempts(
    make_server: MakeServer, make_receiver: MakeReceiver
) -> None:
    config = FAST.model_copy(update={"max_attempts": 3})
    server, receiver = make_server(config), make_receiver(default=500)
    client = client_for(server.url)

    client.create_task(parent=PARENT, task=http_task(receiver.url, {"m": 1}, "doomed"))

    receiver.wait_for(3)
    wait_until(lambda: records(server)[0]["state"] == "failed")
    time.sleep(0.8)  # more than the next backoff would have been
    assert len(receiver.requests) == 3
    assert list(client.list_tasks(parent=PARENT)) == []


def test_connection_failures_count_as_failed_attempts(make_server: MakeServer) -> None:
    config = FAST.model_copy(update={"max_attempts": 2})
    server = make_server(config)
    client = client_for(server.url)
    nobody = f"http://127.0.0.1:{free_port()}/message-sender"

    client.create_task(parent=PARENT, task=http_task(nobody, {"m": 1}, "unreachable"))

    wait_until(lambda: records(server)[0]["state"] == "failed")
    attempts = records(server)[0]["attempts"]
    assert [a["status"] for a in attempts] == [None, None]
    assert all("ConnectionError" in a["error"] for a in attempts)


def test_a_future_schedule_time_is_honoured(make_server: MakeServer, make_receiver: MakeReceiver) -> None:
    server, receiver = make_server(), make_receiver()
    client = client_for(server.url)
    eta = datetime.now(UTC) + timedelta(seconds=1)

    client.create_task(parent=PARENT, task=http_task(receiver.url, {"m": 1}, "later", schedule_time=eta))

    (pending,) = client.list_tasks(parent=PARENT)
    assert pending.name == f"{PARENT}/tasks/later"
    assert pending.schedule_time.timestamp() == pytest.approx(eta.timestamp(), abs=1e-3)
    (request,) = receiver.wait_for(1, timeout=3)
    assert request.time >= eta.timestamp()
    assert request.time - eta.timestamp() < 0.3
    assert float(request.headers["x-cloudtasks-tasketa"]) == pytest.approx(eta.timestamp(), abs=1e-3)


def test_dispatch_respects_concurrency_and_rate_limits(make_server: MakeServer, make_receiver: MakeReceiver) -> None:
    config = FAST.model_copy(update={"max_concurrent_dispatches": 1, "max_dispatches_per_second": 10})
    server, receiver = make_server(config), make_receiver(delay=0.15)
    client = client_for(server.url)

    for n in range(3):
        client.create_task(parent=PARENT, task=http_task(receiver.url, {"n": n}))

    receiver.wait_for(3)
    wait_until(lambda: all(t["state"] == "succeeded" for t in records(server)))
    attempts = sorted((t["attempts"][0] for t in records(server)), key=lambda a: a["dispatchTime"])
    for earlier, later in itertools.pairwise(attempts):
        assert later["dispatchTime"] >= earlier["responseTime"]  # one at a time
        assert later["dispatchTime"] - earlier["dispatchTime"] >= 0.1 - 0.005  # at most 10 per second


def test_the_command_line_serves_the_declared_queues_and_stops_on_sigterm(
    tmp_path: Path, make_receiver: MakeReceiver
) -> None:
    receiver, port, grpc_port = make_receiver(), free_port(), free_port()
    service = start(
        "cloud-tasks",
        [
            sys.executable,
            "-m",
            "emulators.cloud_tasks",
            "--port",
            str(port),
            "--grpc-port",
            str(grpc_port),
            *LOCATION_FLAGS,
        ],
        log_dir=tmp_path,
        ready=lambda: port_is_open(port),
        cwd=Path(__file__).resolve().parents[2],
        timeout=20,
    )
    with stops_on_sigterm(service):
        client = client_for(f"http://127.0.0.1:{port}")
        parent = client.queue_path(PROJECT, LOCATION, "whatsapp-send")
        client.create_task(parent=parent, task={"http_request": {"url": f"{receiver.url}/message-sender"}})
        grpc_client_for(f"127.0.0.1:{grpc_port}").create_task(
            parent=parent, task={"http_request": {"url": f"{receiver.url}/message-sender"}}
        )
        for request in receiver.wait_for(2):
            assert request.headers["x-cloudtasks-queuename"] == "whatsapp-send"


# The HTTP plumbing the emulators share ------------------------------------------------------------


def test_the_api_answers_many_requests_on_one_kept_alive_connection(make_server: MakeServer) -> None:
    server = make_server()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        chunked = (part for part in (b'{"task": ', b'{"httpRequest": {"url": "http://127.0.0.1:9/"}}}'))
        headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        connection.request("POST", f"/v2/{PARENT}/tasks", body=chunked, headers=headers, encode_chunked=True)
        created = connection.getresponse()
        assert created.status == 200
        assert json.loads(created.read())["name"].startswith(f"{PARENT}/tasks/")
        socket_used = connection.sock
        assert socket_used is not None  # http.client drops the socket of an answer that closes
        for _ in range(2):
            connection.request("GET", "/_emulator/tasks")
            listed = connection.getresponse()
            assert listed.status == 200
            assert len(json.loads(listed.read())["tasks"]) == 1
            assert connection.sock is socket_used  # not closed after the answer
    finally:
        connection.close()


def test_connections_replace_one_the_host_closed_while_idle() -> None:
    accepted: list[object] = []

    class HangsUpAfterEachAnswer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # so the client takes the connection for kept alive

        def do_POST(self) -> None:
            accepted.append(self.connection)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    host = ThreadingHTTPServer(("127.0.0.1", 0), HangsUpAfterEachAnswer)
    threading.Thread(target=host.serve_forever, args=(0.05,), daemon=True).start()
    try:
        connections, url = Connections(), f"http://127.0.0.1:{host.server_port}/x"
        assert connections.request("POST", url, b"1", {}, 5) == 201
        time.sleep(0.1)  # the hang-up reaches us
        assert connections.request("POST", url, b"2", {}, 5) == 201
    finally:
        host.shutdown()
        host.server_close()
    assert len(accepted) == 2
