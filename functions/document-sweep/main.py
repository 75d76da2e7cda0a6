"""document-sweep: Cloud Scheduler fails documents stuck in processing and re-indexes stale ones."""

import functions_framework

from shared.cloud import runtime
from shared.knowledge import ingest


@functions_framework.http
@runtime.http_function("document-sweep", methods=("POST",))
def sweep_documents(request):  # type: ignore[no-untyped-def]
    return ingest.sweep(), 200
