"""The staff HTTP API toolkit: route tables, staff authentication, validation, errors, OpenAPI."""
