variable "name" {
  description = "Name prefix of the environment (mlops-<environment>); bucket names add the account id."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the artifacts bucket's default encryption."
  type        = string
}

variable "noncurrent_version_expiration_days" {
  description = "Days an overwritten or deleted artifact version is kept before it expires."
  type        = number
  default     = 90
}

variable "log_retention_days" {
  description = "Days access logs are kept in the logs bucket."
  type        = number
  default     = 365
}

variable "force_destroy" {
  description = "Let terraform destroy non-empty buckets (never in production)."
  type        = bool
  default     = false
}
