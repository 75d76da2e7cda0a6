# Everything deployed follows functions/functions.yaml: functions, topics, queues, buckets and
# schedules come from it with for_each, so a function added there is deployed with no second
# list to keep in step. Archives come from scripts/package (build/functions/manifest.json).
locals {
  declaration = yamldecode(file("${path.module}/../functions/functions.yaml"))
  functions   = local.declaration.functions
  topics      = toset(local.declaration.topics)
  queues      = local.declaration.queues
  buckets     = local.declaration.buckets
  archives    = jsondecode(file("${path.module}/../build/functions/manifest.json"))
  labels      = { app = "whatsapp-crm", environment = var.environment }

  http_functions     = { for name, fn in local.functions : name => fn if fn.trigger.kind == "http" }
  public_functions   = { for name, fn in local.http_functions : name => fn if try(fn.trigger.public, false) }
  operator_functions = { for name, fn in local.http_functions : name => fn if try(fn.trigger.operators, false) }
  staff_apis         = { for name, fn in local.http_functions : name => fn if try(fn.trigger.api, null) != null }
  pubsub_functions   = { for name, fn in local.functions : name => fn if fn.trigger.kind == "pubsub" }
  storage_functions  = { for name, fn in local.functions : name => fn if fn.trigger.kind == "storage" }
  task_functions     = { for name, fn in local.functions : name => fn if fn.trigger.kind == "task_queue" }
  schedule_functions = { for name, fn in local.functions : name => fn if fn.trigger.kind == "schedule" }

  # Roles granted on one resource rather than the project (see functions/functions.yaml).
  scoped_roles = {
    "cloudkms.cryptoKeyEncrypter"    = "token_key"
    "cloudkms.cryptoKeyDecrypter"    = "token_key"
    "storage.objectUser"             = "documents_bucket"
    "storage.objectViewer"           = "documents_bucket"
    "iam.serviceAccountTokenCreator" = "own_account"
    "iam.serviceAccountUser"         = "task_identity"
  }
  function_roles = merge([
    for name, fn in local.functions : {
      for role in try(fn.roles, []) : "${name}/${role}" => {
        function = name
        role     = "roles/${role}"
        scope    = lookup(local.scoped_roles, role, "project")
      }
    }
  ]...)
  # A staff API's rate limit counts in Memorystore, whose URL carries its AUTH string: a secret.
  function_secrets = merge([
    for name, fn in local.functions : {
      for secret in concat(try(fn.secrets, []), contains(keys(local.staff_apis), name) ? ["REDIS_URL"] : []) :
      "${name}/${secret}" => { function = name, secret = secret }
    }
  ]...)
}

data "google_project" "this" {}

resource "google_project_service" "apis" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "compute.googleapis.com",
    "eventarc.googleapis.com",
    "firebase.googleapis.com",
    "firestore.googleapis.com",
    "identitytoolkit.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
    "vpcaccess.googleapis.com",
  ])
  service            = each.key
  disable_on_destroy = false
}
