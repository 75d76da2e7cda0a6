"""The grounding guard, in both directions: invented facts refused, true ones in another
format accepted."""

from __future__ import annotations

import pytest

from shared.assistant.grounding import ungrounded_facts

EVIDENCE = [
    "[harga.xlsx · sheet Laundry]\nService: Wash and iron | Unit: per kg | Price (Rp): 9500",
    "[faq.pdf · page 1]\nOpen every day 08.00-22.00. Monthly package Rp 1.250.000.",
    "customer: halo, pesanan saya no 4471",
]


@pytest.mark.parametrize(
    "reply",
    [
        "Harga cuci setrika Rp 9.500 per kg.",
        "Wash and iron is Rp9,500 per kg.",
        "Cuma 9,5 rb per kg kak!",
        "Kami buka jam 8:00 sampai 22.00.",
        "We open at 8am.",
        "The monthly package is Rp 1,250,000.",
        "Pesanan no 4471 sedang diproses.",
        "Bisa untuk 2 orang.",
        "Tidak ada harga di dokumen kami.",
    ],
)
def test_what_the_evidence_says_passes(reply: str) -> None:
    assert ungrounded_facts(reply, EVIDENCE) == []


@pytest.mark.parametrize(
    ("reply", "invented"),
    [
        ("Harganya Rp 12.000 per kg.", ["12000"]),
        ("Hari ini diskon 90%!", ["90"]),
        ("Kami buka jam 9:00.", ["09:00"]),
        ("Cuci setrika 9.500, dry cleaning Rp 45.000.", ["45000"]),
        ("Only 2 kg minimum.", ["2"]),
    ],
)
def test_an_invented_fact_is_caught(reply: str, invented: list[str]) -> None:
    assert ungrounded_facts(reply, EVIDENCE) == invented
