"""The OpenAPI documents of the staff APIs, committed under docs/openapi/ so clients and
reviewers see the contract, and tests/test_openapi.py fails when code and document drift.

    .venv/bin/python -m emulators.openapi     # writes docs/openapi/<function>.json
"""

from __future__ import annotations

import importlib
from pathlib import Path

from shared.api.routes import StaffApi
from shared.cloud.declaration import REPO_ROOT, HttpTrigger, declaration

DOCUMENTS_DIR = REPO_ROOT / "docs" / "openapi"


def staff_apis() -> dict[str, StaffApi]:
    """Each HTTP function that serves a staff API (its `api` in functions.yaml), by name."""
    found = {}
    for name, fn in declaration().functions.items():
        if isinstance(fn.trigger, HttpTrigger) and fn.trigger.api:
            module, attribute = fn.trigger.api.split(":")
            api = getattr(importlib.import_module(module), attribute)
            if not isinstance(api, StaffApi):
                raise TypeError(f"{fn.trigger.api} (function {name}) is not a StaffApi")
            found[name] = api
    return found


def document_path(function: str) -> Path:
    return DOCUMENTS_DIR / f"{function}.json"


def main() -> None:
    DOCUMENTS_DIR.mkdir(parents=True, exist_ok=True)
    for name, api in staff_apis().items():
        document_path(name).write_text(api.openapi_json())
        print(f"wrote {document_path(name).relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
