"""Cloud Storage: the documents bucket, through the official client.

Locally STORAGE_EMULATOR_HOST points the same client at the storage emulator. V4 signed URLs
are signed by the function's service account through IAM signBlob in production; the
emulator does not check signatures, so locally a key made for the instance signs them.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import google.auth
import google.auth.transport.requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[attr-defined]
from google.oauth2 import service_account

from shared.cloud.settings import settings


def _emulated() -> bool:
    return bool(settings().storage_emulator_host or os.environ.get("STORAGE_EMULATOR_HOST"))


@cache
def client() -> storage.Client:
    project = settings().google_cloud_project
    if _emulated():
        return storage.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    return storage.Client(project=project)


def download(bucket: str, name: str, generation: int, path: Path) -> None:
    """Fetch exactly that generation (a re-upload meanwhile is another document)."""
    client().bucket(bucket).blob(name, generation=generation or None).download_to_filename(str(path))


def upload(bucket: str, name: str, data: bytes, content_type: str) -> int:
    blob = client().bucket(bucket).blob(name)
    blob.upload_from_string(data, content_type=content_type)
    return int(blob.generation or 0)


def delete(bucket: str, name: str) -> None:
    """Delete the object if it is there (a retried delete finds it gone)."""
    blob = client().bucket(bucket).blob(name)
    try:
        blob.delete()
    except Exception as error:  # google.api_core NotFound; anything else is raised
        if getattr(error, "code", None) != 404:
            raise


def signed_upload_url(bucket: str, name: str, content_type: str, expires: timedelta) -> str:
    """A V4 URL that lets whoever holds it PUT this one object, with this content type."""
    blob = client().bucket(bucket).blob(name)
    signing: dict[str, Any]
    if _emulated():
        host = settings().storage_emulator_host or os.environ["STORAGE_EMULATOR_HOST"]
        endpoint = host if host.startswith("http") else f"http://{host}"
        signing = {"credentials": _local_signer(), "api_access_endpoint": endpoint}
    else:  # IAM signBlob as the function's service account: no key file
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
        signing = {
            "service_account_email": credentials.service_account_email,  # type: ignore[attr-defined]
            "access_token": credentials.token,
        }
    url = blob.generate_signed_url(version="v4", method="PUT", expiration=expires, content_type=content_type, **signing)
    return str(url)


@cache
def _local_signer() -> service_account.Credentials:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    signer: service_account.Credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        {
            "type": "service_account",
            "client_email": f"local-signer@{settings().google_cloud_project}.iam.gserviceaccount.com",
            "private_key": pem.decode(),
            "token_uri": "http://127.0.0.1/unused",
        }
    )
    return signer
