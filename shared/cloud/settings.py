"""Settings from environment variables, read once per instance.

Every variable is documented in .env.example. Secrets are SecretStr so that printing the
settings, or logging them by accident, never shows their value.
"""

from __future__ import annotations

from functools import cache

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Where we run
    google_cloud_project: str = "whatsapp-crm-local"
    region: str = "asia-southeast2"
    environment: str = "local"  # local | test | staging | production

    # Cloud SQL PostgreSQL. DATABASE_URL wins; else INSTANCE_CONNECTION_NAME (Cloud SQL connector);
    # else the local runtime's embedded PostgreSQL (its URLs are exported by scripts/dev).
    database_url: SecretStr | None = None  # the application role: subject to row-level security
    database_admin_url: SecretStr | None = None  # the owner role: migrations only
    instance_connection_name: str | None = None
    db_user: str = "crm_app"
    db_password: SecretStr | None = None  # omit to use IAM database authentication
    # The owner role on Cloud SQL, for database-migrate only (a password user Terraform makes).
    db_owner_user: str = "crm_owner"
    database_owner_password: SecretStr | None = None
    db_name: str = "whatsapp_crm"
    db_pool_size: int = 5

    # Local emulators (set by scripts/dev; unset in production)
    pubsub_emulator_host: str | None = None
    firestore_emulator_host: str | None = None
    storage_emulator_host: str | None = None
    firebase_auth_emulator_host: str | None = None
    cloud_tasks_emulator_host: str | None = None

    # Where the functions are reachable: task and scheduler targets are built from it.
    functions_base_url: str = "http://127.0.0.1:8080"
    # Service account whose OIDC token Cloud Tasks attaches to sender calls (production only).
    tasks_service_account: str | None = None

    # WhatsApp Cloud API
    whatsapp_app_secret: SecretStr = SecretStr("")
    whatsapp_verify_token: SecretStr = SecretStr("")
    whatsapp_graph_api_url: str = "https://graph.facebook.com"
    whatsapp_graph_api_version: str = "v23.0"
    whatsapp_webhook_max_body_bytes: int = 4_194_304  # Meta's deliveries are up to 3 MB

    # Access tokens of outlets are encrypted with Cloud KMS in production (KMS_KEY_NAME);
    # locally with a 32-byte urlsafe-base64 key (LOCAL_TOKEN_KEY), written by scripts/dev.
    kms_key_name: str | None = None
    local_token_key: SecretStr | None = None

    documents_bucket: str = "whatsapp-crm-documents"
    # One attempt at parsing and embedding a document has this long; after the last attempt
    # (or past the deadline, found by the sweep) the document is failed with the reason.
    ingest_deadline_seconds: int = 540
    ingest_max_attempts: int = 3

    # OpenAI (or any OpenAI-compatible server: vLLM, Ollama, llama.cpp). The key comes from
    # Secret Manager in production; locally scripts/dev points both at its stand-ins.
    openai_api_key: SecretStr = SecretStr("")
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    # JSON {"model": {"prompt": usd_per_1m, "completion": usd_per_1m}} over the built-in table.
    llm_prices: str | None = None
    llm_request_timeout_seconds: float = 20.0
    llm_max_attempts: int = 3
    # What a reply may take in all, retries included (the function's own timeout is longer).
    reply_deadline_seconds: float = 45.0
    embedding_model: str = "text-embedding-3-small"
    embeddings_base_url: str | None = None  # unset: OPENAI_BASE_URL
    # Passages scoring below this are not evidence. Unset: the model's measured default.
    retrieval_min_score: float | None = None
    retrieval_top_k: int = 5

    # Qdrant: a managed cluster or Qdrant on Cloud Run; locally emulators/qdrant_server.py.
    qdrant_url: str = "http://127.0.0.1:6333"
    qdrant_api_key: SecretStr | None = None
    # Redis (Memorystore) for the staff APIs' rate limit; locally scripts/dev starts Valkey.
    redis_url: str | None = None
    # Where a staff member's sign-in link lands (the dashboard).
    dashboard_url: str = "http://127.0.0.1:5173/"
    log_level: str = "INFO"


@cache
def settings() -> Settings:
    return Settings()
