variable "name" {
  description = "Identifier of the instance and prefix of its companions (mlops-<environment>)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the instance's security group."
  type        = string
}

variable "subnet_ids" {
  description = "Isolated data subnets of the DB subnet group (two zones or more)."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect, by a name that labels the rule (e.g. serving)."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "KMS key for storage, Performance Insights, the master secret and the log groups."
  type        = string
}

variable "engine_version" {
  description = "PostgreSQL version (major, or major.minor); its major picks the parameter group family."
  type        = string
  default     = "16"
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
}

variable "allocated_storage" {
  description = "Initial storage in GiB."
  type        = number
  default     = 50
}

variable "max_allocated_storage" {
  description = "Storage autoscaling ceiling in GiB."
  type        = number
  default     = 500
}

variable "port" {
  description = "PostgreSQL port."
  type        = number
  default     = 5432
}

variable "master_username" {
  description = "Master user name; its password is generated and rotated by RDS in Secrets Manager."
  type        = string
  default     = "mlops_admin"
}

variable "multi_az" {
  description = "A synchronous standby in a second zone (production: true)."
  type        = bool
}

variable "backup_retention_days" {
  description = "Days automated backups (point-in-time recovery) are kept."
  type        = number
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 7
    error_message = "Keep at least 7 days of backups."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the instance until this is turned off."
  type        = bool
  default     = true
}

variable "log_min_duration_statement_ms" {
  description = "Statements slower than this (ms) are logged."
  type        = number
  default     = 1000
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the exported PostgreSQL logs."
  type        = number
  default     = 365
}

variable "performance_insights_retention_days" {
  description = "Days Performance Insights keeps its data (7 is free)."
  type        = number
  default     = 7
}

variable "monitoring_interval_seconds" {
  description = "Enhanced Monitoring interval (1, 5, 10, 15, 30 or 60)."
  type        = number
  default     = 60
}
