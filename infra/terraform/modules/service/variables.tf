variable "name" {
  description = "Workload name (prefect-server, serving, ...): the service discovery name and log stream prefix."
  type        = string
}

variable "name_prefix" {
  description = "Name prefix of the environment (mlops-<environment>); resources are <prefix>-<name>."
  type        = string
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the workload's security group."
  type        = string
}

variable "vpc_cidr_block" {
  description = "CIDR block of the VPC (egress_vpc_ports are opened to it)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets the tasks run in."
  type        = list(string)
}

variable "image" {
  description = "Container image (an ECR repository URL with a tag or digest)."
  type        = string
}

variable "command" {
  description = "Container command; the image's default when null."
  type        = list(string)
  default     = null
}

variable "container_name" {
  description = "Name of the container in the task definition."
  type        = string
  default     = "app"
}

variable "cpu" {
  description = "Fargate task CPU units (256, 512, 1024, 2048, 4096, ...)."
  type        = number
}

variable "memory" {
  description = "Fargate task memory in MiB (must suit cpu)."
  type        = number
}

variable "cpu_architecture" {
  description = "CPU architecture of the image (X86_64 or ARM64)."
  type        = string
  default     = "X86_64"
}

variable "ephemeral_storage_gib" {
  description = "Task-local storage in GiB (21-200); Fargate's 20 GiB when null."
  type        = number
  default     = null
}

variable "container_port" {
  description = "Port the container listens on; null for workloads that only call out."
  type        = number
  default     = null
}

variable "environment" {
  description = "Plain environment variables of the container."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variables injected from Secrets Manager: name => secret ARN (or ARN:json-key::)."
  type        = map(string)
  default     = {}
}

variable "execution_role_arn" {
  description = "ECS execution role (image pull, log group, injected secrets)."
  type        = string
}

variable "task_role_arn" {
  description = "Role of the workload's own AWS calls; none when null."
  type        = string
  default     = null
}

variable "scratch_paths" {
  description = "Writable task-local paths (the root file system is read-only)."
  type        = list(string)
  default     = ["/tmp"]
}

variable "log_group_prefix" {
  description = "Prefix of the environment's log group names; the workload logs to <prefix>/<name>."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the workload's logs."
  type        = number
  default     = 365
}

variable "kms_key_arn" {
  description = "KMS key of the log group."
  type        = string
}

variable "ingress_security_group_ids" {
  description = "Security groups that may reach container_port, by a name that labels the rule."
  type        = map(string)
  default     = {}
}

variable "egress_vpc_ports" {
  description = "Ports the workload may reach inside the VPC (PostgreSQL, Redis, other services); HTTPS anywhere is always open."
  type        = list(number)
  default     = []
}

variable "create_service" {
  description = "Run the task definition as a long-lived service; false for one-off tasks (flow runs, bootstrap)."
  type        = bool
  default     = true
}

variable "min_count" {
  description = "Fewest running tasks (the desired count without scaling)."
  type        = number
  default     = 1
}

variable "max_count" {
  description = "Most running tasks; min_count when null (no scaling room)."
  type        = number
  default     = null
}

variable "deployment_minimum_healthy_percent" {
  description = "Share of min_count kept running during a deployment (0 for singletons that must not run twice)."
  type        = number
  default     = 100
}

variable "health_check_grace_period_seconds" {
  description = "Seconds a new task's load balancer health checks are ignored."
  type        = number
  default     = 60
}

variable "service_discovery" {
  description = "Register the tasks as <name>.<namespace> in this Cloud Map namespace; none when null."
  type = object({
    namespace_id = string
  })
  default = null
}

variable "load_balancer" {
  description = "Attach the service to an HTTPS listener with a rule on host headers (optional) and path patterns; none when null."
  type = object({
    listener_arn      = string
    arn_suffix        = string
    security_group_id = string
    priority          = number
    host_headers      = optional(list(string), [])
    path_patterns     = optional(list(string), ["/*"])
    health_check_path = string
  })
  default = null
}

variable "scaling" {
  description = "Target-tracking autoscaling between min_count and max_count on CPU and, behind a load balancer, requests per task; none when null."
  type = object({
    cpu_target_percent         = number
    requests_per_target        = optional(number, 1000)
    scale_in_cooldown_seconds  = optional(number, 300)
    scale_out_cooldown_seconds = optional(number, 60)
  })
  default = null
}
