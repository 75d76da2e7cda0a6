# The declared topics, and one push subscription per Pub/Sub-triggered function: straight to
# its URL with an OIDC token, the declared ack deadline and exponential redelivery, ordering
# where the declaration asks for it, and a dead-letter topic once the attempts run out.

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "topics" {
  for_each                   = local.topics
  name                       = each.key
  labels                     = local.labels
  message_retention_duration = "604800s" # a week: subscriptions can be replayed (seek) after an incident
  depends_on                 = [google_project_service.apis]
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest; messages live a week at most, and customer text also lives in Cloud SQL under the same protection
}

resource "google_pubsub_topic" "dead_letters" {
  for_each = local.pubsub_functions
  name     = "${each.key}.dead-letters"
  labels   = local.labels
  #checkov:skip=CKV_GCP_83:as the topics they collect from
}

# Dead letters are kept for a week in a pull subscription, for ops to read and replay.
resource "google_pubsub_subscription" "dead_letters" {
  for_each                   = local.pubsub_functions
  name                       = "${each.key}.dead-letters"
  topic                      = google_pubsub_topic.dead_letters[each.key].id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60
  labels                     = local.labels
  expiration_policy {
    ttl = ""
  }
}

resource "google_service_account" "pubsub_push" {
  account_id   = "pubsub-push"
  display_name = "whatsapp-crm Pub/Sub push deliveries"
}

resource "google_pubsub_subscription" "push" {
  for_each                   = local.pubsub_functions
  name                       = "${each.key}.push"
  topic                      = google_pubsub_topic.topics[each.value.trigger.topic].id
  labels                     = local.labels
  ack_deadline_seconds       = try(each.value.trigger.ack_deadline_seconds, 60)
  enable_message_ordering    = try(each.value.trigger.ordering, false)
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = google_cloudfunctions2_function.functions[each.key].service_config[0].uri
    oidc_token {
      service_account_email = google_service_account.pubsub_push.email
      audience              = google_cloudfunctions2_function.functions[each.key].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "${try(each.value.trigger.min_backoff_seconds, 10)}s"
    maximum_backoff = "${try(each.value.trigger.max_backoff_seconds, 600)}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letters[each.key].id
    max_delivery_attempts = try(each.value.trigger.max_delivery_attempts, 20)
  }

  expiration_policy {
    ttl = "" # never expires for want of traffic
  }

  depends_on = [
    google_pubsub_topic_iam_member.agent_publishes_dead_letters,
    google_cloud_run_service_iam_member.pubsub_push,
  ]
}

# The Pub/Sub service agent moves undeliverable messages: it publishes to the dead-letter
# topic and acknowledges them on the source subscription.
resource "google_pubsub_topic_iam_member" "agent_publishes_dead_letters" {
  for_each = local.pubsub_functions
  topic    = google_pubsub_topic.dead_letters[each.key].id
  role     = "roles/pubsub.publisher"
  member   = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_acknowledges" {
  for_each     = local.pubsub_functions
  subscription = google_pubsub_subscription.push[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# ... and mints the OIDC token of the push account.
resource "google_service_account_iam_member" "agent_signs_push_tokens" {
  service_account_id = google_service_account.pubsub_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}
