"""knowledge-ingest: parse, chunk and embed one registered document (knowledge.document.uploaded)."""

from datetime import timedelta

import functions_framework

from shared.cloud import pubsub, runtime
from shared.knowledge import ingest


@functions_framework.cloud_event
@runtime.event_function("knowledge-ingest", max_age=timedelta(days=1))
def ingest_document(cloud_event):  # type: ignore[no-untyped-def]
    envelope, _, _ = pubsub.decode_push(cloud_event)
    ingest.ingest(envelope)
