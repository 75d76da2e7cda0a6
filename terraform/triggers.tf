# The other triggers: Eventarc for the documents bucket, Cloud Tasks queues, Cloud Scheduler jobs.

# Storage finalize: the Cloud Storage service agent publishes the bucket's events, and the
# trigger's account receives them and invokes the function (functions.tf, event_trigger).
data "google_storage_project_service_account" "storage_agent" {}

resource "google_project_iam_member" "storage_agent_publishes" {
  project = var.project
  role    = "roles/pubsub.publisher"
  member  = data.google_storage_project_service_account.storage_agent.member
}

resource "google_service_account" "eventarc" {
  account_id   = "eventarc-documents"
  display_name = "whatsapp-crm document upload events"
}

resource "google_project_iam_member" "eventarc_receives" {
  project = var.project
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.eventarc.member
}

# Cloud Tasks: the declared queues with exactly the declared retry and rate settings (the
# local dispatcher, emulators/cloud_tasks.py, follows the same ones).
resource "google_cloud_tasks_queue" "queues" {
  for_each = local.queues
  name     = each.key
  location = var.region

  rate_limits {
    max_dispatches_per_second = each.value.max_dispatches_per_second
    max_concurrent_dispatches = each.value.max_concurrent_dispatches
  }

  retry_config {
    max_attempts  = each.value.max_attempts
    min_backoff   = "${each.value.min_backoff_seconds}s"
    max_backoff   = "${each.value.max_backoff_seconds}s"
    max_doublings = each.value.max_doublings
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.apis]
}

# The identity tasks call the sender as (OIDC). Functions that enqueue may act as this one
# account (functions.tf, functions_task_identity), never as any account of the project.
resource "google_service_account" "tasks" {
  account_id   = "task-invoker"
  display_name = "whatsapp-crm Cloud Tasks deliveries"
}

# Cloud Scheduler: one job per scheduled function, in its time zone, with an OIDC token.
resource "google_service_account" "scheduler" {
  account_id   = "scheduler-invoker"
  display_name = "whatsapp-crm scheduled runs"
}

resource "google_cloud_scheduler_job" "schedules" {
  for_each         = local.schedule_functions
  name             = each.key
  region           = var.region
  description      = each.value.description
  schedule         = each.value.trigger.cron
  time_zone        = try(each.value.trigger.time_zone, "Etc/UTC")
  attempt_deadline = "${try(each.value.timeout_seconds, 60)}s"

  retry_config {
    retry_count          = 2 # every job is idempotent; the next run catches up anyway
    min_backoff_duration = "30s"
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.functions[each.key].service_config[0].uri
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.functions[each.key].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_service_iam_member.scheduler]
}
