"""Push delivery for the Pub/Sub emulator, with the concurrency production push has.

The official emulator's own push loop delivers one message at a time per subscription, which
caps a local function at about ten messages a second however many instances production would
run. This dispatcher pulls instead and POSTs each message to the function in the push format,
many at once. Messages that share an ordering key go one at a time, in the order they came: the
next waits until the previous one is acknowledged or given up. A 2xx answer acknowledges;
anything else leaves the message to come back after a backoff, as a push subscription's retry
policy does.

It calls Pull, Acknowledge and ModifyAckDeadline itself, with raw protobuf messages, instead of
the client library's streaming pull, whose receipt modacks and lease, dispatch and callback
threads cost more CPU than the pushes themselves (measured per customer message: 12 ms before,
4 ms now). Messages waiting for their turn stay leased, as the library keeps them.

    python -m emulators.pubsub_push --functions-base-url http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime as dt
import http.client
import json
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.protobuf import empty_pb2  # type: ignore[import-untyped]
from google.pubsub_v1 import types

from emulators.keepalive import Connections
from shared.cloud.declaration import PubSubTrigger, declaration
from shared.cloud.settings import settings

log = logging.getLogger(__name__)

MIN_BACKOFF, MAX_BACKOFF = 1, 60  # seconds, as the declared push retry policy
PUSH_TIMEOUT = 600.0  # seconds a function may take to answer, as Cloud Run's request timeout
PULL_TIMEOUT = 30.0  # a Pull waits for messages this long at most; the emulator answers sooner
ACK_BATCH = 0.1  # seconds acknowledgements wait to go out together: one RPC for several costs less CPU
_SERVICE = "/google.pubsub.v1.Subscriber"
_PullRequest, _PullResponse = types.PullRequest.pb(), types.PullResponse.pb()
_AckRequest, _ModAckRequest = types.AcknowledgeRequest.pb(), types.ModifyAckDeadlineRequest.pb()
_JSON = {"Content-Type": "application/json"}


def subscription_name(function: str) -> str:
    return f"{function}-push"


def _push_body(subscription: str, received: Any) -> bytes:
    """The JSON a push subscription POSTs for one message."""
    message = received.message
    published = dt.datetime.fromtimestamp(
        message.publish_time.seconds + message.publish_time.nanos / 1e9, tz=dt.UTC
    ).isoformat()
    body = {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "publishTime": published,
            "orderingKey": message.ordering_key,
        },
        "subscription": subscription,
        "deliveryAttempt": received.delivery_attempt or 1,
    }
    return json.dumps(body).encode()


class _Subscription:
    """Pulls one subscription and pushes its messages to `url`, `concurrency` at a time.

    At most twice `concurrency` messages are leased at once (in flight or waiting for their
    ordering key); a lease thread keeps them from expiring while they wait or are pushed, and
    an ack thread acknowledges the pushed ones in batches.
    """

    def __init__(
        self, channel: grpc.Channel, path: str, url: str, concurrency: int, ack_deadline: int, name: str
    ) -> None:
        self.path = path
        self.url = url
        self._pull = channel.unary_unary(
            f"{_SERVICE}/Pull",
            request_serializer=_PullRequest.SerializeToString,
            response_deserializer=_PullResponse.FromString,
        )
        self._ack = channel.unary_unary(
            f"{_SERVICE}/Acknowledge",
            request_serializer=_AckRequest.SerializeToString,
            response_deserializer=empty_pb2.Empty.FromString,
        )
        self._modack = channel.unary_unary(
            f"{_SERVICE}/ModifyAckDeadline",
            request_serializer=_ModAckRequest.SerializeToString,
            response_deserializer=empty_pb2.Empty.FromString,
        )
        self._ack_deadline = ack_deadline
        self._max_leased = concurrency * 2
        self._connections = Connections()  # each delivery thread's own
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix=name)
        self._changed = threading.Condition()
        self._leased: set[str] = set()  # ack ids in flight or waiting for their ordering key
        self._waiting: dict[str, collections.deque[Any]] = {}  # ordering key in flight -> the messages after it
        self._stopping = threading.Event()
        self._acks: list[str] = []  # pushed, to be acknowledged by _ack_loop
        self._acks_waiting = threading.Event()
        self._pending_pull: Any = None
        self._threads = [
            threading.Thread(target=self._pull_loop, name=f"{name}-pull", daemon=True),
            threading.Thread(target=self._lease_loop, name=f"{name}-lease", daemon=True),
            threading.Thread(target=self._ack_loop, name=f"{name}-ack", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._changed:
            self._stopping.set()
            self._changed.notify_all()
            if self._pending_pull is not None:
                self._pending_pull.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._send_acks()

    def _pull_loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping.is_set() or len(self._leased) < self._max_leased)
                if self._stopping.is_set():
                    return
                request = _PullRequest(subscription=self.path, max_messages=self._max_leased - len(self._leased))
                self._pending_pull = pending = self._pull.future(request, timeout=PULL_TIMEOUT)
            answered = threading.Event()  # result() alone would wake up ten times a second while it waits
            pending.add_done_callback(lambda _, answered=answered: answered.set())
            answered.wait()
            try:
                response = pending.result()
            except grpc.FutureCancelledError:
                return
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                    log.warning("pull from %s failed: %s", self.path, exc.details() or exc.code())
                    self._stopping.wait(MIN_BACKOFF)
                continue
            with self._changed:
                if self._stopping.is_set():
                    return  # what it brought is not acknowledged, so Pub/Sub delivers it again
                for received in response.received_messages:
                    self._leased.add(received.ack_id)
                    key = received.message.ordering_key
                    if key in self._waiting:
                        self._waiting[key].append(received)
                        continue
                    if key:
                        self._waiting[key] = collections.deque()
                    self._executor.submit(self._deliver, received)

    def _lease_loop(self) -> None:
        """Extend every lease well before it runs out. Under the lock, so that an extension sent
        just as a push fails cannot override that message's backoff."""
        while not self._stopping.wait(self._ack_deadline / 3):
            with self._changed:
                if not self._leased:
                    continue
                request = _ModAckRequest(
                    subscription=self.path, ack_ids=list(self._leased), ack_deadline_seconds=self._ack_deadline
                )
                try:
                    self._modack(request, timeout=PULL_TIMEOUT)
                except grpc.RpcError as exc:
                    log.warning("lease extension on %s failed: %s", self.path, exc.details() or exc.code())

    def _ack_loop(self) -> None:
        while self._acks_waiting.wait() and not self._stopping.wait(ACK_BATCH):
            self._send_acks()

    def _send_acks(self) -> None:
        with self._changed:
            ack_ids, self._acks = self._acks, []
            self._acks_waiting.clear()
        if not ack_ids:
            return
        try:
            self._ack(_AckRequest(subscription=self.path, ack_ids=ack_ids), timeout=PULL_TIMEOUT)
        except grpc.RpcError as exc:  # they come back when their deadline passes, as Pub/Sub is at least once
            log.warning("acknowledging %d messages of %s failed: %s", len(ack_ids), self.path, exc.details())

    def _deliver(self, received: Any) -> None:
        try:
            ok = self._push(received)
            with self._changed:
                self._leased.discard(received.ack_id)  # no longer extended: see _lease_loop
                if ok:
                    self._acks.append(received.ack_id)
                    self._acks_waiting.set()
            if not ok:
                attempt = received.delivery_attempt or 1
                backoff = min(MAX_BACKOFF, MIN_BACKOFF * 2 ** (attempt - 1))
                # Not acknowledged: Pub/Sub delivers it again when this deadline passes.
                self._modack(
                    _ModAckRequest(subscription=self.path, ack_ids=[received.ack_id], ack_deadline_seconds=backoff),
                    timeout=PULL_TIMEOUT,
                )
        except grpc.RpcError as exc:
            log.warning("settling a message of %s failed: %s", self.path, exc.details() or exc.code())
        except Exception:
            log.exception("delivering a message of %s failed", self.path)
        finally:
            self._next_of_key(received)

    def _push(self, received: Any) -> bool:
        body = _push_body(self.path, received)
        try:
            status = self._connections.request("POST", self.url, body, _JSON, PUSH_TIMEOUT)
        except (http.client.HTTPException, OSError) as exc:
            log.warning("push to %s failed: %s", self.url, exc)
            return False
        return 200 <= status < 300

    def _next_of_key(self, done: Any) -> None:
        """The settled message frees its lease slot and lets the next one of its ordering key go."""
        with self._changed:
            self._leased.discard(done.ack_id)
            key = done.message.ordering_key
            waiting = self._waiting.get(key)
            if waiting and not self._stopping.is_set():
                self._executor.submit(self._deliver, waiting.popleft())
            elif key in self._waiting:
                del self._waiting[key]
            self._changed.notify_all()


class PushDispatcher:
    """One pull loop per Pub/Sub-triggered function, pushing to `{base}/{function}`."""

    def __init__(self, functions_base_url: str, concurrency: int = 8) -> None:
        self.base = functions_base_url.rstrip("/")
        self.concurrency = concurrency
        self._subscriptions: list[_Subscription] = []
        self._subscriber = pubsub_v1.SubscriberClient()

    def start(self) -> None:
        project = settings().google_cloud_project
        channel = self._subscriber.transport.grpc_channel
        for name, fn in declaration().functions.items():
            if not isinstance(fn.trigger, PubSubTrigger):
                continue
            path = self._subscriber.subscription_path(project, subscription_name(name))
            deadline = self._subscriber.get_subscription(subscription=path).ack_deadline_seconds
            subscription = _Subscription(channel, path, f"{self.base}/{name}", self.concurrency, deadline, name)
            subscription.start()
            self._subscriptions.append(subscription)

    def stop(self) -> None:
        for subscription in self._subscriptions:
            subscription.stop()
        self._subscriptions.clear()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--functions-base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=8, help="deliveries in flight per subscription")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    dispatcher = PushDispatcher(args.functions_base_url, args.concurrency)
    dispatcher.start()
    print(f"Pub/Sub push dispatcher: delivering to {args.functions_base_url}", flush=True)
    stop.wait()
    dispatcher.stop()


if __name__ == "__main__":
    main()
