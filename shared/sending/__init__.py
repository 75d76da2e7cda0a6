"""Getting our messages to WhatsApp: the sender, statuses, send recovery, access tokens."""
