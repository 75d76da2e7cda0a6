"""Push delivery for the Pub/Sub emulator, with the concurrency production push has.

The official emulator's own push loop delivers one message at a time per subscription, which
caps a local function at about ten messages a second however many instances production would
run. This dispatcher pulls instead (streaming pull, with ordering keys honoured by the client:
the next message of a key waits until the previous one is acknowledged) and POSTs each message
to the function in the push format, many at once. A 2xx answer acknowledges; anything else
leaves the message to come back after a backoff, as a push subscription's retry policy does.

    python -m emulators.pubsub_push --functions-base-url http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import base64
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

from shared.config import settings
from shared.deployment import PubSubTrigger, declaration

log = logging.getLogger(__name__)

MIN_BACKOFF, MAX_BACKOFF = 1, 60  # seconds, as the declared push retry policy
_local = threading.local()


def subscription_name(function: str) -> str:
    return f"{function}-push"


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session  # type: ignore[no-any-return]


def _deliver(url: str, subscription: str, message: Any) -> None:
    body = {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "publishTime": message.publish_time.isoformat(),
            "orderingKey": message.ordering_key,
        },
        "subscription": subscription,
        "deliveryAttempt": message.delivery_attempt or 1,
    }
    try:
        answer = _session().post(url, json=body, timeout=600)
        ok = 200 <= answer.status_code < 300
    except requests.RequestException as exc:
        log.warning("push to %s failed: %s", url, exc)
        ok = False
    if ok:
        message.ack()
        return
    attempt = message.delivery_attempt or 1
    message.modify_ack_deadline(min(MAX_BACKOFF, MIN_BACKOFF * 2 ** (attempt - 1)))
    message.drop()  # not acknowledged: Pub/Sub delivers it again when the deadline passes


class PushDispatcher:
    """One streaming pull per Pub/Sub-triggered function, pushing to `{base}/{function}`."""

    def __init__(self, functions_base_url: str, concurrency: int = 8) -> None:
        self.base = functions_base_url.rstrip("/")
        self.concurrency = concurrency
        self._futures: list[Any] = []
        self._subscriber = pubsub_v1.SubscriberClient()

    def start(self) -> None:
        project = settings().google_cloud_project
        for name, fn in declaration().functions.items():
            if not isinstance(fn.trigger, PubSubTrigger):
                continue
            path = self._subscriber.subscription_path(project, subscription_name(name))
            url = f"{self.base}/{name}"
            flow = pubsub_v1.types.FlowControl(max_messages=self.concurrency * 2)
            scheduler = ThreadScheduler(ThreadPoolExecutor(self.concurrency, thread_name_prefix=name))
            self._futures.append(
                self._subscriber.subscribe(
                    path,
                    lambda m, url=url, path=path: _deliver(url, path, m),
                    flow_control=flow,
                    scheduler=scheduler,
                    await_callbacks_on_shutdown=True,
                )
            )

    def stop(self) -> None:
        for future in self._futures:
            future.cancel()
        self._futures.clear()


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
