# One public HTTPS origin for the webhook and the staff APIs: a global external Application
# Load Balancer with a serverless NEG per public function, a managed certificate for
# var.domain, and Cloud Armor in front (DDoS protection, a per-IP limit on the staff APIs).
#
#   https://<domain>/whatsapp-webhook          -> whatsapp-webhook "/"   (Meta's callback URL)
#   https://<domain>/<staff-api>/api/v1/...    -> <staff-api> "/api/v1/..."
#
# The path's first segment is the function, as locally (http://127.0.0.1:8080/<function>/...).

resource "google_compute_global_address" "edge" {
  name       = "whatsapp-crm-edge"
  depends_on = [google_project_service.apis]
}

resource "google_compute_managed_ssl_certificate" "edge" {
  name = "whatsapp-crm-edge"
  managed {
    domains = [var.domain]
  }
}

resource "google_compute_region_network_endpoint_group" "public" {
  for_each              = local.public_functions
  name                  = each.key
  region                = var.region
  network_endpoint_type = "SERVERLESS"
  cloud_run {
    service = google_cloudfunctions2_function.functions[each.key].name
  }
}

resource "google_compute_backend_service" "public" {
  for_each              = local.public_functions
  name                  = each.key
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  security_policy       = google_compute_security_policy.edge.id
  backend {
    group = google_compute_region_network_endpoint_group.public[each.key].id
  }
  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

resource "google_compute_url_map" "edge" {
  name            = "whatsapp-crm-edge"
  default_service = google_compute_backend_service.public["whatsapp-webhook"].id

  host_rule {
    hosts        = [var.domain]
    path_matcher = "functions"
  }

  path_matcher {
    name            = "functions"
    default_service = google_compute_backend_service.public["whatsapp-webhook"].id
    dynamic "route_rules" {
      for_each = { for index, name in sort(keys(local.public_functions)) : name => index }
      content {
        priority = route_rules.value + 1
        service  = google_compute_backend_service.public[route_rules.key].id
        match_rules {
          prefix_match = "/${route_rules.key}/"
        }
        match_rules {
          full_path_match = "/${route_rules.key}"
        }
        route_action {
          url_rewrite {
            path_prefix_rewrite = "/"
          }
        }
      }
    }
  }
}

resource "google_compute_target_https_proxy" "edge" {
  name             = "whatsapp-crm-edge"
  url_map          = google_compute_url_map.edge.id
  ssl_certificates = [google_compute_managed_ssl_certificate.edge.id]
  ssl_policy       = google_compute_ssl_policy.edge.id
}

resource "google_compute_ssl_policy" "edge" {
  name            = "whatsapp-crm-edge"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_global_forwarding_rule" "edge" {
  name                  = "whatsapp-crm-edge"
  target                = google_compute_target_https_proxy.edge.id
  ip_address            = google_compute_global_address.edge.address
  port_range            = "443"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

resource "google_compute_security_policy" "edge" {
  name        = "whatsapp-crm-edge"
  description = "DDoS protection and per-IP limits in front of the webhook and the staff APIs"

  adaptive_protection_config {
    layer_7_ddos_defense_config {
      enable = true
    }
  }

  # Known exploit probes (Log4Shell and kin) never reach a function.
  rule {
    action   = "deny(403)"
    priority = 1000
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('cve-canary')"
      }
    }
    description = "CVE probes (including Log4j)"
  }

  # The staff APIs: a per-IP ceiling above the per-tenant limit the functions enforce. The
  # webhook is exempt: Meta sends from few addresses and retries what is refused.
  rule {
    action   = "throttle"
    priority = 2000
    match {
      expr {
        expression = "!request.path.startsWith('/whatsapp-webhook')"
      }
    }
    rate_limit_options {
      conform_action = "allow"
      exceed_action  = "deny(429)"
      enforce_on_key = "IP"
      rate_limit_threshold {
        count        = var.per_ip_requests_per_minute
        interval_sec = 60
      }
    }
    description = "per-IP limit on the staff APIs"
  }

  rule {
    action   = "allow"
    priority = 2147483647
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    description = "everything else"
  }
}
