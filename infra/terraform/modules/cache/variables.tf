variable "name" {
  description = "Replication group id and prefix of its companions (mlops-<environment>)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cache's security group."
  type        = string
}

variable "subnet_ids" {
  description = "Isolated data subnets of the cache subnet group."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect, by a name that labels the rule (e.g. serving)."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest and the log groups."
  type        = string
}

variable "auth_token" {
  description = "Redis AUTH token (16-128 characters), kept in Secrets Manager by the secrets module."
  type        = string
  sensitive   = true
}

variable "engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "node_type" {
  description = "ElastiCache node type."
  type        = string
}

variable "num_cache_clusters" {
  description = "Nodes in the replication group: 1 (no replica) or more (replicas, multi-AZ failover)."
  type        = number

  validation {
    condition     = var.num_cache_clusters >= 1 && var.num_cache_clusters <= 6
    error_message = "num_cache_clusters must be between 1 and 6."
  }
}

variable "port" {
  description = "Redis port."
  type        = number
  default     = 6379
}

variable "snapshot_retention_days" {
  description = "Days daily snapshots are kept (0 disables them)."
  type        = number
  default     = 7
}

variable "log_group_prefix" {
  description = "Prefix of the environment's log group names (/mlops/<environment>)."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the Redis logs."
  type        = number
  default     = 365
}
