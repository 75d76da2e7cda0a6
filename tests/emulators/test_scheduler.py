"""The local Cloud Scheduler: cron arithmetic in the job's zone, run-now, and the firing loop."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.processes import free_port, port_is_open, start
from emulators.scheduler import ScheduledJob, Scheduler, declared_jobs
from tests.emulators.conftest import MakeReceiver, Started, stops_on_sigterm

MakeScheduler = Callable[..., Scheduler]


@pytest.fixture
def make_scheduler(started: Started) -> MakeScheduler:
    def make(base_url: str, jobs: list[ScheduledJob] | None = None, **kwargs: Any) -> Scheduler:
        return started(Scheduler(base_url, jobs, **kwargs))

    return make


def parse_rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        ("*/5 * * * *", "Etc/UTC", "2026-03-01T10:02:30+00:00", "2026-03-01T10:05:00+00:00"),
        ("*/5 * * * *", "Etc/UTC", "2026-03-01T10:05:00+00:00", "2026-03-01T10:10:00+00:00"),
        # 03:00 in Jakarta (UTC+7) is 20:00 UTC the day before.
        ("0 3 * * *", "Asia/Jakarta", "2026-03-01T00:00:00+00:00", "2026-03-01T20:00:00+00:00"),
        ("0 3 * * *", "Asia/Jakarta", "2026-03-01T20:00:00+00:00", "2026-03-02T20:00:00+00:00"),
        ("0 3 * * *", "Asia/Jakarta", "2026-03-01T10:00:00+07:00", "2026-03-01T20:00:00+00:00"),
    ],
)
def test_the_next_fire_is_computed_in_the_job_time_zone(cron: str, zone: str, after: str, expected: str) -> None:
    fire = ScheduledJob("job", cron, zone).next_fire(datetime.fromisoformat(after))

    assert fire == datetime.fromisoformat(expected)
    assert fire.tzinfo == UTC


def test_the_declared_schedules_become_jobs() -> None:
    jobs = {job.function: job for job in declared_jobs()}

    assert jobs["conversation-expiry"] == ScheduledJob("conversation-expiry", "*/5 * * * *", "Etc/UTC")
    assert jobs["retention-purge"] == ScheduledJob("retention-purge", "0 3 * * *", "Asia/Jakarta")


def test_run_now_sends_what_cloud_scheduler_sends(make_receiver: MakeReceiver) -> None:
    receiver = make_receiver()
    scheduler = Scheduler(receiver.url)  # the declared jobs, not started: no cron fires
    before = datetime.now(UTC)

    assert scheduler.run_now("retention-purge") == 200

    (request,) = receiver.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/retention-purge"
    assert request.headers["x-cloudscheduler"] == "true"
    assert request.headers["x-cloudscheduler-jobname"] == "retention-purge"
    assert request.headers["content-type"] == "application/json"
    scheduled = parse_rfc3339(request.headers["x-cloudscheduler-scheduletime"])
    assert before - timedelta(milliseconds=1) <= scheduled <= datetime.now(UTC)
    body = json.loads(request.body)
    assert body == {
        "job": "retention-purge",
        "scheduled_time": request.headers["x-cloudscheduler-scheduletime"],
    }


def test_the_control_endpoint_fires_a_job_now(make_receiver: MakeReceiver, make_scheduler: MakeScheduler) -> None:
    receiver = make_receiver(default=500)
    scheduler = make_scheduler(receiver.url, control_port=0)
    control = f"http://127.0.0.1:{scheduler.control_port}/_emulator/run"

    fired = requests.post(f"{control}/conversation-expiry", timeout=5)
    unknown = requests.post(f"{control}/no-such-job", timeout=5)

    assert fired.status_code == 200
    assert fired.json() == {"job": "conversation-expiry", "status": 500}
    assert receiver.wait_for(1)[0].path == "/conversation-expiry"
    assert unknown.status_code == 404
    assert len(receiver.requests) == 1


def test_jobs_fire_on_their_cron(make_receiver: MakeReceiver, make_scheduler: MakeScheduler) -> None:
    receiver = make_receiver()
    every_second = ScheduledJob("tick", "* * * * * *", "Asia/Jakarta")  # croniter's seconds field

    make_scheduler(receiver.url, [every_second])

    first, second = receiver.wait_for(2, timeout=4)[:2]
    times = [parse_rfc3339(r.headers["x-cloudscheduler-scheduletime"]) for r in (first, second)]
    assert all(t.microsecond == 0 for t in times)  # fired for whole seconds, as the cron says
    assert times[1] - times[0] == timedelta(seconds=1)
    assert first.time >= times[0].timestamp()
    assert first.time - times[0].timestamp() < 0.5
    assert first.path == "/tick"


def test_the_command_line_fires_declared_jobs_and_stops_on_sigterm(tmp_path: Path, make_receiver: MakeReceiver) -> None:
    receiver, port = make_receiver(), free_port()
    command = [sys.executable, "-m", "emulators.scheduler", "--functions-base-url", receiver.url]
    service = start(
        "scheduler",
        [*command, "--control-port", str(port)],
        log_dir=tmp_path,
        ready=lambda: port_is_open(port),
        cwd=Path(__file__).resolve().parents[2],
        timeout=20,
    )
    with stops_on_sigterm(service):
        answer = requests.post(f"http://127.0.0.1:{port}/_emulator/run/conversation-expiry", timeout=5)
        assert answer.json() == {"job": "conversation-expiry", "status": 200}
        assert receiver.wait_for(1)[0].path == "/conversation-expiry"
