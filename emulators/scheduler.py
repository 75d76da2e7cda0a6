"""A local Cloud Scheduler: fires each schedule-triggered function on its cron, in its time zone.

Cloud Scheduler has no emulator. This one sends what its HTTP jobs send (a POST with the
X-CloudScheduler headers) to `{functions_base_url}/{function}`, does not retry (a job's default
retry count is 0), and does not catch up on fires missed while it was not running. A control
endpoint, POST /_emulator/run/{function}, fires a job at once, so nobody waits for 03:00 Jakarta.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import requests
from croniter import croniter
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Response

from shared.cloud.declaration import Declaration, ScheduleTrigger, declaration

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)

ATTEMPT_DEADLINE = 180.0  # Cloud Scheduler's default for HTTP targets


@dataclass(frozen=True)
class ScheduledJob:
    """One schedule trigger; the job is named after its function."""

    function: str
    cron: str
    time_zone: str = "Etc/UTC"

    def next_fire(self, after: datetime) -> datetime:
        """The first fire strictly after `after` (an aware datetime), in UTC. The cron is read
        in the job's time zone, so "0 3 * * *" in Asia/Jakarta fires at 20:00 UTC."""
        local = after.astimezone(ZoneInfo(self.time_zone))
        fire: datetime = croniter(self.cron, local).get_next(datetime)
        return fire.astimezone(UTC)


def declared_jobs(decl: Declaration | None = None) -> list[ScheduledJob]:
    decl = decl or declaration()
    return [
        ScheduledJob(name, fn.trigger.cron, fn.trigger.time_zone)
        for name, fn in decl.functions.items()
        if isinstance(fn.trigger, ScheduleTrigger)
    ]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Scheduler:
    """Fires `jobs` on their crons once started; `run_now` fires one immediately."""

    def __init__(
        self,
        functions_base_url: str,
        jobs: Iterable[ScheduledJob] | None = None,
        *,
        control_port: int | None = None,
    ) -> None:
        self.functions_base_url = functions_base_url.rstrip("/")
        self.jobs = {job.function: job for job in (declared_jobs() if jobs is None else jobs)}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._control: BaseWSGIServer | None = None
        if control_port is not None:
            self._control = make_server("127.0.0.1", control_port, self._wsgi, threaded=True)
        self._routes = Map([Rule("/_emulator/run/<function>", methods=["POST"])])

    @property
    def control_port(self) -> int | None:
        return None if self._control is None else int(self._control.server_port)

    def start(self) -> None:
        self._thread.start()
        if self._control is not None:
            threading.Thread(
                target=self._control.serve_forever, args=(0.1,), name="scheduler-control", daemon=True
            ).start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        if self._control is not None:
            self._control.shutdown()
            self._control.server_close()

    def run_now(self, function: str, scheduled: datetime | None = None) -> int:
        """POST the job's request as Cloud Scheduler would and return the HTTP status.

        Raises KeyError for an unknown job and requests.RequestException when nothing answers.
        """
        job = self.jobs[function]
        when = _rfc3339(scheduled or datetime.now(UTC))
        response = requests.post(
            f"{self.functions_base_url}/{job.function}",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Google-Cloud-Scheduler",
                "X-CloudScheduler": "true",
                "X-CloudScheduler-JobName": job.function,
                "X-CloudScheduler-ScheduleTime": when,
            },
            data=json.dumps({"job": job.function, "scheduled_time": when}),
            timeout=ATTEMPT_DEADLINE,
        )
        response.close()
        level = logging.INFO if response.ok else logging.WARNING
        logger.log(level, "fired %s (scheduled %s): HTTP %d", job.function, when, response.status_code)
        return response.status_code

    def _run(self) -> None:
        now = datetime.now(UTC)
        upcoming = {name: job.next_fire(now) for name, job in self.jobs.items()}
        while upcoming:
            name, fire_at = min(upcoming.items(), key=lambda item: item[1])
            if self._stopping.wait(max(0.0, (fire_at - datetime.now(UTC)).total_seconds())):
                return
            threading.Thread(target=self._fire, args=(name, fire_at), daemon=True).start()
            # From the later of the due time and now: a late wake-up skips missed fires.
            upcoming[name] = self.jobs[name].next_fire(max(fire_at, datetime.now(UTC)))

    def _fire(self, function: str, scheduled: datetime) -> None:
        try:
            self.run_now(function, scheduled)
        except requests.RequestException as exc:
            logger.warning("could not fire %s: %s", function, exc)

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        adapter = self._routes.bind_to_environ(environ)
        try:
            _, args = adapter.match()
        except HTTPException as exc:  # werkzeug's NotFound and MethodNotAllowed are WSGI apps too
            return exc(environ, start_response)
        function = args["function"]
        if function not in self.jobs:
            response: Response = _json({"error": f"no scheduled job {function!r}"}, 404)
        else:
            try:
                response = _json({"job": function, "status": self.run_now(function)})
            except requests.RequestException as exc:
                response = _json({"job": function, "error": str(exc)}, 502)
        return response(environ, start_response)


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions-base-url", required=True, help="where /{function} is served")
    parser.add_argument("--control-port", type=int, help="serve POST /_emulator/run/{function} here")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    scheduler = Scheduler(args.functions_base_url, control_port=args.control_port)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    scheduler.start()
    now = datetime.now(UTC)
    for job in scheduler.jobs.values():
        next_fire = _rfc3339(job.next_fire(now))
        print(f"Scheduler: {job.function} on '{job.cron}' ({job.time_zone}), next {next_fire}", flush=True)
    if scheduler.control_port is not None:
        print(
            f"Scheduler control: POST http://127.0.0.1:{scheduler.control_port}/_emulator/run/FUNCTION",
            flush=True,
        )
    stopping.wait()
    scheduler.stop()


if __name__ == "__main__":
    main()
