"""conversation-expiry: Cloud Scheduler closes conversations whose 24-hour window passed."""

import functions_framework

from shared.cloud import runtime
from shared.conversations import lifecycle


@functions_framework.http
@runtime.http_function("conversation-expiry", methods=("POST",))
def expire_conversations(request):  # type: ignore[no-untyped-def]
    return {"expired": lifecycle.expire_conversations()}, 200
