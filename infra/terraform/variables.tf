# The knobs of one environment (the same list for every environment);
# environments/<environment>.tfvars sets them, main.tf hands them to the modules.

variable "region" {
  description = "AWS region of the environment."
  type        = string
}

# ---------------------------------------------------------------------- environment

variable "environment" {
  description = "Environment name (staging, production): names every resource mlops-<environment>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be 2-16 lower-case letters, digits or dashes."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch and the logs bucket keep logs."
  type        = number
  default     = 365
}

variable "kms_deletion_window_days" {
  description = "Days a scheduled deletion of the environment key waits."
  type        = number
  default     = 30
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can be restored."
  type        = number
  default     = 30
}

# -------------------------------------------------------------------------- network

variable "vpc_cidr" {
  description = "CIDR block of the VPC (a /16)."
  type        = string
}

variable "availability_zones" {
  description = "Availability zones used (2 or 3, named)."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones instead of one per zone."
  type        = bool
}

# -------------------------------------------------------------------------- storage

variable "noncurrent_version_expiration_days" {
  description = "Days an overwritten artifact version is kept."
  type        = number
  default     = 90
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy non-empty buckets (never in production)."
  type        = bool
  default     = false
}

# ------------------------------------------------------------------------- database

variable "db_engine_version" {
  description = "PostgreSQL version."
  type        = string
  default     = "16"
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
}

variable "db_allocated_storage" {
  description = "Initial RDS storage in GiB."
  type        = number
}

variable "db_max_allocated_storage" {
  description = "RDS storage autoscaling ceiling in GiB."
  type        = number
}

variable "db_multi_az" {
  description = "A standby instance in a second zone."
  type        = bool
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery)."
  type        = number
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database instance."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------- cache

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
}

variable "redis_num_cache_clusters" {
  description = "Redis nodes: 1, or 2 and more for a replica with multi-AZ failover."
  type        = number
}

# ------------------------------------------------------------------- images and ECR

variable "app_image" {
  description = "Image of this repository (mlops, serving, flows, Prefect): serving, flow runs and the Prefect server."
  type        = string
}

variable "mlflow_image" {
  description = "Image running `mlflow server` with a PostgreSQL driver and boto3 (the app image qualifies)."
  type        = string
}

variable "prefect_worker_image" {
  description = "Image of the Prefect ECS worker: Prefect 3 with prefect-aws installed."
  type        = string
}

variable "db_bootstrap_image" {
  description = "Image with psql for the db-bootstrap task."
  type        = string
  default     = "public.ecr.aws/docker/library/postgres:16-alpine"
}

variable "ecr_repository_arns" {
  description = "ECR repositories the images come from (the execution roles may pull from these only)."
  type        = list(string)
}

# ----------------------------------------------------------------- load balancers

variable "serving_certificate_arn" {
  description = "ACM certificate of the serving load balancer's HTTPS listener."
  type        = string
}

variable "serving_hostname" {
  description = "Host name clients call the prediction service by; any host when null."
  type        = string
  default     = null
}

variable "serving_allowed_cidrs" {
  description = "Client ranges that may reach the prediction service."
  type        = list(string)
}

variable "serving_waf_rate_limit" {
  description = "Requests one client address may send in 5 minutes before WAF blocks it."
  type        = number
  default     = 20000
}

variable "ops_certificate_arn" {
  description = "ACM certificate of the internal load balancer (Prefect and MLflow UIs); must cover both host names."
  type        = string
}

variable "ops_allowed_cidrs" {
  description = "Ranges (VPN, office) that may reach the Prefect and MLflow UIs on the internal load balancer."
  type        = list(string)
}

variable "prefect_hostname" {
  description = "Host name of the Prefect UI and API on the internal load balancer."
  type        = string
}

variable "mlflow_hostname" {
  description = "Host name of the MLflow UI on the internal load balancer."
  type        = string
}

variable "alb_deletion_protection" {
  description = "Refuse to delete the load balancers."
  type        = bool
  default     = true
}

# ------------------------------------------------------------------------ workloads

variable "work_pool_name" {
  description = "Prefect work pool (type ecs) the worker polls; prefect.yaml names the same pool."
  type        = string
  default     = "mlops-ecs"
}

variable "prefect_worker_count" {
  description = "Prefect ECS workers polling the work pool."
  type        = number
  default     = 1
}

variable "prefect_server_cpu" {
  description = "CPU units of the Prefect server task."
  type        = number
  default     = 1024
}

variable "prefect_server_memory" {
  description = "Memory (MiB) of the Prefect server task."
  type        = number
  default     = 2048
}

variable "mlflow_cpu" {
  description = "CPU units of the MLflow server task."
  type        = number
  default     = 512
}

variable "mlflow_memory" {
  description = "Memory (MiB) of the MLflow server task."
  type        = number
  default     = 1024
}

variable "serving_cpu" {
  description = "CPU units of a serving task."
  type        = number
}

variable "serving_memory" {
  description = "Memory (MiB) of a serving task."
  type        = number
}

variable "serving_workers" {
  description = "uvicorn worker processes per serving task (MLOPS_SERVING__WORKERS)."
  type        = number
  default     = 1
}

variable "serving_min_count" {
  description = "Fewest serving tasks."
  type        = number
}

variable "serving_max_count" {
  description = "Most serving tasks autoscaling may run."
  type        = number
}

variable "serving_cpu_target_percent" {
  description = "Average CPU utilisation autoscaling keeps the serving tasks at."
  type        = number
  default     = 60
}

variable "serving_requests_per_target" {
  description = "Requests per minute per serving task autoscaling aims for."
  type        = number
  default     = 3000
}

variable "flow_run_cpu" {
  description = "CPU units of a flow-run task (training runs here)."
  type        = number
}

variable "flow_run_memory" {
  description = "Memory (MiB) of a flow-run task."
  type        = number
}

variable "flow_run_ephemeral_storage_gib" {
  description = "Task-local storage (GiB) of a flow-run task (training sets, model files)."
  type        = number
  default     = 50
}
