output "webhook_url" {
  description = "Meta's app settings: WhatsApp > Configuration > Callback URL."
  value       = "https://${var.domain}/whatsapp-webhook"
}

output "verify_token_secret" {
  description = "Meta's Verify token: gcloud secrets versions access latest --secret=<this>."
  value       = google_secret_manager_secret.secrets["WHATSAPP_VERIFY_TOKEN"].secret_id
}

output "edge_ip_address" {
  description = "Point the domain's A record here; the managed certificate is issued once it resolves."
  value       = google_compute_global_address.edge.address
}

output "api_urls" {
  description = "The staff APIs, as the dashboard calls them."
  value       = { for name, fn in local.staff_apis : name => "https://${var.domain}/${name}" }
}

output "function_urls" {
  description = "Each function's own URL (internal ingress except the public endpoints)."
  value       = { for name, fn in google_cloudfunctions2_function.functions : name => fn.service_config[0].uri }
}

output "database_instance" {
  description = "INSTANCE_CONNECTION_NAME of Cloud SQL."
  value       = google_sql_database_instance.main.connection_name
}

output "egress_ip_address" {
  description = "Where the functions' calls to Meta and OpenAI come from (for allow-lists)."
  value       = google_compute_address.egress.address
}
