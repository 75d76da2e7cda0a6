"""knowledge-api: staff manage knowledge bases and documents (HTTP, Firebase ID token)."""

import functions_framework

from shared.cloud import runtime
from shared.knowledge.staff_api import api

api.answer_framework_errors()


@functions_framework.http
@runtime.http_function("knowledge-api")
def knowledge_api(request):  # type: ignore[no-untyped-def]
    return api(request)
