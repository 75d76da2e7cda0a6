"""Business hours: when staff are back, in the outlet's zone, and what the customer is told."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.conversations.hours import BusinessHours, away_notice, next_opening

WEEKDAYS = {"weekly": {d: [["08:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}


def at(text: str) -> datetime:
    """A moment in Jakarta (UTC+7), written as Jakarta time."""
    return datetime.fromisoformat(f"{text}+07:00")


@pytest.mark.parametrize(
    ("moment", "back"),
    [
        ("2026-12-07T09:00", None),  # Monday morning: open
        ("2026-12-07T12:30", "2026-12-07T13:00"),  # lunch
        ("2026-12-07T17:00", "2026-12-08T08:00"),  # closing time is closed
        ("2026-12-05T10:00", "2026-12-07T08:00"),  # Saturday: Monday
        ("2026-12-07T07:59", "2026-12-07T08:00"),
    ],
)
def test_next_opening(moment: str, back: str | None) -> None:
    hours = BusinessHours.model_validate(WEEKDAYS)
    found = next_opening(hours, at(moment), "Asia/Jakarta")
    assert found == (at(back) if back else None)


def test_the_outlets_own_zone_wins() -> None:
    hours = BusinessHours.model_validate({"timezone": "Asia/Makassar", **WEEKDAYS})  # UTC+8
    # 07:30 in Jakarta is 08:30 in Makassar: open there.
    assert next_opening(hours, at("2026-12-07T07:30"), "Asia/Jakarta") is None


def test_the_notice_says_when_staff_are_back_in_the_customers_language() -> None:
    stored = {"business_hours": BusinessHours.model_validate(WEEKDAYS).stored()}
    saturday = at("2026-12-05T10:00").astimezone(UTC)
    assert away_notice(stored, saturday, "Asia/Jakarta", "id") == (
        "Tim kami sedang di luar jam kerja dan kembali Senin pukul 08:00."
    )
    assert away_notice(stored, at("2026-12-07T18:00"), "Asia/Jakarta", "en") == (
        "Our team is away right now and will be back tomorrow at 08:00."
    )
    assert away_notice(stored, at("2026-12-07T12:15"), "Asia/Jakarta", "en").endswith("back today at 13:00.")
    assert away_notice(stored, at("2026-12-07T09:00"), "Asia/Jakarta", "en") is None
    assert away_notice({}, saturday, "Asia/Jakarta", "en") is None  # no hours set: always open


@pytest.mark.parametrize(
    "bad",
    [
        {"weekly": {"mon": [["17:00", "08:00"]]}},
        {"weekly": {"someday": [["08:00", "17:00"]]}},
        {"weekly": {"mon": [["8am", "5pm"]]}},
        {"timezone": "Mars/Olympus", "weekly": {}},
        {"weekly": {"mon": [["08:00", "09:00"]] * 5}},
    ],
)
def test_hours_that_make_no_sense_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BusinessHours.model_validate(bad)
