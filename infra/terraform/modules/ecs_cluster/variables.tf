variable "name" {
  description = "Name of the cluster (mlops-<environment>)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the private DNS namespace."
  type        = string
}

variable "namespace" {
  description = "Private DNS namespace of service discovery (e.g. mlops-production.internal)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of ECS Exec sessions and their log group."
  type        = string
}

variable "log_group_prefix" {
  description = "Prefix of the environment's log group names (/mlops/<environment>)."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps ECS Exec session logs."
  type        = number
  default     = 365
}
