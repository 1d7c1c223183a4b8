variable "name" {
  description = "Name prefix of the environment (mlops-<environment>)."
  type        = string
}

variable "cidr_block" {
  description = "CIDR block of the VPC; split into /20-sized public, private and data subnets (a /16 is expected)."
  type        = string
}

variable "availability_zones" {
  description = "Availability zones to spread the subnets over (2 or 3, e.g. [\"eu-west-1a\", \"eu-west-1b\"])."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "Name 2 or 3 availability zones (RDS and ElastiCache subnet groups need two)."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper) instead of one per zone (zone-independent)."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the flow-log group."
  type        = string
}

variable "log_group_prefix" {
  description = "Prefix of the environment's log group names (/mlops/<environment>)."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the VPC flow logs."
  type        = number
  default     = 365
}
