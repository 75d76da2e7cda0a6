"""A local Cloud Tasks: the v2 calls our code makes, over gRPC (as production clients make
them) and over REST, and a dispatcher that delivers tasks to their HTTP targets with each
queue's retry and rate settings from functions/functions.yaml.

Google ships no Cloud Tasks emulator. The official client talks to this server over an insecure
gRPC channel to CLOUD_TASKS_EMULATOR_HOST (CreateTask), or when it is built with
`transport="rest"` and an `http://127.0.0.1:PORT` api_endpoint (CreateTask, ListTasks), so
production code runs unchanged. Both faces apply the same rules to the same tasks.

What we keep from Cloud Tasks, because our code relies on it: named tasks are
deduplicated (409 ALREADY_EXISTS while the task exists and for an hour after it ran), a 2xx
answer completes a task, anything else is retried with the queue's backoff until max_attempts,
and the target sees the X-CloudTasks-* headers. OIDC and OAuth tokens are accepted and ignored:
there are no identities locally. Nothing survives a restart: tasks live in memory.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import heapq
import http.client
import itertools
import json
import logging
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.cloud import tasks_v2
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from emulators.keepalive import Connections, KeepAliveRequestHandler
from shared.cloud.declaration import QueueConfig, declaration
from shared.cloud.settings import settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)

DEFAULT_DISPATCH_DEADLINE = 600.0  # Cloud Tasks' default for HTTP targets
MIN_DISPATCH_DEADLINE, MAX_DISPATCH_DEADLINE = 15.0, 1800.0
NAME_REUSE_SECONDS = 3600.0  # Cloud Tasks refuses a finished task's name for about an hour

_TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,500}$")
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")
_DURATION = re.compile(r"^(-?\d+(?:\.\d{1,9})?)s$")
# google.cloud.tasks.v2.HttpMethod and Task.View, in enum-number order.
_HTTP_METHODS = ("HTTP_METHOD_UNSPECIFIED", "POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")
_VIEWS = ("VIEW_UNSPECIFIED", "BASIC", "FULL")
_BODY_METHODS = {"POST", "PUT", "PATCH"}
# Headers Cloud Tasks sets itself, whatever the task says.
_OVERRIDDEN_HEADERS = {"host", "content-length", "user-agent"}


class ApiError(Exception):
    """An error answered in Google's JSON error format, which the client maps to an exception."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message

    def response(self) -> Response:
        body = {"error": {"code": self.code, "message": self.message, "status": self.status}}
        return _json(body, self.code)


# How an ApiError's HTTP code reads over gRPC.
_GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
}


def _invalid(message: str) -> NoReturn:
    raise ApiError(400, "INVALID_ARGUMENT", message)


@dataclass
class Attempt:
    """One delivery of a task: when it left, when it ended, and how."""

    dispatch_time: float
    response_time: float
    status: int | None  # None when no HTTP response came back
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "dispatchTime": self.dispatch_time,
            "responseTime": self.response_time,
            "status": self.status,
            "error": self.error,
        }


@dataclass
class Task:
    """A task and its delivery history; `schedule_time` is when the next attempt is due."""

    name: str
    queue: str
    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    schedule_time: float
    dispatch_deadline: float
    create_time: float
    attempts: list[Attempt] = field(default_factory=list)
    state: str = "pending"  # pending | dispatching | succeeded | failed

    @property
    def task_id(self) -> str:
        return self.name.rsplit("/", 1)[1]

    def resource(self, view: int, enums_as_ints: bool) -> dict[str, Any]:
        """The task as the v2 REST API represents it; BASIC omits the body, as Cloud Tasks does."""
        method_number = _HTTP_METHODS.index(self.method)
        http_request: dict[str, Any] = {
            "url": self.url,
            "httpMethod": method_number if enums_as_ints else self.method,
            "headers": self.headers,
        }
        if view == 2 and self.body:
            http_request["body"] = base64.b64encode(self.body).decode("ascii")
        return {
            "name": self.name,
            "httpRequest": http_request,
            "scheduleTime": _format_timestamp(self.schedule_time),
            "createTime": _format_timestamp(self.create_time),
            "dispatchDeadline": f"{self.dispatch_deadline:g}s",
            "dispatchCount": len(self.attempts),
            "responseCount": sum(1 for a in self.attempts if a.status is not None),
            "view": view if enums_as_ints else _VIEWS[view],
        }

    def record(self) -> dict[str, Any]:
        """What /_emulator/tasks shows: plain numbers, so tests can compute with them."""
        return {
            "name": self.name,
            "queue": self.queue,
            "url": self.url,
            "state": self.state,
            "createTime": self.create_time,
            "scheduleTime": self.schedule_time,
            "attempts": [a.as_json() for a in self.attempts],
        }


def _format_timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_timestamp(value: Any, field_name: str) -> float:
    match = _TIMESTAMP.match(value) if isinstance(value, str) else None
    if match is None:
        _invalid(f"{field_name} is not an RFC 3339 timestamp: {value!r}")
    whole, fraction, offset = match.groups()
    moment = datetime.fromisoformat(whole + ("+00:00" if offset == "Z" else offset))
    return moment.timestamp() + float(f"0.{fraction or 0}")


def _parse_duration(value: Any, field_name: str) -> float:
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        _invalid(f"{field_name} is not a duration like '30s': {value!r}")
    return float(match.group(1))


def _parse_enum(value: Any, names: tuple[str, ...], field_name: str) -> int:
    """Proto JSON enums arrive as numbers (the client asks for enum-encoding=int) or names.
    Callers map 0, the UNSPECIFIED value, to the API's default with `or 1`."""
    if isinstance(value, int) and 0 <= value < len(names):
        return value
    if isinstance(value, str) and value in names:
        return names.index(value)
    _invalid(f"{field_name} has an unknown value: {value!r}")


def _decode_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        _invalid("httpRequest.body must be a base64 string")
    standard = value.replace("-", "+").replace("_", "/")  # proto JSON accepts both alphabets
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except binascii.Error:
        _invalid("httpRequest.body is not valid base64")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


class QueueDispatcher:
    """Delivers one queue's due tasks, within its concurrency and rate limits."""

    def __init__(
        self,
        path: str,
        name: str,
        config: QueueConfig,
        lock: threading.Lock,
        finished: collections.deque[Task],
    ) -> None:
        self.path = path
        self.name = name
        self.config = config
        self._lock = lock  # the server's lock over every task's state
        self._finished = finished  # the server's record of finished tasks, oldest first
        self._due: list[tuple[float, int, Task]] = []
        self._order = itertools.count()
        self._wakeup = threading.Condition(lock)
        self._slots = threading.BoundedSemaphore(config.max_concurrent_dispatches)
        # Long-lived workers keep their connections to the targets alive between attempts.
        self._workers = ThreadPoolExecutor(config.max_concurrent_dispatches, thread_name_prefix=f"cloud-tasks-{name}")
        self._next_dispatch = 0.0  # time.monotonic() before which no dispatch may start
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cloud-tasks-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._wakeup:
            self._wakeup.notify_all()
        self._thread.join(5)
        self._workers.shutdown(wait=False, cancel_futures=True)

    def schedule(self, task: Task) -> None:
        """Queue `task` for its schedule_time; the caller holds the server's lock."""
        task.state = "pending"
        heapq.heappush(self._due, (task.schedule_time, next(self._order), task))
        self._wakeup.notify_all()

    def pending(self) -> list[Task]:
        """Tasks not yet finished; the caller holds the server's lock."""
        return sorted((t for _, _, t in self._due), key=lambda t: t.schedule_time)

    def _run(self) -> None:
        while (task := self._next_due()) is not None:
            while not self._slots.acquire(timeout=0.2):
                if self._stopping.is_set():
                    return
            delay = self._next_dispatch - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                self._slots.release()
                return
            self._next_dispatch = max(time.monotonic(), self._next_dispatch) + (
                1.0 / self.config.max_dispatches_per_second
            )
            self._workers.submit(self._attempt, task)

    def _next_due(self) -> Task | None:
        """Block until a task is due (and return it, marked dispatching) or the queue stops."""
        with self._wakeup:
            while not self._stopping.is_set():
                if self._due and self._due[0][0] <= time.time():
                    task = heapq.heappop(self._due)[2]
                    task.state = "dispatching"
                    return task
                timeout = self._due[0][0] - time.time() if self._due else None
                self._wakeup.wait(timeout)
            return None

    def _attempt(self, task: Task) -> None:
        previous = task.attempts[-1] if task.attempts else None
        headers = {k: v for k, v in task.headers.items() if k.lower() not in _OVERRIDDEN_HEADERS}
        headers.update(
            {
                "User-Agent": "Google-Cloud-Tasks",
                "X-CloudTasks-QueueName": self.name,
                "X-CloudTasks-TaskName": task.task_id,
                "X-CloudTasks-TaskRetryCount": str(len(task.attempts)),
                "X-CloudTasks-TaskExecutionCount": str(sum(a.status is not None for a in task.attempts)),
                "X-CloudTasks-TaskETA": f"{task.schedule_time:.6f}",
            }
        )
        if previous is not None and previous.status is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(previous.status)
        started = time.time()
        status: int | None = None
        error: str | None = None
        body = task.body if task.method in _BODY_METHODS else None
        try:
            status = _connections.request(task.method, task.url, body, headers, task.dispatch_deadline)
        except (http.client.HTTPException, OSError) as exc:
            kind = "Timeout" if isinstance(exc, TimeoutError) else "ConnectionError"
            error = f"{kind}: {type(exc).__name__}: {exc}"
        finally:
            self._slots.release()
        self._finish(task, Attempt(started, time.time(), status, error))

    def _finish(self, task: Task, attempt: Attempt) -> None:
        with self._lock:
            task.attempts.append(attempt)
            count = len(task.attempts)
            outcome = attempt.error or f"HTTP {attempt.status}"
            if attempt.status is not None and 200 <= attempt.status < 300:
                task.state = "succeeded"
                logger.info("task %s delivered on attempt %d (%s)", task.name, count, outcome)
            elif count >= self.config.max_attempts:
                task.state = "failed"
                logger.warning("task %s dropped after %d attempts; last: %s", task.name, count, outcome)
            else:
                delay = self.config.backoff_after(count)
                task.schedule_time = attempt.response_time + delay
                logger.info("task %s attempt %d failed (%s); retry in %.3gs", task.name, count, outcome, delay)
                self.schedule(task)
                return
            self._finished.append(task)


class CloudTasksServer:
    """The REST API and one dispatcher per queue. The port is bound at construction."""

    def __init__(
        self,
        project: str,
        location: str,
        queues: dict[str, QueueConfig],
        port: int = 0,
        *,
        grpc_port: int = 0,
        name_reuse_seconds: float = NAME_REUSE_SECONDS,
    ) -> None:
        self.project = project
        self.location = location
        self.name_reuse_seconds = name_reuse_seconds
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._finished: collections.deque[Task] = collections.deque()  # in finishing order
        self._queues: dict[str, QueueDispatcher] = {}
        for name, config in queues.items():
            path = f"projects/{project}/locations/{location}/queues/{name}"
            self._queues[path] = QueueDispatcher(path, name, config, self._lock, self._finished)
        self._routes = Map(
            [
                Rule("/v2/<path:queue>/tasks", methods=["POST"], endpoint="create_task"),
                Rule("/v2/<path:queue>/tasks", methods=["GET"], endpoint="list_tasks"),
                Rule("/_emulator/tasks", methods=["GET"], endpoint="records"),
            ]
        )
        self._http: BaseWSGIServer = make_server(
            "127.0.0.1", port, self._wsgi, threaded=True, request_handler=KeepAliveRequestHandler
        )
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, args=(0.1,), name="cloud-tasks-http", daemon=True
        )
        self._grpc = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="cloud-tasks-grpc"))
        create_task = grpc.unary_unary_rpc_method_handler(
            self._grpc_create_task,
            request_deserializer=tasks_v2.CreateTaskRequest.deserialize,
            response_serializer=tasks_v2.Task.serialize,
        )
        service = grpc.method_handlers_generic_handler("google.cloud.tasks.v2.CloudTasks", {"CreateTask": create_task})
        self._grpc.add_generic_rpc_handlers((service,))
        self._grpc_port = self._grpc.add_insecure_port(f"127.0.0.1:{grpc_port}")

    @property
    def port(self) -> int:
        return int(self._http.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_target(self) -> str:
        """host:port of the gRPC face: what CLOUD_TASKS_EMULATOR_HOST names."""
        return f"127.0.0.1:{self._grpc_port}"

    def start(self) -> None:
        for dispatcher in self._queues.values():
            dispatcher.start()
        self._http_thread.start()
        self._grpc.start()

    def stop(self) -> None:
        self._grpc.stop(grace=1).wait()
        self._http.shutdown()
        self._http.server_close()
        for dispatcher in self._queues.values():
            dispatcher.stop()

    def records(self, queue: str | None = None) -> list[dict[str, Any]]:
        """Every task still remembered, with its attempts; what /_emulator/tasks answers."""
        with self._lock:
            return [t.record() for t in self._tasks.values() if queue in (None, t.queue)]

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        adapter = self._routes.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
            if endpoint == "records":
                return _json({"tasks": self.records(request.args.get("queue"))})
            dispatcher = self._queue(args["queue"])
            enums_as_ints = "enum-encoding=int" in request.args.get("$alt", "")
            if endpoint == "create_task":
                return self._create_task(dispatcher, request, enums_as_ints)
            return self._list_tasks(dispatcher, request, enums_as_ints)
        except ApiError as exc:
            return exc.response()
        except HTTPException as exc:
            code = exc.code or 400
            status = "NOT_FOUND" if code == 404 else "INVALID_ARGUMENT"
            return ApiError(code, status, exc.description or exc.name).response()

    def _queue(self, path: str) -> QueueDispatcher:
        dispatcher = self._queues.get(path)
        if dispatcher is None:
            raise ApiError(404, "NOT_FOUND", f"Queue does not exist: {path}")
        return dispatcher

    def _create_task(self, dispatcher: QueueDispatcher, request: Request, enums_as_ints: bool) -> Response:
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict) or not isinstance(payload.get("task"), dict):
            _invalid("the request body must be a JSON object with a 'task'")
        view = _parse_enum(payload.get("responseView", 1), _VIEWS, "responseView") or 1
        return _json(self._admit(dispatcher, payload["task"]).resource(view, enums_as_ints))

    def _grpc_create_task(self, request: tasks_v2.CreateTaskRequest, context: grpc.ServicerContext) -> tasks_v2.Task:
        try:
            task = self._admit(self._queue(request.parent), _rest_shape(request.task))
        except ApiError as exc:
            context.abort(_GRPC_CODES.get(exc.code, grpc.StatusCode.UNKNOWN), exc.message)
        return tasks_v2.Task(
            name=task.name,
            schedule_time=datetime.fromtimestamp(task.schedule_time, UTC),
            create_time=datetime.fromtimestamp(task.create_time, UTC),
            dispatch_deadline=timedelta(seconds=task.dispatch_deadline),
            view=tasks_v2.Task.View.BASIC,
        )

    def _admit(self, dispatcher: QueueDispatcher, body: dict[str, Any]) -> Task:
        """Check a task (REST JSON shape), refuse a name in use, and schedule it."""
        now = time.time()
        task = self._task_from_json(dispatcher, body, now)
        with self._lock:
            self._forget_expired(now)
            if task.name in self._tasks:
                raise ApiError(409, "ALREADY_EXISTS", f"Requested entity already exists: {task.name}")
            self._tasks[task.name] = task
            dispatcher.schedule(task)
        logger.info("task %s created for %s at %s", task.name, task.url, _format_timestamp(task.schedule_time))
        return task

    def _list_tasks(self, dispatcher: QueueDispatcher, request: Request, enums_as_ints: bool) -> Response:
        view = _parse_enum(_int_or_str(request.args.get("responseView", "1")), _VIEWS, "responseView") or 1
        with self._lock:
            tasks = [t.resource(view, enums_as_ints) for t in dispatcher.pending()]
        return _json({"tasks": tasks} if tasks else {})

    def _task_from_json(self, dispatcher: QueueDispatcher, body: dict[str, Any], now: float) -> Task:
        name = body.get("name") or f"{dispatcher.path}/tasks/{secrets.randbelow(10**19):019d}"
        prefix = f"{dispatcher.path}/tasks/"
        if not isinstance(name, str) or not name.startswith(prefix) or not _TASK_ID.match(name[len(prefix) :]):
            _invalid(f"task name must be {prefix}TASK_ID (letters, digits, '-' or '_'): {name!r}")
        http = body.get("httpRequest")
        if not isinstance(http, dict):
            _invalid("the local Cloud Tasks supports HTTP targets only: set task.httpRequest")
        url = http.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            _invalid(f"httpRequest.url must be an http(s) URL: {url!r}")
        method = _HTTP_METHODS[_parse_enum(http.get("httpMethod", 1), _HTTP_METHODS, "httpMethod") or 1]
        headers = http.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            _invalid("httpRequest.headers must map names to strings")
        payload = _decode_bytes(http["body"]) if "body" in http else b""
        if payload and method not in _BODY_METHODS:
            _invalid(f"a body is allowed only with POST, PUT or PATCH, not {method}")
        if payload and not any(k.lower() == "content-type" for k in headers):
            headers = {**headers, "Content-Type": "application/octet-stream"}
        deadline = DEFAULT_DISPATCH_DEADLINE
        if "dispatchDeadline" in body:
            deadline = _parse_duration(body["dispatchDeadline"], "dispatchDeadline")
            if not MIN_DISPATCH_DEADLINE <= deadline <= MAX_DISPATCH_DEADLINE:
                _invalid("dispatchDeadline must be between 15s and 1800s")
        schedule_time = now
        if "scheduleTime" in body:
            schedule_time = max(now, _parse_timestamp(body["scheduleTime"], "scheduleTime"))
        return Task(
            name=name,
            queue=dispatcher.name,
            url=url,
            method=method,
            headers=dict(headers),
            body=payload,
            schedule_time=schedule_time,
            dispatch_deadline=deadline,
            create_time=now,
        )

    def _forget_expired(self, now: float) -> None:
        """Free the names of tasks that finished more than name_reuse_seconds ago; caller locks."""
        horizon = now - self.name_reuse_seconds
        while self._finished and self._finished[0].attempts[-1].response_time < horizon:
            self._tasks.pop(self._finished.popleft().name, None)


_connections = Connections()


def _rest_shape(task: tasks_v2.Task) -> dict[str, Any]:
    """A task that came over gRPC, in the REST JSON shape `_task_from_json` checks, so both
    faces follow one set of rules."""
    body: dict[str, Any] = {}
    if task.name:
        body["name"] = task.name
    if "http_request" in task:
        http = task.http_request
        body["httpRequest"] = {"url": http.url, "httpMethod": int(http.http_method), "headers": dict(http.headers)}
        if http.body:
            body["httpRequest"]["body"] = base64.b64encode(http.body).decode()
    if "schedule_time" in task:
        body["scheduleTime"] = _format_timestamp(task.schedule_time.timestamp())
    if "dispatch_deadline" in task:
        body["dispatchDeadline"] = f"{task.dispatch_deadline.total_seconds()}s"
    return body


def _int_or_str(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def create_server(
    project: str,
    location: str,
    queues: dict[str, QueueConfig],
    port: int = 0,
    *,
    grpc_port: int = 0,
    name_reuse_seconds: float = NAME_REUSE_SECONDS,
) -> CloudTasksServer:
    """A server bound to 127.0.0.1:`port` for REST and :`grpc_port` for gRPC (0 picks a free
    one); call .start() to serve."""
    return CloudTasksServer(project, location, queues, port, grpc_port=grpc_port, name_reuse_seconds=name_reuse_seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8123, help="REST")
    parser.add_argument("--grpc-port", type=int, default=8125, help="gRPC (CLOUD_TASKS_EMULATOR_HOST)")
    parser.add_argument("--project", default=settings().google_cloud_project)
    parser.add_argument("--location", default=settings().region)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # we log each task; not each request
    server = create_server(args.project, args.location, declaration().queues, args.port, grpc_port=args.grpc_port)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    server.start()
    parent = f"projects/{args.project}/locations/{args.location}"
    print(
        f"Cloud Tasks emulator on {server.grpc_target} (gRPC) and {server.url} (REST) for {parent}, "
        f"queues: {', '.join(declaration().queues)}",
        flush=True,
    )
    stopping.wait()
    server.stop()


if __name__ == "__main__":
    main()
