"""shared/ imports run one way (the import-linter contracts in pyproject.toml): the contracts
hold for the tree as it is, and break when an upward import is planted in a copy of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.cloud.declaration import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run the contracts of pyproject.toml over the `shared` package found under `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(REPO_ROOT / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("shared/cloud/logs.py", "from shared.sending import sender", "imports run one way"),
        ("shared/conversations/customers.py", "from shared.sending import statuses", "imports run one way"),
        ("shared/whatsapp/graph.py", "from shared.cloud import settings", "no database, no GCP"),
    ],
)
def test_a_planted_upward_import_breaks_a_contract(tmp_path: Path, module: str, planted: str, contract: str) -> None:
    shutil.copytree(REPO_ROOT / "shared", tmp_path / "shared")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{planted}  # planted\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = result.stdout[result.stdout.index("Broken contracts") :]
    assert contract in broken
    assert module.removesuffix(".py").replace("/", ".") in broken
