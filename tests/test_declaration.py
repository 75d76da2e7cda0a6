"""functions/functions.yaml is the one declaration: it and the function folders must agree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.cloud.declaration import (
    FUNCTIONS_DIR,
    HttpTrigger,
    QueueConfig,
    ScheduleTrigger,
    TaskQueueTrigger,
    declaration,
    load_declaration,
)

DESIGN_TOPICS = {
    "whatsapp.incoming.messages",
    "whatsapp.outgoing.messages",
    "knowledge.document.uploaded",
    "billing.quota.warning",
    "billing.service.suspended",
    "conversation.completed",
}


def function_folders() -> set[str]:
    return {p.name for p in FUNCTIONS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}


def decorated_functions(source: Path) -> dict[str, set[str]]:
    """Top-level function name -> the functions_framework decorators on it."""
    tree = ast.parse(source.read_text())
    found: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = {
                d.attr
                for d in node.decorator_list
                if isinstance(d, ast.Attribute)
                and isinstance(d.value, ast.Name)
                and d.value.id == "functions_framework"
            }
    return found


def test_every_function_folder_is_declared_and_every_declaration_has_a_folder() -> None:
    declared = set(declaration().functions)
    assert function_folders() - declared == set(), "a function exists without a declaration"
    assert declared - function_folders() == set(), "a declaration points at no function folder"


@pytest.mark.parametrize("name", sorted(declaration().functions))
def test_entry_point_exists_with_the_signature_its_trigger_needs(name: str) -> None:
    fn = declaration().functions[name]
    source = declaration().source_of(name)
    assert source.exists(), f"{source} is missing"
    decorators = decorated_functions(source)
    assert fn.entry_point in decorators, f"{source} defines no {fn.entry_point}()"
    http_like = isinstance(fn.trigger, HttpTrigger | TaskQueueTrigger | ScheduleTrigger)
    assert decorators[fn.entry_point] == ({"http"} if http_like else {"cloud_event"})


def test_design_topics_are_declared() -> None:
    assert set(declaration().topics) >= DESIGN_TOPICS


def test_a_declaration_pointing_at_nothing_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "functions.yaml"
    broken.write_text(
        "topics: [a.topic]\nqueues: {}\nbuckets: {}\nfunctions:\n"
        "  listener:\n    entry_point: run\n    description: d\n"
        "    trigger: {kind: pubsub, topic: no.such.topic}\n"
    )
    with pytest.raises(ValidationError, match="undeclared topic"):
        load_declaration(broken)
    broken.write_text(broken.read_text().replace("kind: pubsub, topic: no.such.topic", "kind: carrier_pigeon"))
    with pytest.raises(ValidationError):
        load_declaration(broken)


def test_queue_backoff_doubles_then_grows_linearly_and_caps() -> None:
    queue = QueueConfig(
        max_attempts=10,
        min_backoff_seconds=1,
        max_backoff_seconds=20,
        max_doublings=3,
        max_dispatches_per_second=1,
        max_concurrent_dispatches=1,
    )
    assert [queue.backoff_after(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 20, 20]
