"""Local stand-ins for GCP and Meta, and the wiring that triggers functions as production does."""
