variable "name" {
  description = "Name of the load balancer and its companions (at most 32 characters)."
  type        = string

  validation {
    condition     = length(var.name) <= 32
    error_message = "Load balancer names are limited to 32 characters."
  }
}

variable "internal" {
  description = "An internal load balancer (private subnets, reachable from the VPC and its peers) instead of an internet-facing one."
  type        = bool
}

variable "vpc_id" {
  description = "VPC of the load balancer."
  type        = string
}

variable "vpc_cidr_block" {
  description = "CIDR block of the VPC (egress to the targets is limited to it)."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the load balancer (public for internet-facing, private for internal)."
  type        = list(string)
}

variable "ingress_cidr_blocks" {
  description = "Client address ranges allowed to connect (0.0.0.0/0 for a public API; the VPN range for internal UIs)."
  type        = list(string)
}

variable "target_ports" {
  description = "Container ports of the targets behind the load balancer."
  type        = list(number)
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener."
  type        = string
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener (TLS 1.2 and 1.3 only by default)."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "access_logs_bucket" {
  description = "Bucket receiving access logs (under alb/<name>/)."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete the load balancer until this is turned off."
  type        = bool
  default     = true
}

variable "idle_timeout_seconds" {
  description = "Idle connection timeout."
  type        = number
  default     = 60
}

variable "enable_waf" {
  description = "Put a WAF web ACL in front of the load balancer (on for internet-facing ones)."
  type        = bool
}

variable "waf_rate_limit" {
  description = "Requests one client address may send in 5 minutes before WAF blocks it."
  type        = number
  default     = 20000
}

variable "kms_key_arn" {
  description = "KMS key of the WAF log group."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the WAF logs."
  type        = number
  default     = 365
}
