"""agent-actions: staff read conversations and act on them (HTTP, Firebase ID token)."""

import functions_framework

from shared.cloud import runtime
from shared.conversations.staff_api import api

api.answer_framework_errors()


@functions_framework.http
@runtime.http_function("agent-actions")
def agent_actions(request):  # type: ignore[no-untyped-def]
    return api(request)
