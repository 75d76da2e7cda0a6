"""The WhatsApp Cloud API protocol: webhook signatures and updates, Graph API calls and errors.

Pure protocol, no database: the webhook and sender functions build on it.
"""
