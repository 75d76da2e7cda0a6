"""The conversation between a customer and an outlet: webhook intake, inbound handling,
customers, handoff, what staff do, the dashboard mirror, expiry and retention."""
