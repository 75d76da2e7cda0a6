"""assistant-api: "suggest a reply" for a conversation, as JSON or streamed (HTTP, Firebase ID token)."""

import functions_framework

from shared.assistant.staff_api import api
from shared.cloud import runtime

api.answer_framework_errors()


@functions_framework.http
@runtime.http_function("assistant-api")
def assistant_api(request):  # type: ignore[no-untyped-def]
    return api(request)
