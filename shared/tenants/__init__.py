"""Tenants, outlets (and their WhatsApp numbers), staff, assistant settings and the tenant API."""
