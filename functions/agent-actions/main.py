"""agent-actions: staff take over, write, return to the AI or resolve a conversation (HTTP)."""

import functions_framework

from shared import agent_api
from shared.cloud import runtime


@functions_framework.http
@runtime.http_function("agent-actions")
def agent_actions(request):  # type: ignore[no-untyped-def]
    return agent_api.handle(request)
