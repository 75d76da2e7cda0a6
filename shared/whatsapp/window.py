"""WhatsApp's customer-service window: free-form messages (text, media) are delivered only
within 24 hours of the customer's last message; after that only an approved template is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SERVICE_WINDOW = timedelta(hours=24)


def window_open(last_customer_message_at: datetime | None, now: datetime | None = None) -> bool:
    """Whether a free-form message may be sent now, given when the customer last wrote."""
    return (
        last_customer_message_at is not None and (now or datetime.now(UTC)) - last_customer_message_at < SERVICE_WINDOW
    )
