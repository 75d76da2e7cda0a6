"""An instance's long-lived objects leave the garbage collector's generations after its first
invocation, whichever kind of function it runs. Each case runs in a fresh interpreter: the
collector's state is process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from shared.cloud import runtime
from shared.cloud.declaration import REPO_ROOT

CASES = {
    "http": """
        class Request:
            method, path, headers = "POST", "/", {}
        entry = runtime.http_function("probe")(lambda request: ("ok", 200))
        call = lambda: entry(Request())
    """,
    "event": """
        entry = runtime.event_function("probe")(lambda event: None)
        call = lambda: entry({"id": "1", "time": None})
    """,
    "event that fails": """
        def fail(event):
            raise RuntimeError("asks for a redelivery")
        entry = runtime.event_function("probe")(fail)
        def call():
            try:
                entry({"id": "1", "time": None})
            except RuntimeError:
                pass
    """,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_first_invocation_freezes_what_the_instance_keeps(case: str) -> None:
    script = textwrap.dedent(
        """
        import gc
        from shared.cloud import runtime
        {case}
        before = (gc.get_freeze_count(), gc.get_threshold()[0])
        call()
        after = (gc.get_freeze_count(), gc.get_threshold()[0])
        keeper = [object()]  # something made after the first invocation is not frozen
        call()
        print(before[0], before[1], after[0], after[1], gc.get_freeze_count())
        """
    ).format(case=textwrap.dedent(CASES[case]))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    last_line = result.stdout.splitlines()[-1]  # the JSON logs of the failing case come first
    frozen_before, threshold_before, frozen_after, threshold_after, frozen_later = map(int, last_line.split())
    assert frozen_before == 0  # Python's defaults until then
    assert threshold_before == 700
    assert frozen_after > 10_000  # the imported modules, at least
    assert threshold_after == runtime.YOUNG_GENERATION_THRESHOLD
    assert frozen_later <= frozen_after  # once per instance: later objects stay collectable
