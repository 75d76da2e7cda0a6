"""message-sender: sends one WhatsApp message; a Cloud Tasks target retried with backoff."""

import functions_framework

from shared.cloud import runtime
from shared.cloud.declaration import declaration
from shared.sending import sender


@functions_framework.http
@runtime.http_function("message-sender", methods=("POST",))
def send_message(request):  # type: ignore[no-untyped-def]
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return {"error": "expected a JSON object"}, 400
    retry_count = int(request.headers.get("X-CloudTasks-TaskRetryCount", "0"))
    max_attempts = declaration().queues[sender.QUEUE].max_attempts
    return sender.handle_task(payload, retry_count, max_attempts).response()
