# terraform init -backend-config=environments/staging.backend.hcl
bucket = "whatsapp-crm-staging-tfstate" # create it once: versioned, in asia-southeast2
prefix = "whatsapp-crm"
