"""document-ingest: a document finished uploading to the documents bucket (Storage finalize)."""

from datetime import timedelta

import functions_framework

from shared.cloud import runtime
from shared.knowledge import documents


@functions_framework.cloud_event
@runtime.event_function("document-ingest", max_age=timedelta(days=7))
def register_document(cloud_event):  # type: ignore[no-untyped-def]
    documents.register(cloud_event.data)
