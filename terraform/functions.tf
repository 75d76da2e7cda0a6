# Every declared function as a Cloud Run function (2nd gen), each with its own service account.

resource "google_storage_bucket" "sources" {
  name                        = "${var.project}-function-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      age = 180 # archives of rolled-back revisions stay this long
    }
    action {
      type = "Delete"
    }
  }
  #checkov:skip=CKV_GCP_62:build archives only; the bucket's Data Access audit logs record every read
}

resource "google_storage_bucket_object" "sources" {
  for_each = local.functions
  # The archive's hash is in its name: a changed source is a new object, so the function redeploys.
  name   = local.archives[each.key].object
  bucket = google_storage_bucket.sources.name
  source = "${path.module}/../build/functions/${local.archives[each.key].object}"
}

resource "google_service_account" "functions" {
  for_each     = local.functions
  account_id   = "fn-${each.key}"
  display_name = "whatsapp-crm function ${each.key}"
  description  = each.value.description
}

resource "google_project_iam_member" "functions" {
  for_each = { for key, grant in local.function_roles : key => grant if grant.scope == "project" }
  project  = var.project
  role     = each.value.role
  member   = google_service_account.functions[each.value.function].member
}

resource "google_kms_crypto_key_iam_member" "functions" {
  for_each      = { for key, grant in local.function_roles : key => grant if grant.scope == "token_key" }
  crypto_key_id = google_kms_crypto_key.outlet_tokens.id
  role          = each.value.role
  member        = google_service_account.functions[each.value.function].member
}

resource "google_storage_bucket_iam_member" "functions" {
  for_each = { for key, grant in local.function_roles : key => grant if grant.scope == "documents_bucket" }
  bucket   = google_storage_bucket.documents.name
  role     = each.value.role
  member   = google_service_account.functions[each.value.function].member
}

resource "google_service_account_iam_member" "functions_own_account" {
  for_each           = { for key, grant in local.function_roles : key => grant if grant.scope == "own_account" }
  service_account_id = google_service_account.functions[each.value.function].name
  role               = each.value.role
  member             = google_service_account.functions[each.value.function].member
}

resource "google_service_account_iam_member" "functions_task_identity" {
  for_each           = { for key, grant in local.function_roles : key => grant if grant.scope == "task_identity" }
  service_account_id = google_service_account.tasks.name
  role               = each.value.role
  member             = google_service_account.functions[each.value.function].member
}

resource "google_secret_manager_secret_iam_member" "functions" {
  for_each  = local.function_secrets
  secret_id = google_secret_manager_secret.secrets[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.functions[each.value.function].member
}

# The account Cloud Build runs the function builds as (not the default compute account).
resource "google_service_account" "build" {
  account_id   = "function-builds"
  display_name = "whatsapp-crm function builds"
}

resource "google_project_iam_member" "build" {
  for_each = toset(["roles/logging.logWriter", "roles/artifactregistry.writer", "roles/storage.objectViewer"])
  project  = var.project
  role     = each.key
  member   = google_service_account.build.member
}

resource "google_cloudfunctions2_function" "functions" {
  for_each    = local.functions
  name        = each.key
  location    = var.region
  description = each.value.description
  labels      = local.labels

  build_config {
    runtime           = "python312"
    entry_point       = each.value.entry_point
    docker_repository = google_artifact_registry_repository.functions.id
    service_account   = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.sources[each.key].name
      }
    }
  }

  service_config {
    available_memory               = try(each.value.memory, "512Mi")
    min_instance_count             = try(each.value.min_instances, 0)
    max_instance_count             = try(each.value.max_instances, 10)
    timeout_seconds                = try(each.value.timeout_seconds, 60)
    service_account_email          = google_service_account.functions[each.key].email
    all_traffic_on_latest_revision = true
    # Public endpoints are reached only through the HTTPS load balancer (and its Cloud Armor);
    # ops' functions from anywhere, but IAM admits var.operators alone; everything else only
    # by Pub/Sub, Eventarc, Cloud Tasks and Cloud Scheduler.
    ingress_settings = (
      contains(keys(local.public_functions), each.key) ? "ALLOW_INTERNAL_AND_GCLB" :
      contains(keys(local.operator_functions), each.key) ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    )
    vpc_connector                 = google_vpc_access_connector.functions.id
    # All egress through the VPC: Qdrant's internal ingress admits only VPC traffic, and Meta and
    # OpenAI see the one address of Cloud NAT (data.tf).
    vpc_connector_egress_settings = "ALL_TRAFFIC"
    environment_variables = merge(local.function_env, {
      # Its IAM database user: the service account's email without ".gserviceaccount.com".
      DB_USER = trimsuffix(google_service_account.functions[each.key].email, ".gserviceaccount.com")
    })
    dynamic "secret_environment_variables" {
      for_each = { for key, item in local.function_secrets : item.secret => item if item.function == each.key }
      content {
        key        = secret_environment_variables.key
        project_id = var.project
        secret     = google_secret_manager_secret.secrets[secret_environment_variables.key].secret_id
        version    = "latest"
      }
    }
  }

  # The storage-finalize trigger is Eventarc's; Pub/Sub triggers are push subscriptions of
  # our own (pubsub.tf), since Eventarc's own subscription has no ordering and no dead letters.
  dynamic "event_trigger" {
    for_each = contains(keys(local.storage_functions), each.key) ? [each.value.trigger] : []
    content {
      trigger_region        = var.region # the bucket's region
      event_type            = "google.cloud.storage.object.v1.finalized"
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.eventarc.email
      event_filters {
        attribute = "bucket"
        value     = google_storage_bucket.documents.name
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build,
    google_project_iam_member.storage_agent_publishes,
    google_secret_manager_secret_iam_member.functions,
  ]
}

locals {
  functions_base_url = "https://${var.region}-${var.project}.cloudfunctions.net"
  function_env = {
    ENVIRONMENT              = var.environment
    GOOGLE_CLOUD_PROJECT     = var.project
    REGION                   = var.region
    LOG_EXECUTION_ID         = "true"
    INSTANCE_CONNECTION_NAME = google_sql_database_instance.main.connection_name
    DB_NAME                  = google_sql_database.crm.name
    DB_IP_TYPE               = "PRIVATE"
    FUNCTIONS_BASE_URL       = local.functions_base_url
    TASKS_SERVICE_ACCOUNT    = google_service_account.tasks.email
    KMS_KEY_NAME             = google_kms_crypto_key.outlet_tokens.id
    DOCUMENTS_BUCKET         = google_storage_bucket.documents.name
    QDRANT_URL               = var.qdrant_url != "" ? var.qdrant_url : google_cloud_run_v2_service.qdrant[0].uri
    DASHBOARD_URL            = var.dashboard_url
  }
}

# Who may call what: anyone, through the load balancer, for the public endpoints (the webhook
# authenticates by its signature, the staff APIs by Firebase ID tokens); otherwise only the
# account of the trigger that delivers to the function.
resource "google_cloud_run_service_iam_member" "public" {
  for_each = local.public_functions
  location = var.region
  service  = google_cloudfunctions2_function.functions[each.key].name
  role     = "roles/run.invoker"
  member   = "allUsers"
  #checkov:skip=CKV_GCP_102:Meta must reach the webhook (its X-Hub-Signature-256 authenticates it) and the staff APIs check Firebase ID tokens; ingress admits only the load balancer, behind Cloud Armor
}

resource "google_cloud_run_service_iam_member" "pubsub_push" {
  for_each = local.pubsub_functions
  location = var.region
  service  = google_cloudfunctions2_function.functions[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.pubsub_push.member
}

resource "google_cloud_run_service_iam_member" "eventarc" {
  for_each = local.storage_functions
  location = var.region
  service  = google_cloudfunctions2_function.functions[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.eventarc.member
}

resource "google_cloud_run_service_iam_member" "tasks" {
  for_each = local.task_functions
  location = var.region
  service  = google_cloudfunctions2_function.functions[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.tasks.member
}

resource "google_cloud_run_service_iam_member" "scheduler" {
  for_each = local.schedule_functions
  location = var.region
  service  = google_cloudfunctions2_function.functions[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_run_service_iam_member" "operators" {
  for_each = { for pair in setproduct(keys(local.operator_functions), var.operators) : "${pair[0]}/${pair[1]}" => pair }
  location = var.region
  service  = google_cloudfunctions2_function.functions[each.value[0]].name
  role     = "roles/run.invoker"
  member   = each.value[1]
}
