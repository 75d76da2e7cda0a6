"""retention-purge: Cloud Scheduler deletes message content older than three months."""

import functions_framework

from shared.cloud import runtime
from shared.conversations import lifecycle


@functions_framework.http
@runtime.http_function("retention-purge", methods=("POST",))
def purge_old_messages(request):  # type: ignore[no-untyped-def]
    return {"purged": lifecycle.purge_old_messages()}, 200
