"""Object-finalize CloudEvents for storage-triggered functions, from the local Cloud Storage.

No storage emulator emits events, so this watcher lists each watched bucket every half second
and, for every object generation it has not delivered yet, POSTs the binary-mode CloudEvent
Eventarc would send. Like Eventarc, delivery is at least once: a non-2xx answer or a failed
connection is retried with backoff until the function accepts it. Delivered generations are
kept in a JSON state file, so a restarted watcher resends only what was never accepted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from shared.cloud.declaration import Declaration, StorageTrigger, declaration

logger = logging.getLogger(__name__)

FINALIZED = "google.cloud.storage.object.v1.finalized"


@dataclass(frozen=True)
class Subscription:
    """A storage-triggered function and the bucket it watches."""

    function: str
    bucket: str

    @property
    def key(self) -> str:
        return f"{self.function}:{self.bucket}"


def declared_subscriptions(decl: Declaration | None = None, env: Mapping[str, str] | None = None) -> list[Subscription]:
    """Every storage trigger in the declaration, its bucket named by the bucket's env var if set,
    else by its local_name, as the functions' settings resolve it (DOCUMENTS_BUCKET)."""
    decl = decl or declaration()
    env = os.environ if env is None else env
    subscriptions = []
    for name, fn in decl.functions.items():
        if isinstance(fn.trigger, StorageTrigger):
            bucket = decl.buckets[fn.trigger.bucket]
            subscriptions.append(Subscription(name, env.get(bucket.env) or bucket.local_name))
    return subscriptions


def event_id(bucket: str, name: str, generation: str) -> str:
    """Stable for one object generation, so a redelivered event carries the same ce-id."""
    return hashlib.sha256(f"{bucket}/{name}#{generation}".encode()).hexdigest()[:32]


def cloud_event_headers(obj: Mapping[str, Any]) -> dict[str, str]:
    """The binary-mode CloudEvent headers Eventarc sends for a finalized object."""
    bucket, name, generation = obj["bucket"], obj["name"], str(obj["generation"])
    return {
        "ce-id": event_id(bucket, name, generation),
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-type": FINALIZED,
        "ce-specversion": "1.0",
        "ce-subject": f"objects/{name}",
        "ce-time": obj["updated"],
        "ce-bucket": bucket,
        "content-type": "application/json",
    }


@dataclass
class _Delivery:
    subscription: Subscription
    obj: dict[str, Any]
    attempts: int = 0
    due: float = 0.0  # time.monotonic() of the next attempt
    in_flight: bool = False

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.subscription.key, self.obj["name"], int(self.obj["generation"]))


class StorageEventWatcher:
    """Polls the storage emulator and delivers finalize events; start() and stop() it."""

    def __init__(
        self,
        storage_url: str,
        functions_base_url: str,
        state_path: Path,
        subscriptions: list[Subscription] | None = None,
        *,
        poll_interval: float = 0.5,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        delivery_timeout: float = 540.0,
        max_concurrent_deliveries: int = 8,
    ) -> None:
        self.storage_url = storage_url.rstrip("/")
        self.functions_base_url = functions_base_url.rstrip("/")
        self.state_path = state_path
        self.subscriptions = declared_subscriptions() if subscriptions is None else subscriptions
        self.poll_interval = poll_interval
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.delivery_timeout = delivery_timeout
        self._lock = threading.Lock()
        # subscription key -> object name -> newest generation the function accepted
        self._delivered: dict[str, dict[str, int]] = self._load_state()
        self._pending: dict[tuple[str, str, int], _Delivery] = {}
        self._slots = threading.BoundedSemaphore(max_concurrent_deliveries)
        self._workers: set[threading.Thread] = set()
        self._missing_buckets: set[str] = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storage-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling, and give deliveries under way `timeout` seconds to record their outcome."""
        self._stopping.set()
        self._thread.join(timeout)
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            for subscription in self.subscriptions:
                try:
                    self._scan(subscription)
                except requests.RequestException as exc:
                    logger.warning("cannot list bucket %s: %s", subscription.bucket, exc)
            self._deliver_due()
            self._stopping.wait(self.poll_interval)

    def _scan(self, subscription: Subscription) -> None:
        """Queue every generation newer than the delivered one; forget objects that are gone."""
        objects = self._list_objects(subscription.bucket)
        if objects is None:
            return
        with self._lock:
            delivered = self._delivered.setdefault(subscription.key, {})
            for obj in objects:
                delivery = _Delivery(subscription, obj)
                _, name, generation = delivery.key
                if generation > delivered.get(name, -1) and delivery.key not in self._pending:
                    self._pending[delivery.key] = delivery
            gone = delivered.keys() - {obj["name"] for obj in objects}
            for name in gone:  # a re-created object has a newer generation anyway
                del delivered[name]
            if gone:
                self._save_state()

    def _list_objects(self, bucket: str) -> list[dict[str, Any]] | None:
        """The bucket's live objects, or None while the bucket does not exist."""
        url = f"{self.storage_url}/storage/v1/b/{quote(bucket, safe='')}/o"
        params: dict[str, str] = {}
        objects: list[dict[str, Any]] = []
        while True:
            response = requests.get(url, params=params, timeout=10)
            if response.status_code == 404:
                if bucket not in self._missing_buckets:
                    logger.warning("bucket %s does not exist (yet); watching for it", bucket)
                    self._missing_buckets.add(bucket)
                return None
            response.raise_for_status()
            self._missing_buckets.discard(bucket)
            page = response.json()
            objects.extend(page.get("items", []))
            if not page.get("nextPageToken"):
                return objects
            params["pageToken"] = page["nextPageToken"]

    def _deliver_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            for delivery in self._pending.values():
                if delivery.in_flight or delivery.due > now:
                    continue
                if not self._slots.acquire(blocking=False):
                    return
                delivery.in_flight = True
                worker = threading.Thread(target=self._deliver, args=(delivery,), daemon=True)
                self._workers.add(worker)
                worker.start()

    def _deliver(self, delivery: _Delivery) -> None:
        try:
            error = self._post(delivery)
        finally:
            self._slots.release()
        subscription, name, generation = delivery.key
        where = f"gs://{delivery.subscription.bucket}/{name}#{generation} to {delivery.subscription.function}"
        with self._lock:
            self._workers.discard(threading.current_thread())
            delivery.in_flight = False
            if error is None:
                delivered = self._delivered.setdefault(subscription, {})
                delivered[name] = max(generation, delivered.get(name, -1))
                del self._pending[delivery.key]
                self._save_state()
                logger.info("delivered %s", where)
                return
            delivery.attempts += 1
            delay = min(self.min_backoff * 2 ** (delivery.attempts - 1), self.max_backoff)
            delivery.due = time.monotonic() + delay
            logger.warning("could not deliver %s (%s); retry %d in %.3gs", where, error, delivery.attempts, delay)

    def _post(self, delivery: _Delivery) -> str | None:
        """POST the CloudEvent; None when the function accepted it, else what went wrong."""
        url = f"{self.functions_base_url}/{delivery.subscription.function}"
        body = {k: v for k, v in delivery.obj.items() if v is not None}
        try:
            response = requests.post(
                url,
                headers=cloud_event_headers(delivery.obj),
                data=json.dumps(body),
                timeout=self.delivery_timeout,
            )
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"
        response.close()
        return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"

    def _load_state(self) -> dict[str, dict[str, int]]:
        try:
            state = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        return {key: {name: int(g) for name, g in objects.items()} for key, objects in state["delivered"].items()}

    def _save_state(self) -> None:
        """Write the state atomically, so a crash mid-write cannot lose what was delivered."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_name(self.state_path.name + ".tmp")
        delivered = {key: {n: str(g) for n, g in objs.items()} for key, objs in self._delivered.items()}
        temporary.write_text(json.dumps({"delivered": delivered}, indent=1, sort_keys=True))
        os.replace(temporary, self.state_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage-url", required=True, help="the storage emulator, http://127.0.0.1:PORT")
    parser.add_argument("--functions-base-url", required=True, help="where /{function} is served")
    parser.add_argument("--state", required=True, type=Path, help="JSON file of delivered generations")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    watcher = StorageEventWatcher(
        args.storage_url, args.functions_base_url, args.state, poll_interval=args.poll_interval
    )
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    watcher.start()
    for subscription in watcher.subscriptions:
        target = f"{args.functions_base_url}/{subscription.function}"
        print(f"Storage events: gs://{subscription.bucket} -> {target}", flush=True)
    stopping.wait()
    watcher.stop()


if __name__ == "__main__":
    main()
