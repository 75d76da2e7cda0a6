"""The grounding guard: a reply may state only prices, numbers, times and dates that the
retrieved passages or the conversation contain.

Values are compared normalised, so "Rp 9.500", "Rp9,500", "9500" and "9,5 rb" are one value,
and "08.00", "8:00" and "8am" one time. Small counting words (0 to 10 with no currency,
unit, percent or clock attached) are not checked: a guard that refused every "2 people"
would refuse most good answers, and those are not the facts customers are misled by.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

_TIME = re.compile(r"\b(\d{1,2})[.:](\d{2})\b|\b(\d{1,2})\s*(am|pm)\b", re.IGNORECASE)
_THOUSANDS = re.compile(r"\b(\d+(?:[.,]\d+)?)\s*(rb|ribu|k|jt|juta)\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:[.,]\d{3})+|\d+)(?:[.,](\d{1,2}))?(?![\w])")
_SCALE = {"rb": 1000, "ribu": 1000, "k": 1000, "jt": 1_000_000, "juta": 1_000_000}
_ATTACHED = re.compile(r"^\s*(%|persen|kg|g|gr|ml|l|km|m|jam|hour|hours|menit|minutes|pcs|x)\b", re.IGNORECASE)
_CURRENCY_BEFORE = re.compile(r"(rp\.?|idr|\$|usd)\s*$", re.IGNORECASE)


def _times(text: str) -> tuple[set[str], str]:
    """Clock times as HH:MM, and the text with them taken out."""
    found: set[str] = set()

    def take(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            hour, minute = int(match.group(1)), int(match.group(2))
            if hour > 23 or minute > 59:
                return match.group(0)
        else:
            hour, minute = int(match.group(3)) % 12 + (12 if match.group(4).lower() == "pm" else 0), 0
        found.add(f"{hour:02d}:{minute:02d}")
        return " "

    return found, _TIME.sub(take, text)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _number(whole: str, decimals: str | None) -> Decimal | None:
    digits = re.sub(r"[.,]", "", whole)
    try:
        return Decimal(f"{digits}.{decimals}") if decimals else Decimal(digits)
    except InvalidOperation:
        return None


def facts(text: str, *, counting_words: bool = False) -> list[frozenset[str]]:
    """The numbers and times stated in `text`, each as its possible normalised readings."""
    times, rest = _times(text)
    claims = [frozenset({time}) for time in times]

    def scaled(match: re.Match[str]) -> str:
        number = Decimal(match.group(1).replace(",", "."))
        claims.append(frozenset({_plain(number * _SCALE[match.group(2).lower()])}))
        return " "

    rest = _THOUSANDS.sub(scaled, rest)
    for match in _NUMBER.finditer(rest):
        value = _number(match.group(1), match.group(2))
        if value is None:
            continue
        attached = _ATTACHED.match(rest[match.end() :]) or _CURRENCY_BEFORE.search(rest[: match.start()])
        if not counting_words and value <= 10 and not attached:
            continue
        readings = {_plain(value)}
        if match.group(2) is None and re.fullmatch(r"\d{1,3}[.,]\d{3}", match.group(1)):
            # "2.500" may be 2500 (Indonesian) or 2.5 (English): either reading is grounded.
            readings.add(_plain(Decimal(match.group(1).replace(",", "."))))
        claims.append(frozenset(readings))
    return claims


def ungrounded_facts(reply: str, evidence: Iterable[str]) -> list[str]:
    """What `reply` states that no evidence text contains (empty: grounded)."""
    known: set[str] = set()
    for text in evidence:
        for readings in facts(text, counting_words=True):
            known |= readings
    return sorted(max(readings, key=len) for readings in facts(reply) if not readings & known)
