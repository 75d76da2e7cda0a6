"""The Firestore client the projections for dashboard listeners write with."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from google.cloud import firestore

from shared.cloud.settings import settings


@cache
def client() -> firestore.Client:
    return firestore.Client(project=settings().google_cloud_project)


def as_document(data: dict[str, Any]) -> dict[str, Any]:
    """Timestamps as ISO strings, as the dashboard reads every projection."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}
