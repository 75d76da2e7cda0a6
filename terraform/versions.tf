# One `terraform apply` per environment creates everything the functions need. State lives in
# a GCS bucket per environment (terraform init -backend-config=environments/<env>.backend.hcl).
terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.10"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
  backend "gcs" {}
}

provider "google" {
  project = var.project
  region  = var.region
}
