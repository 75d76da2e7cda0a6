"""Subscription tiers, exact quotas, the deposit ledger, invoices and the billing API."""
