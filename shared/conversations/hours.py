"""An outlet's business hours: when staff answer. Outside them a handoff still happens (the
AI keeps answering what it can), and the notice tells the customer when staff are back.

Stored in `outlets.settings["business_hours"]` as `{"timezone": "Asia/Jakarta", "weekly":
{"mon": [["08:00", "17:00"]], ...}}`; a day that is missing is closed. No hours set: always open.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from pydantic import BaseModel, Field, field_serializer, field_validator, model_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "id": ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"),
}
BACK_AT = {
    "en": "Our team is away right now and will be back {day} at {time}.",
    "id": "Tim kami sedang di luar jam kerja dan kembali {day} pukul {time}.",
}


class BusinessHours(BaseModel):
    timezone: str | None = Field(None, description="IANA zone; unset: the tenant's.", examples=["Asia/Jakarta"])
    weekly: dict[Day, list[tuple[time, time]]] = Field(
        description='Opening and closing times per day, e.g. {"mon": [["08:00", "17:00"]]}; a missing day is closed.'
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and value not in available_timezones():
            raise ValueError(f"{value!r} is not an IANA time zone")
        return value

    @model_validator(mode="after")
    def _opens_before_closing(self) -> BusinessHours:
        for day, spans in self.weekly.items():
            if len(spans) > 4:
                raise ValueError(f"{day}: at most 4 opening spans a day")
            for opens, closes in spans:
                if opens >= closes:
                    raise ValueError(f"{day}: {opens:%H:%M} must be before {closes:%H:%M}")
        return self

    @field_serializer("weekly")
    def _as_clock_times(self, weekly: dict[Day, list[tuple[time, time]]]) -> dict[str, list[list[str]]]:
        return {day: [[f"{a:%H:%M}", f"{b:%H:%M}"] for a, b in spans] for day, spans in weekly.items()}

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def next_opening(hours: BusinessHours, moment: datetime, default_zone: str) -> datetime | None:
    """None while open (or with no opening at all); else when staff are next back."""
    zone = ZoneInfo(hours.timezone or default_zone)
    local = moment.astimezone(zone)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        for opens, closes in sorted(hours.weekly.get(DAYS[day.weekday()], [])):
            start = datetime.combine(day, opens, zone)
            end = datetime.combine(day, closes, zone)
            if offset == 0 and start <= local < end:
                return None
            if start > local:
                return start
    return None


def away_notice(outlet_settings: dict[str, Any], moment: datetime, default_zone: str, language: str) -> str | None:
    """The sentence to add to a handoff notice outside business hours, or None."""
    raw = outlet_settings.get("business_hours")
    if not raw:
        return None
    back = next_opening(BusinessHours.model_validate(raw), moment, default_zone)
    if back is None:
        return None
    names = DAY_NAMES.get(language, DAY_NAMES["en"])
    local = moment.astimezone(back.tzinfo)
    if back.date() == local.date():
        day = "hari ini" if language == "id" else "today"
    elif back.date() == local.date() + timedelta(days=1):
        day = "besok" if language == "id" else "tomorrow"
    else:
        day = names[back.weekday()]
    return BACK_AT.get(language, BACK_AT["en"]).format(day=day, time=f"{back:%H:%M}")
