"""message-status: a sent/delivered/read/failed status from whatsapp.message.statuses (Pub/Sub)."""

from datetime import timedelta

import functions_framework

from shared.cloud import pubsub, runtime
from shared.sending import statuses


@functions_framework.cloud_event
@runtime.event_function("message-status", max_age=timedelta(days=1))
def handle_message_status(cloud_event):  # type: ignore[no-untyped-def]
    envelope, _, _ = pubsub.decode_push(cloud_event)
    statuses.handle_status(envelope)
