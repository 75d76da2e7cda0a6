"""The package every whatsapp-crm function imports: data, messaging and domain logic."""
