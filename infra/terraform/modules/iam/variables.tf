variable "name" {
  description = "Name prefix of the environment (mlops-<environment>); role names add the workload."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the artifacts bucket."
  type        = string
}

variable "kms_key_arn" {
  description = "ARN of the environment key (bucket, secrets)."
  type        = string
}

variable "secret_arns" {
  description = "ARNs of the secrets module's secrets, by name."
  type        = map(string)
}

variable "db_master_secret_arn" {
  description = "ARN of the RDS-managed master secret (read only by the db-bootstrap task)."
  type        = string
}

variable "ecr_repository_arns" {
  description = "ECR repositories the tasks may pull images from."
  type        = list(string)
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster the worker starts flow runs in."
  type        = string
}

variable "cluster_name" {
  description = "Name of the ECS cluster (scopes the worker's task permissions)."
  type        = string
}

variable "flow_run_task_family" {
  description = "Task definition family of flow runs (the only one the worker may run)."
  type        = string
}

variable "log_group_prefix" {
  description = "Prefix of the workloads' log group names (/mlops/<environment>); each writes <prefix>/<workload>."
  type        = string
}
