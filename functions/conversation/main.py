"""conversation: one inbound WhatsApp event from whatsapp.incoming.messages (Pub/Sub)."""

from datetime import timedelta

import functions_framework

from shared.cloud import pubsub, runtime
from shared.conversations import inbound


@functions_framework.cloud_event
@runtime.event_function("conversation", max_age=timedelta(days=2))
def handle_incoming_message(cloud_event):  # type: ignore[no-untyped-def]
    envelope, _, _ = pubsub.decode_push(cloud_event)
    inbound.handle_incoming(envelope)
