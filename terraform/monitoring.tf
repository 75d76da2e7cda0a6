# What ops watch: Cloud Run's own request metrics per function, log-based metrics from our
# JSON log lines (shared/cloud/logs.py), the design's three alerts, a dashboard, and an
# uptime check on the webhook's health path through the public origin.

locals {
  # Latency is watched where someone waits on it; ingest and scheduled sweeps run for minutes.
  latency_watched = sort([
    for name, fn in local.functions : name
    if fn.trigger.kind != "schedule" && try(fn.timeout_seconds, 60) <= 120
  ])
  on_cloud_run = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = one_of(${join(", ", [for name in sort(keys(local.functions)) : "\"${name}\""])})"
}

resource "google_monitoring_notification_channel" "email" {
  display_name = "whatsapp-crm ${var.environment} on call"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }
}

# --- Log-based metrics (the line's `message` and fields are jsonPayload.*) ---------------

resource "google_logging_metric" "inbound_messages" {
  name   = "whatsapp_crm/inbound_messages"
  filter = "${local.on_cloud_run} AND jsonPayload.message = \"inbound message handled\" AND jsonPayload.duplicate = false"
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Customer messages handled"
    labels {
      key = "tenant_id"
    }
    labels {
      key = "handed_off"
    }
  }
  label_extractors = {
    tenant_id  = "EXTRACT(jsonPayload.tenant_id)"
    handed_off = "EXTRACT(jsonPayload.handed_off)"
  }
}

resource "google_logging_metric" "ai_replies" {
  name   = "whatsapp_crm/ai_reply_cost_usd"
  filter = "${local.on_cloud_run} AND jsonPayload.message = \"AI reply written\""
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "USD"
    display_name = "AI cost per reply"
    labels {
      key = "tenant_id"
    }
  }
  value_extractor  = "EXTRACT(jsonPayload.llm_cost_usd)"
  label_extractors = { tenant_id = "EXTRACT(jsonPayload.tenant_id)" }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 1.6
      scale              = 0.00001
    }
  }
}

resource "google_logging_metric" "handoffs" {
  name   = "whatsapp_crm/handoffs"
  filter = "${local.on_cloud_run} AND jsonPayload.message = \"conversation handed off\""
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Conversations handed to staff"
    labels {
      key = "tenant_id"
    }
    labels {
      key = "reason"
    }
  }
  label_extractors = {
    tenant_id = "EXTRACT(jsonPayload.tenant_id)"
    reason    = "EXTRACT(jsonPayload.reason)"
  }
}

resource "google_logging_metric" "active_conversations" {
  name   = "whatsapp_crm/active_conversations"
  filter = "${local.on_cloud_run} AND jsonPayload.message = \"active conversations\""
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "Active conversations (per tenant, every five minutes)"
    labels {
      key = "tenant_id"
    }
  }
  value_extractor  = "EXTRACT(jsonPayload.active_conversations)"
  label_extractors = { tenant_id = "EXTRACT(jsonPayload.tenant_id)" }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 2
      scale              = 1
    }
  }
}

locals {
  # A tenant reached its quota (overage begins) or its AI replies were suspended.
  quota_filter = "${local.on_cloud_run} AND (jsonPayload.message = \"tenant reached its monthly quota\" OR jsonPayload.message =~ \"^AI replies suspended\")"
}

resource "google_logging_metric" "quota_events" {
  name   = "whatsapp_crm/quota_events"
  filter = local.quota_filter
  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Tenants at or over quota"
    labels {
      key = "tenant_id"
    }
  }
  label_extractors = { tenant_id = "EXTRACT(jsonPayload.tenant_id)" }
}

# --- The design's three alerts -------------------------------------------------------------

resource "google_monitoring_alert_policy" "error_rate" {
  display_name          = "whatsapp-crm ${var.environment}: error rate over 5% for 5 minutes"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = "5xx share of requests, per function"
    condition_threshold {
      filter             = "${local.on_cloud_run} AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\""
      denominator_filter = "${local.on_cloud_run} AND metric.type = \"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = 0.05
      duration           = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }
  documentation {
    content   = "A function answers 5xx to more than 5% of its requests. Pub/Sub and Cloud Tasks retry them; look at the function's logs (severity>=ERROR) and the dead-letter subscriptions."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "latency" {
  display_name          = "whatsapp-crm ${var.environment}: p95 latency over 5 s for 10 minutes"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = "p95 request latency, per function"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = one_of(${join(", ", [for name in local.latency_watched : "\"${name}\""])}) AND metric.type = \"run.googleapis.com/request_latencies\""
      comparison      = "COMPARISON_GT"
      threshold_value = 5000 # milliseconds
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }
  documentation {
    content   = "Customers or staff wait more than 5 s for one in twenty requests. Check the language model's latency, Cloud SQL load and instance limits."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "tenant_over_quota" {
  display_name          = "whatsapp-crm ${var.environment}: a tenant is over its quota"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = "quota reached or AI replies suspended"
    condition_matched_log {
      filter = local.quota_filter
      label_extractors = {
        tenant_id = "EXTRACT(jsonPayload.tenant_id)"
      }
    }
  }
  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }
  documentation {
    content   = "A tenant used its month's AI replies (overage from its deposit begins) or its replies were suspended. Offer an upgrade or a top-up (billing-api)."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "webhook_down" {
  display_name          = "whatsapp-crm ${var.environment}: the webhook does not answer"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = "uptime check failing"
    condition_threshold {
      filter          = "resource.type = \"uptime_url\" AND metric.type = \"monitoring.googleapis.com/uptime_check/check_passed\" AND metric.labels.check_id = \"${google_monitoring_uptime_check_config.webhook.uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.host"]
      }
    }
  }
}

resource "google_monitoring_uptime_check_config" "webhook" {
  display_name = "whatsapp-crm ${var.environment} webhook health"
  timeout      = "10s"
  period       = "60s"
  http_check {
    path           = "/whatsapp-webhook/health"
    port           = 443
    use_ssl        = true
    validate_ssl   = true
    request_method = "GET"
    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
  }
  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project
      host       = var.domain
    }
  }
}

# --- The dashboard ------------------------------------------------------------------------

locals {
  per_function = ["resource.label.service_name"]
  dashboard_charts = [
    { title = "Requests per second, per function", filter = "${local.on_cloud_run} AND metric.type = \"run.googleapis.com/request_count\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = local.per_function },
    { title = "5xx per second, per function", filter = "${local.on_cloud_run} AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = local.per_function },
    { title = "Latency p50 (ms)", filter = "${local.on_cloud_run} AND metric.type = \"run.googleapis.com/request_latencies\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_50", group = local.per_function },
    { title = "Latency p95 (ms)", filter = "${local.on_cloud_run} AND metric.type = \"run.googleapis.com/request_latencies\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", group = local.per_function },
    { title = "Latency p99 (ms)", filter = "${local.on_cloud_run} AND metric.type = \"run.googleapis.com/request_latencies\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_99", group = local.per_function },
    { title = "Active conversations, per tenant", filter = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.active_conversations.name}\"", aligner = "ALIGN_PERCENTILE_50", reducer = "REDUCE_SUM", group = ["metric.label.tenant_id"], period = "300s" },
    { title = "Customer messages per minute (all tenants)", filter = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.inbound_messages.name}\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = [] },
    { title = "Customer messages per tenant", filter = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.inbound_messages.name}\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.tenant_id"] },
    { title = "Handoffs per minute, by reason", filter = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.handoffs.name}\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.reason"] },
    { title = "Messages handed to staff (handoff rate)", filter = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.inbound_messages.name}\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.handed_off"] },
    { title = "AI cost per reply, mean (USD)", filter = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.ai_replies.name}\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_MEAN", group = [] },
    { title = "AI cost per tenant (USD per minute)", filter = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.ai_replies.name}\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group = ["metric.label.tenant_id"] },
    { title = "Tenants at or over quota", filter = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.quota_events.name}\"", aligner = "ALIGN_COUNT", reducer = "REDUCE_SUM", group = ["metric.label.tenant_id"] },
    { title = "Instances, per function", filter = "${local.on_cloud_run} AND metric.type = \"run.googleapis.com/container/instance_count\"", aligner = "ALIGN_MAX", reducer = "REDUCE_SUM", group = local.per_function },
  ]
}

resource "google_monitoring_dashboard" "main" {
  dashboard_json = jsonencode({
    displayName = "whatsapp-crm ${var.environment}"
    mosaicLayout = {
      columns = 12
      tiles = [
        for index, chart in local.dashboard_charts : {
          xPos   = (index % 2) * 6
          yPos   = floor(index / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = chart.title
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = chart.filter
                    aggregation = {
                      alignmentPeriod    = try(chart.period, "60s")
                      perSeriesAligner   = chart.aligner
                      crossSeriesReducer = chart.reducer
                      groupByFields      = chart.group
                    }
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })
}
