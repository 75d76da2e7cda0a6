"""GCP plumbing every function uses: settings, logs, entry points, Pub/Sub, Cloud Tasks, HTTP."""
