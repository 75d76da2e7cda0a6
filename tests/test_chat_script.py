"""scripts/chat against the running local stack: a customer says hello, then asks for a
person; the first gets the tenant's honest fallback reply, the second the handoff notice, and a
third line is met with the silence of a conversation waiting for an agent."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from emulators import chat
from emulators.seed import DEMO_SETTINGS
from emulators.stack import LocalStack
from shared.assistant.replies import fallback_text
from shared.conversations.handoff import HANDOFF_NOTICE


def test_say_mode_gets_the_fallback_reply_then_the_handoff_notice(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    phone = f"6281{uuid.uuid4().int % 10**10:010d}"  # a customer of its own, whatever ran before
    code = chat.main(
        [
            "--state-dir",
            str(stack.options.state_dir),
            "--phone",
            phone,
            "--wait",
            "20",
            "--say",
            "hello",
            "--say",
            "saya mau bicara dengan manusia",
            "--say",
            "halo?",
        ]
    )
    out = capsys.readouterr().out
    fallback = fallback_text(DEMO_SETTINGS, "en")  # nothing in the demo documents answers "hello"
    assert code == 0, out
    assert fallback in out
    assert HANDOFF_NOTICE["id"] in out
    assert out.index(fallback) < out.index(HANDOFF_NOTICE["id"])
    assert "✓✓ read" in out
    assert out.rstrip().endswith("(handed off: waiting for a human agent)")


def test_without_a_running_system_it_says_to_start_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert chat.main(["--state-dir", str(tmp_path), "--say", "hello"]) == 1
    assert "start scripts/dev first" in capsys.readouterr().err
