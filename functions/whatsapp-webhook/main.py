"""whatsapp-webhook: Meta's WhatsApp Cloud API calls this URL (HTTP)."""

import functions_framework

from shared.cloud import runtime
from shared.conversations import intake


@functions_framework.http
@runtime.http_function("whatsapp-webhook")
def whatsapp_webhook(request):  # type: ignore[no-untyped-def]
    return intake.handle(request)
