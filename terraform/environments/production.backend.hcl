# terraform init -reconfigure -backend-config=environments/production.backend.hcl
bucket = "whatsapp-crm-production-tfstate" # create it once: versioned, in asia-southeast2
prefix = "whatsapp-crm"
