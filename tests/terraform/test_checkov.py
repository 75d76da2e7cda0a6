"""checkov over terraform/: every finding is fixed or skipped inline with its reason, and a
skip taken away (or a protection removed) on a copy makes it fail again."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.cloud.declaration import REPO_ROOT

CHECKOV = REPO_ROOT / ".local" / "checkov" / "bin" / "checkov"

pytestmark = pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is installed by scripts/test (.local/checkov)")


def failed_checks(directory: Path) -> list[tuple[str, str]]:
    """(check id, resource) of every failed check; no network (--skip-download)."""
    run = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "terraform", "--skip-download", "-o", "json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(run.stdout or "{}")
    failed = report.get("results", {}).get("failed_checks", []) if isinstance(report, dict) else []
    return [(check["check_id"], check["resource"]) for check in failed]


def test_terraform_passes_checkov() -> None:
    assert failed_checks(REPO_ROOT / "terraform") == []


def test_every_skip_gives_its_reason() -> None:
    skips = re.findall(
        r"#checkov:skip=([A-Z0-9_]+)(:?)(.*)", "".join(p.read_text() for p in (REPO_ROOT / "terraform").glob("*.tf"))
    )
    assert skips
    for check, colon, reason in skips:
        assert colon, f"{check} is skipped without a reason"
        assert len(reason.split()) >= 5, f"{check}: {reason!r} is no reason"


def test_a_protection_removed_on_a_copy_fails(tmp_path: Path) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(REPO_ROOT / "terraform", copy)
    functions = copy / "functions.tf"
    functions.write_text(re.sub(r"\n\s*#checkov:skip=CKV_GCP_102:[^\n]*", "", functions.read_text()))
    data = copy / "data.tf"
    text = data.read_text()
    bucket = text.index('resource "google_storage_bucket" "documents"')
    anchor = "  uniform_bucket_level_access = true\n"
    at = text.index(anchor, bucket)
    data.write_text(text[:at] + text[at + len(anchor) :])  # the documents bucket without uniform access
    failed = set(failed_checks(copy))
    assert ("CKV_GCP_102", "google_cloud_run_service_iam_member.public") in failed  # its reason is gone
    assert ("CKV_GCP_29", "google_storage_bucket.documents") in failed
