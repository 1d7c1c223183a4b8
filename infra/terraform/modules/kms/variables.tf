variable "name" {
  description = "Name prefix of the environment (mlops-<environment>); the key alias is alias/<name>."
  type        = string
}

variable "log_group_name_patterns" {
  description = "CloudWatch log group names (wildcards allowed) that may encrypt with the key."
  type        = list(string)
}

variable "deletion_window_in_days" {
  description = "Days a scheduled key deletion waits (7-30)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "rotation_period_in_days" {
  description = "Days between automatic rotations of the key material (90-2560)."
  type        = number
  default     = 365
}
