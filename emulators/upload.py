"""`scripts/upload`: upload documents to the demo tenant's knowledge base, as a tenant admin
does, against the running `scripts/dev`, and wait until each is ready or failed.

    scripts/upload --demo                       the demo café's XLSX, DOCX and PDF
    scripts/upload price-list.xlsx menu.docx    your own files (signed URL, then PUT)
    scripts/upload --multipart faq.pdf          through the API's multipart upload instead
"""

from __future__ import annotations

import argparse
import mimetypes
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from emulators.chat import ChatError
from emulators.seed import DEMO_PASSWORD
from shared.cloud.declaration import REPO_ROOT
from shared.knowledge.documents import TYPES_BY_EXTENSION


def sign_in(info: dict[str, Any], email: str) -> str:
    url = (
        f"http://{info['firebase_auth_emulator_host']}/identitytoolkit.googleapis.com/v1/"
        "accounts:signInWithPassword?key=local-dev"
    )
    answer = requests.post(url, json={"email": email, "password": DEMO_PASSWORD, "returnSecureToken": True}, timeout=10)
    if answer.status_code != 200:
        raise ChatError(f"could not sign in as {email}: {answer.text}")
    return str(answer.json()["idToken"])


def upload(info: dict[str, Any], token: str, path: Path, multipart: bool) -> str:
    """Upload one file; its object name."""
    api = info["functions"]["knowledge-api"]
    kb = info["demo"]["knowledge_base_id"]
    auth = {"Authorization": f"Bearer {token}"}
    content_type = TYPES_BY_EXTENSION.get(path.suffix.lstrip(".").lower()) or mimetypes.guess_type(path.name)[0] or ""
    if multipart:
        with path.open("rb") as file:
            answer = requests.post(
                f"{api}/knowledge-bases/{kb}/documents",
                headers=auth,
                files={"file": (path.name, file, content_type)},
                timeout=120,
            )
        if answer.status_code != 202:
            raise ChatError(f"{path.name}: {answer.status_code} {answer.text}")
        return str(answer.json()["object_name"])
    answer = requests.post(
        f"{api}/knowledge-bases/{kb}/upload-url",
        headers=auth,
        json={"file_name": path.name, "content_type": content_type, "size_bytes": path.stat().st_size},
        timeout=30,
    )
    if answer.status_code != 201:
        raise ChatError(f"{path.name}: {answer.status_code} {answer.text}")
    signed = answer.json()
    put = requests.put(signed["url"], data=path.read_bytes(), headers=signed["headers"], timeout=120)
    if put.status_code >= 300:
        raise ChatError(f"{path.name}: the signed PUT answered {put.status_code} {put.text[:200]}")
    return str(signed["object_name"])


def wait_until_done(info: dict[str, Any], token: str, file_name: str, timeout: float) -> dict[str, Any]:
    api = info["functions"]["knowledge-api"]
    kb = info["demo"]["knowledge_base_id"]
    deadline = time.monotonic() + timeout
    latest: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = requests.get(
            f"{api}/knowledge-bases/{kb}/documents", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        answer.raise_for_status()
        mine = [d for d in answer.json()["documents"] if d["file_name"] == file_name]
        if mine:
            latest = mine[0]
            if latest["status"] in ("ready", "failed"):
                return latest
        time.sleep(0.5)
    return latest or {"file_name": file_name, "status": "not registered yet"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/upload", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--demo", action="store_true", help="upload the demo café's XLSX, DOCX and PDF")
    parser.add_argument("--multipart", action="store_true", help="upload through the API instead of a signed URL")
    parser.add_argument("--as", dest="email", default="admin@kopinusantara.test", help="the staff login to use")
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".local")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for each document")
    args = parser.parse_args(argv)
    from emulators.chat import load_info

    try:
        info = load_info(args.state_dir)
        token = sign_in(info, args.email)
        files = list(args.files)
        if args.demo:
            from emulators import demo_documents

            files += demo_documents.write(Path(tempfile.mkdtemp(prefix="demo-documents-")))
        if not files:
            parser.error("name files to upload, or --demo")
        failed = 0
        for path in files:
            upload(info, token, path, args.multipart)
            document = wait_until_done(info, token, path.name, args.wait)
            detail = document.get("error") or ", ".join(
                f"{document[k]} {k}" for k in ("chunk_count", "pages", "rows") if document.get(k)
            )
            print(f"{path.name}: {document['status']}{f' ({detail})' if detail else ''}")
            failed += document["status"] != "ready"
        return 1 if failed else 0
    except ChatError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
