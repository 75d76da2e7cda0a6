"""The model's Markdown as WhatsApp text, and replies WhatsApp accepts (at most 4,096 characters)."""

from __future__ import annotations

import pytest

from shared.assistant.formatting import split_for_whatsapp, to_whatsapp


@pytest.mark.parametrize(
    ("markdown", "whatsapp"),
    [
        ("**Cuci setrika**: Rp 9.500", "*Cuci setrika*: Rp 9.500"),
        ("__bold__ and *italic* and ~~gone~~", "*bold* and _italic_ and ~gone~"),
        ("## Jam buka\nSetiap hari", "*Jam buka*\nSetiap hari"),
        ("[menu](https://kopi.example/menu)", "menu (https://kopi.example/menu)"),
        ("![foto kopi](https://x/y.png)", "foto kopi"),
        ("* satu\n* dua", "- satu\n- dua"),
        ("Harga `**tidak diubah**` ya", "Harga `**tidak diubah**` ya"),
        ("a<br>b", "ab"),
        ("satu\n\n\n\ndua", "satu\n\ndua"),
        (
            "| Service | Price |\n|---|---|\n| Wash | 9.500 |\n| Dry clean | |",
            "- Service: Wash | Price: 9.500\n- Service: Dry clean",
        ),
    ],
)
def test_markdown_becomes_whatsapp_formatting(markdown: str, whatsapp: str) -> None:
    assert to_whatsapp(markdown) == whatsapp


def test_a_short_reply_is_one_message() -> None:
    assert split_for_whatsapp("Halo kak!") == ["Halo kak!"]


def test_a_long_reply_is_split_at_a_sentence_end_into_two() -> None:
    sentence = "Ini kalimat yang cukup panjang tentang layanan kami. "
    parts = split_for_whatsapp(sentence * 120)  # about 6,400 characters
    assert len(parts) == 2
    assert all(len(part) <= 4096 for part in parts)
    assert parts[0].endswith(".")
    assert "".join(parts).replace(" ", "") == (sentence * 120).replace(" ", "")


def test_what_does_not_fit_in_two_is_shortened_with_an_ellipsis() -> None:
    parts = split_for_whatsapp("word " * 3000)  # 15,000 characters
    assert len(parts) == 2
    assert all(0 < len(part) <= 4096 for part in parts)
    assert parts[1].endswith("…")


def test_one_endless_word_is_cut_hard() -> None:
    parts = split_for_whatsapp("x" * 10_000)
    assert [len(part) for part in parts] == [4096, 4096]


def test_an_empty_reply_is_refused() -> None:
    with pytest.raises(ValueError, match="never sent"):
        split_for_whatsapp("  \n ")
