"""agent-actions: staff take over, write, return to the AI or resolve a conversation (HTTP)."""

import functions_framework

from shared.cloud import runtime
from shared.conversations import staff_api


@functions_framework.http
@runtime.http_function("agent-actions")
def agent_actions(request):  # type: ignore[no-untyped-def]
    return staff_api.handle(request)
