# Where data lives: documents, Firestore, Cloud SQL, KMS, secrets, Memorystore, Qdrant,
# Artifact Registry, BigQuery; and the private network that reaches the private ones.

resource "google_storage_bucket" "documents" {
  name                        = "${var.project}-documents"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels
  versioning {
    enabled = true # a replaced or deleted document can be recovered for 30 days
  }
  # A document removed from its knowledge base (or replaced) is deleted by the API; versioning
  # keeps the old generation, and this rule deletes it 30 days later, with older replacements.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      num_newer_versions = 3
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }
  cors {
    origin          = [trimsuffix(var.dashboard_url, "/")]
    method          = ["PUT"] # signed-URL uploads straight from the dashboard
    response_header = ["Content-Type"]
    max_age_seconds = 3600
  }
  #checkov:skip=CKV_GCP_62:Data Access audit logs record every object read; a second log bucket adds nothing
}

# Firestore in native mode, with the rules dashboards are held to.
resource "google_firestore_database" "main" {
  name                              = "(default)"
  location_id                       = var.region
  type                              = "FIRESTORE_NATIVE"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  depends_on                        = [google_project_service.apis]
}

resource "google_firebaserules_ruleset" "firestore" {
  project = var.project
  source {
    files {
      name    = "firestore.rules"
      content = file("${path.module}/firestore.rules")
    }
  }
  depends_on = [google_firestore_database.main]
}

resource "google_firebaserules_release" "firestore" {
  project      = var.project
  name         = "cloud.firestore"
  ruleset_name = google_firebaserules_ruleset.firestore.name
  lifecycle {
    replace_triggered_by = [google_firebaserules_ruleset.firestore]
  }
}

# The private network: Cloud SQL, Memorystore and Qdrant have no public address.
resource "google_compute_network" "main" {
  name                    = "whatsapp-crm"
  auto_create_subnetworks = false
  depends_on              = [google_project_service.apis]
}

# Nothing outside reaches the network; Google adds the rules the VPC connector needs itself.
resource "google_compute_firewall" "deny_ingress" {
  name          = "deny-all-ingress"
  network       = google_compute_network.main.name
  direction     = "INGRESS"
  priority      = 65534
  source_ranges = ["0.0.0.0/0"]
  deny {
    protocol = "all"
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_global_address" "private_services" {
  name          = "private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 16
  network       = google_compute_network.main.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.main.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
}

# The functions' way out to Meta's Graph API and OpenAI: one static address.
resource "google_compute_address" "egress" {
  name   = "functions-egress"
  region = var.region
}

resource "google_compute_router" "egress" {
  name    = "functions-egress"
  region  = var.region
  network = google_compute_network.main.id
}

resource "google_compute_router_nat" "egress" {
  name                               = "functions-egress"
  router                             = google_compute_router.egress.name
  region                             = var.region
  nat_ip_allocate_option             = "MANUAL_ONLY"
  nat_ips                            = [google_compute_address.egress.self_link]
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

resource "google_vpc_access_connector" "functions" {
  name          = "functions"
  region        = var.region
  network       = google_compute_network.main.name
  ip_cidr_range = "10.8.0.0/28"
  min_instances = 2
  max_instances = 10
}

# Cloud SQL PostgreSQL: private IP only, IAM database authentication (each function logs in
# as its own service account), backups with point-in-time recovery.
resource "google_sql_database_instance" "main" {
  name                = "whatsapp-crm"
  database_version    = "POSTGRES_18"
  region              = var.region
  deletion_protection = true

  settings {
    tier              = var.database_tier
    edition           = "ENTERPRISE"
    availability_type = var.environment == "production" ? "REGIONAL" : "ZONAL"
    disk_autoresize   = true
    user_labels       = local.labels

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.main.id
      ssl_mode                                      = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED" # the connector's mTLS
      enable_private_path_for_google_cloud_services = true
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "19:00" # 02:00 in Jakarta
      transaction_log_retention_days = 7
      backup_retention_settings {
        retained_backups = 30
      }
    }

    maintenance_window {
      day  = 7
      hour = 19
    }

    insights_config {
      query_insights_enabled = true
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }

  depends_on = [google_service_networking_connection.private_services]
  #checkov:skip=CKV2_GCP_13:Query Insights records every statement's latency; a log line per statement would cost more than it tells
}

resource "google_sql_database" "crm" {
  name     = "whatsapp_crm"
  instance = google_sql_database_instance.main.name
}

# The owner role that runs migrations (database-migrate); its password is a secret of its own.
resource "random_password" "database_owner" {
  length  = 32
  special = false
}

resource "google_sql_user" "owner" {
  name     = "crm_owner"
  instance = google_sql_database_instance.main.name
  password = random_password.database_owner.result
}

# Every function that reads the database logs in as itself; database-migrate makes these
# users members of crm_app.
resource "google_sql_user" "functions" {
  for_each = { for name, fn in local.functions : name => fn if contains(try(fn.roles, []), "cloudsql.instanceUser") }
  name     = trimsuffix(google_service_account.functions[each.key].email, ".gserviceaccount.com")
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# KMS: the key that wraps each outlet's WhatsApp access-token data key.
resource "google_kms_key_ring" "main" {
  name       = "whatsapp-crm"
  location   = var.region
  depends_on = [google_project_service.apis]
}

resource "google_kms_crypto_key" "outlet_tokens" {
  name            = "outlet-tokens"
  key_ring        = google_kms_key_ring.main.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s" # 90 days; old versions stay to unwrap older tokens
  labels          = local.labels
  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = "SOFTWARE"
  }
  lifecycle {
    prevent_destroy = true
  }
}

# Secret Manager: what ops set after the first apply (app secret, OpenAI key) and what
# Terraform generates (verify token, Qdrant key, the database owner's password, Redis URL).
locals {
  secrets_set_by_ops = toset(["WHATSAPP_APP_SECRET", "OPENAI_API_KEY"])
  generated_secret_names = toset(["WHATSAPP_VERIFY_TOKEN", "QDRANT_API_KEY", "DATABASE_OWNER_PASSWORD", "REDIS_URL"])
  generated_secrets = {
    WHATSAPP_VERIFY_TOKEN   = random_password.verify_token.result
    QDRANT_API_KEY          = random_password.qdrant_api_key.result
    DATABASE_OWNER_PASSWORD = random_password.database_owner.result
    REDIS_URL               = "redis://:${google_redis_instance.rate_limits.auth_string}@${google_redis_instance.rate_limits.host}:${google_redis_instance.rate_limits.port}/0"
  }
}

resource "random_password" "verify_token" {
  length  = 40
  special = false
}

resource "random_password" "qdrant_api_key" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret" "secrets" {
  for_each  = setunion(local.secrets_set_by_ops, local.generated_secret_names)
  secret_id = each.key
  labels    = local.labels
  replication {
    user_managed {
      replicas {
        location = var.region # secrets stay in Indonesia with the data
      }
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "generated" {
  for_each    = local.generated_secret_names
  secret      = google_secret_manager_secret.secrets[each.key].id
  secret_data = local.generated_secrets[each.key]
}

# Memorystore: the staff APIs' shared rate-limit counters.
resource "google_redis_instance" "rate_limits" {
  name                    = "rate-limits"
  region                  = var.region
  tier                    = var.environment == "production" ? "STANDARD_HA" : "BASIC"
  memory_size_gb          = 1
  redis_version           = "REDIS_7_2"
  authorized_network      = google_compute_network.main.id
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = true
  labels                  = local.labels
  depends_on              = [google_service_networking_connection.private_services]
  transit_encryption_mode = "DISABLED"
  #checkov:skip=CKV_GCP_97:reached only over private service access inside our VPC; it holds request counters, no customer data, and AUTH is on
}

# Qdrant on Cloud Run, unless var.qdrant_url names a managed cluster. One instance with its
# storage on a Cloud Storage volume; ingress internal, and every call carries QDRANT_API_KEY.
resource "google_storage_bucket" "qdrant" {
  count                       = var.qdrant_url == "" ? 1 : 0
  name                        = "${var.project}-qdrant"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels
  versioning {
    enabled = true
  }
  #checkov:skip=CKV_GCP_62:Qdrant's own storage; Data Access audit logs cover reads
}

resource "google_service_account" "qdrant" {
  count        = var.qdrant_url == "" ? 1 : 0
  account_id   = "qdrant"
  display_name = "whatsapp-crm Qdrant"
}

resource "google_storage_bucket_iam_member" "qdrant" {
  count  = var.qdrant_url == "" ? 1 : 0
  bucket = google_storage_bucket.qdrant[0].name
  role   = "roles/storage.objectUser"
  member = google_service_account.qdrant[0].member
}

resource "google_secret_manager_secret_iam_member" "qdrant" {
  count     = var.qdrant_url == "" ? 1 : 0
  secret_id = google_secret_manager_secret.secrets["QDRANT_API_KEY"].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.qdrant[0].member
}

resource "google_cloud_run_v2_service" "qdrant" {
  count               = var.qdrant_url == "" ? 1 : 0
  name                = "qdrant"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = true
  labels              = local.labels

  template {
    service_account                  = google_service_account.qdrant[0].email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = 80
    scaling {
      min_instance_count = 1
      max_instance_count = 1 # one writer of the storage
    }
    containers {
      image = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.docker_hub.repository_id}/qdrant/qdrant:${var.qdrant_version}"
      ports {
        container_port = 6333
      }
      resources {
        limits = {
          cpu    = "2"
          memory = "4Gi"
        }
      }
      env {
        name = "QDRANT__SERVICE__API_KEY"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.secrets["QDRANT_API_KEY"].secret_id
            version = "latest"
          }
        }
      }
      volume_mounts {
        name       = "storage"
        mount_path = "/qdrant/storage"
      }
    }
    volumes {
      name = "storage"
      gcs {
        bucket    = google_storage_bucket.qdrant[0].name
        read_only = false
      }
    }
  }
  depends_on = [google_secret_manager_secret_iam_member.qdrant, google_storage_bucket_iam_member.qdrant]
}

# Qdrant checks the API key itself; ingress is internal, so only our VPC reaches it at all.
resource "google_cloud_run_v2_service_iam_member" "qdrant" {
  count    = var.qdrant_url == "" ? 1 : 0
  name     = google_cloud_run_v2_service.qdrant[0].name
  location = var.region
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Artifact Registry: the function images, and a Docker Hub mirror for Qdrant's image.
resource "google_artifact_registry_repository" "functions" {
  repository_id = "functions"
  location      = var.region
  format        = "DOCKER"
  labels        = local.labels
  #checkov:skip=CKV_GCP_84:build images of our own open code; Google-managed encryption at rest
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_artifact_registry_repository" "docker_hub" {
  repository_id = "docker-hub"
  location      = var.region
  format        = "DOCKER"
  mode          = "REMOTE_REPOSITORY"
  labels        = local.labels
  #checkov:skip=CKV_GCP_84:a cache of public Docker Hub images; Google-managed encryption at rest
  remote_repository_config {
    docker_repository {
      public_repository = "DOCKER_HUB"
    }
  }
  depends_on = [google_project_service.apis]
}

# BigQuery: reserved for the analytics issue; it stays in Jakarta too.
resource "google_bigquery_dataset" "analytics" {
  dataset_id                 = "analytics"
  location                   = var.region
  description                = "whatsapp-crm analytics (messages, conversations, costs)"
  labels                     = local.labels
  delete_contents_on_destroy = false
  depends_on                 = [google_project_service.apis]
  #checkov:skip=CKV_GCP_81:Google-managed encryption at rest until the analytics issue decides what it holds
}

# Firebase Auth (Identity Platform): staff sign in with email and password, or with the
# sign-in link of their invite; roles travel as custom claims our code sets.
resource "google_identity_platform_config" "auth" {
  project                    = var.project
  autodelete_anonymous_users = true
  authorized_domains         = [var.domain, regex("^https?://([^/:]+)", var.dashboard_url)[0]]
  sign_in {
    allow_duplicate_emails = false
    email {
      enabled           = true
      password_required = false # invites' email links sign in too
    }
  }
  depends_on = [google_project_service.apis]
}
