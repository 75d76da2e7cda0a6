"""The Google provider's arguments, from the jsii assembly inside the cdktf provider bindings
(PyPI `cdktf-cdktf-provider-google`, generated from the provider's own schema), so that a
misspelt argument or block in terraform/ fails in the tests and not at `terraform plan`.

scripts/test downloads the wheel (without its dependencies: only the assembly is read) into
.local/provider-schema/; the first run turns it into a compact JSON tree cached beside it.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from shared.cloud.declaration import REPO_ROOT

SCHEMA_DIR = REPO_ROOT / ".local" / "provider-schema"
META_ARGUMENTS = {"for_each", "count", "depends_on", "lifecycle", "provider", "dynamic"}
_DOCS = re.compile(
    r"registry\.terraform\.io/providers/hashicorp/google/([\d.]+)/docs/(resources|data-sources)/\w+ (google_\w+)"
)


def wheel() -> Path | None:
    found = sorted(SCHEMA_DIR.glob("cdktf_cdktf_provider_google-*.whl"))
    return found[-1] if found else None


def _fqn(kind: Any) -> str | None:
    """The struct a property's type names, through unions and arrays (blocks are lists)."""
    if isinstance(kind, dict):
        if "fqn" in kind and not kind["fqn"].startswith("cdktf."):
            return str(kind["fqn"])
        for value in kind.values():
            found = _fqn(value)
            if found:
                return found
    if isinstance(kind, list):
        for value in kind:
            found = _fqn(value)
            if found:
                return found
    return None


def _tree(types: dict[str, Any], fqn: str, depth: int = 0) -> dict[str, Any]:
    """{argument: None | nested tree} of a struct, keyed by `_key` of the argument's name."""
    tree: dict[str, Any] = {}
    for prop in types[fqn].get("properties", []):
        name = _key(prop["name"])
        nested = _fqn(prop["type"])
        if nested and nested in types and types[nested].get("datatype") and depth < 8:
            tree[name] = _tree(types, nested, depth + 1)
        else:
            tree[name] = None
    return tree


def _key(name: str) -> str:
    """jsii's camelCase and Terraform's snake_case compared without case or underscores:
    `layer_7_ddos_defense_config` is `layer7DdosDefenseConfig`, which cannot be split back."""
    return name.replace("_", "").lower()


def load() -> tuple[str, dict[str, dict[str, Any]]] | None:
    """(provider version, {"resource.google_x" or "data.google_x": {"arguments": tree,
    "attributes": [names]}}), or None."""
    source = wheel()
    if source is None:
        return None
    cache = source.with_suffix(".schema-v2.json")
    if cache.exists():
        cached = json.loads(cache.read_text())
        return cached["version"], cached["blocks"]
    with zipfile.ZipFile(source) as archive:
        [inner] = [n for n in archive.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(archive.read(inner))) as tar:
            member = tar.extractfile("package/.jsii")
            assert member is not None
            types: dict[str, Any] = json.loads(member.read())["types"]
    blocks: dict[str, dict[str, Any]] = {}
    version = ""
    for fqn, kind in types.items():
        match = _DOCS.search(kind.get("docs", {}).get("summary", ""))
        if kind.get("kind") != "class" or not match or f"{fqn}Config" not in types:
            continue
        version = match.group(1)
        prefix = "resource" if match.group(2) == "resources" else "data"
        blocks[f"{prefix}.{match.group(3)}"] = {
            "arguments": _tree(types, f"{fqn}Config"),
            # What other resources may read (`.id`, `.member`, `.service_config`, ...).
            "attributes": sorted({_key(p["name"]) for p in kind.get("properties", []) if not p.get("static")}),
        }
    cache.write_text(json.dumps({"version": version, "blocks": blocks}))
    return version, blocks


def unknown_arguments(body: dict[str, Any], tree: dict[str, Any], where: str) -> list[str]:
    """Every argument or block of `body` (hcl2 output, normalised) that `tree` does not have."""
    found = []
    for key, value in body.items():
        if key in META_ARGUMENTS and key != "dynamic":
            continue
        if key == "dynamic":
            for group in value:
                for block, spec in group.items():
                    if tree.get(_key(block)) is None:
                        found.append(f"{where}: no block {block!r}")
                        continue
                    for content in spec.get("content", []):
                        found += unknown_arguments(content, tree[_key(block)], f"{where}.{block}")
            continue
        if _key(key) not in tree:
            found.append(f"{where}: no argument {key!r}")
            continue
        nested = tree[_key(key)]
        if nested is not None and isinstance(value, list) and all(isinstance(v, dict) for v in value):
            for item in value:
                found += unknown_arguments(item, nested, f"{where}.{key}")
    return found


_REFERENCE = re.compile(r"(?<![\w.])(data\.)?(google_\w+)\.(\w+)(?:\[[^\]]*\])?\.(\w+)")


def unknown_references(text: str, blocks: dict[str, dict[str, Any]]) -> list[str]:
    """`google_x.name.attribute` (and `data.google_x.name.attribute`) whose attribute the
    resource type does not export."""
    found = []
    for data, kind, name, attribute in _REFERENCE.findall(text):
        entry = blocks.get(f"{'data' if data else 'resource'}.{kind}")
        if (
            entry is not None
            and _key(attribute) not in entry["attributes"]
            and _key(attribute) not in entry["arguments"]
        ):
            found.append(f"{data}{kind}.{name}: no attribute {attribute!r}")
    return sorted(set(found))
