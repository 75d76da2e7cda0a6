variable "project" {
  type        = string
  description = "The GCP project of this environment."
}

variable "region" {
  type        = string
  default     = "asia-southeast2" # Jakarta: Indonesian data residency
  description = "Where everything runs and every byte is kept."
}

variable "environment" {
  type        = string
  description = "staging or production: a suffix of names and a label on everything."
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment is staging or production."
  }
}

variable "domain" {
  type        = string
  description = "The public HTTPS origin of the staff APIs and the webhook (a managed certificate is issued for it)."
}

variable "qdrant_url" {
  type        = string
  default     = ""
  description = "A managed Qdrant cluster; empty: Qdrant runs on Cloud Run here, on a persistent volume."
}

variable "dashboard_url" {
  type        = string
  description = "Where staff invite sign-in links land."
}

variable "alert_email" {
  type        = string
  description = "Who the alerts go to."
}

variable "database_tier" {
  type    = string
  default = "db-custom-2-7680"
}

variable "per_ip_requests_per_minute" {
  type        = number
  default     = 600
  description = "Cloud Armor's limit per client IP on the staff APIs (the webhook is exempt: Meta's IPs retry)."
}

variable "qdrant_version" {
  type        = string
  default     = "v1.20.0" # within one minor version of the qdrant-client the functions pin
  description = "The Qdrant image tag when Qdrant runs on Cloud Run (qdrant_url empty)."
}

variable "operators" {
  type        = list(string)
  default     = []
  description = "Ops principals (user:..., group:...) who may call database-migrate."
  validation {
    condition     = alltrue([for member in var.operators : can(regex("^(user|group|serviceAccount):", member))])
    error_message = "operators are IAM members: user:..., group:... or serviceAccount:..."
  }
}
