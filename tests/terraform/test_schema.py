"""Every argument and block in terraform/ exists in the Google provider's schema (the cdktf
bindings' assembly, tests/terraform/schema.py): a misspelling fails here, not at `plan`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shared.cloud.declaration import REPO_ROOT
from tests.terraform import schema
from tests.terraform.checks import Terraform

pytestmark = pytest.mark.skipif(schema.wheel() is None, reason="scripts/test downloads the provider schema")


def unknown(directory: Path) -> list[str]:
    loaded = schema.load()
    assert loaded is not None
    version, blocks = loaded
    assert version.startswith("6.")  # terraform/versions.tf asks for google ~> 6.10
    found = []
    tf = Terraform.parse(directory)
    for (kind, name), body in tf.resources.items():
        if not kind.startswith("google_"):
            continue  # random_password: another provider
        entry = blocks.get(f"resource.{kind}")
        if entry is None:
            found.append(f"no resource type {kind}")
            continue
        found += schema.unknown_arguments(body, entry["arguments"], f"{kind}.{name}")
    for (kind, name), body in tf.data_sources.items():
        entry = blocks.get(f"data.{kind}")
        if entry is None:
            found.append(f"no data source {kind}")
            continue
        found += schema.unknown_arguments(body, entry["arguments"], f"data.{kind}.{name}")
    sources = "".join(p.read_text() for p in sorted(directory.glob("*.tf")))
    return found + schema.unknown_references(sources, blocks)


def test_every_argument_is_the_providers() -> None:
    assert unknown(REPO_ROOT / "terraform") == []


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "pubsub.tf",
            "  ack_deadline_seconds       = try(",
            "  ack_deadline_second        = try(",
            "google_pubsub_subscription.push: no argument 'ack_deadline_second'",
        ),
        (
            "data.tf",
            "      point_in_time_recovery_enabled = true",
            "      point_in_time_recovery = true",
            "google_sql_database_instance.main.settings.backup_configuration: no argument 'point_in_time_recovery'",
        ),
        (
            "functions.tf",
            'resource "google_cloudfunctions2_function" "functions"',
            'resource "google_cloudfunction2_function" "functions"',
            "no resource type google_cloudfunction2_function",
        ),
        (
            "functions.tf",
            "      trigger_region        = var.region",
            "      trigger_location      = var.region",
            "google_cloudfunctions2_function.functions.event_trigger: no argument 'trigger_location'",
        ),
        (
            "outputs.tf",
            "google_compute_global_address.edge.address",
            "google_compute_global_address.edge.ip",
            "google_compute_global_address.edge: no attribute 'ip'",
        ),
    ],
)
def test_a_misspelt_argument_is_caught(tmp_path: Path, file: str, old: str, new: str, expected: str) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(REPO_ROOT / "terraform", copy)
    text = (copy / file).read_text()
    assert text.count(old) == 1
    (copy / file).write_text(text.replace(old, new))
    assert expected in unknown(copy)
