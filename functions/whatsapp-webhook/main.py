"""whatsapp-webhook: Meta's WhatsApp Cloud API calls this URL (HTTP)."""

import functions_framework

from shared import webhook
from shared.cloud import runtime


@functions_framework.http
@runtime.http_function("whatsapp-webhook")
def whatsapp_webhook(request):  # type: ignore[no-untyped-def]
    return webhook.handle(request)
