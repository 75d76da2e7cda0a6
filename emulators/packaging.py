"""`scripts/package`: each function's source archive for Cloud Run functions, reproducibly.

An archive holds what the Python build of Cloud Run functions expects at its root: the
function's `main.py`, the `shared/` package, `functions/functions.yaml` (the declaration it
reads at run time), and a `requirements.txt` pinning every production dependency (and theirs)
to the version this checkout was tested with. Entries are sorted, with
a fixed timestamp and permissions, so the same sources give the same bytes; the SHA-256 goes
into the object name (`<function>-<hash>.zip`), because a function redeploys only when the
object it is built from changes its name. `build/functions/manifest.json` lists them for
Terraform (terraform/functions.tf).

    scripts/package                 every function into build/functions/
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from shared.cloud.declaration import FUNCTIONS_DIR, REPO_ROOT, declaration

OUTPUT = REPO_ROOT / "build" / "functions"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can carry
SKIPPED = re.compile(r"(^|/)(__pycache__|\.mypy_cache|\.pytest_cache)(/|$)|\.pyc$")


def pinned_requirements() -> str:
    """The production dependencies of pyproject.toml and everything they need, as installed here."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    pins: dict[str, str] = {}
    while wanted:
        requirement = wanted.pop()
        name = _canonical(requirement.name)
        if name in pins or (requirement.marker is not None and not requirement.marker.evaluate({"extra": ""})):
            continue
        distribution = metadata.distribution(requirement.name)
        pins[name] = distribution.version
        wanted += [Requirement(r) for r in distribution.requires or []]
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _files(function: str) -> list[tuple[str, bytes]]:
    """(name in the archive, content) of one function, sorted by name."""
    entries = {
        "main.py": (FUNCTIONS_DIR / function / "main.py").read_bytes(),
        # shared.cloud.declaration reads it at run time (topics, queues, the sender's URL).
        "functions/functions.yaml": (FUNCTIONS_DIR / "functions.yaml").read_bytes(),
    }
    shared = REPO_ROOT / "shared"
    for path in shared.rglob("*"):
        relative = path.relative_to(REPO_ROOT).as_posix()
        if path.is_file() and not SKIPPED.search(relative):
            entries[relative] = path.read_bytes()
    entries["requirements.txt"] = pinned_requirements().encode()
    return sorted(entries.items())


def archive(function: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zipped:
        for name, content in _files(function):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever builds it
            zipped.writestr(info, content, compresslevel=9)
    return buffer.getvalue()


def build(output: Path = OUTPUT) -> dict[str, dict[str, str]]:
    """Every declared function's archive in `output`, and the manifest Terraform reads."""
    output.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for function in sorted(declaration().functions):
        data = archive(function)
        digest = hashlib.sha256(data).hexdigest()
        name = f"{function}-{digest[:16]}.zip"
        (output / name).write_bytes(data)
        manifest[function] = {"object": name, "sha256": digest}
    (output / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/package", description=__doc__)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    for function, entry in build(args.output).items():
        print(f"{function}: {args.output / entry['object']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
