# One output per production setting (mlops/settings.py, .env.example), named after its
# environment variable in lower case: `mlops_s3_bucket` is MLOPS_S3_BUCKET. Settings
# that hold a credential are outputs `<name>_secret_arn`: the Secrets Manager secret
# whose value is the setting. The ECS task definitions already inject all of them;
# docs/deployment.md shows how to build a .env for a laptop from these outputs.
# tests/unit/test_terraform.py checks the mapping is one to one.

output "mlops_profile" {
  description = "MLOPS_PROFILE: the settings profile: always production here."
  value       = module.platform.plain_settings["MLOPS_PROFILE"]
}

output "mlops_tracking_uri" {
  description = "MLOPS_TRACKING_URI: MLflow tracking server (service discovery name inside the VPC)."
  value       = module.platform.plain_settings["MLOPS_TRACKING_URI"]
}

output "mlops_feast__online_store" {
  description = "MLOPS_FEAST__ONLINE_STORE: Feast online store type: redis (ElastiCache)."
  value       = module.platform.plain_settings["MLOPS_FEAST__ONLINE_STORE"]
}

output "mlops_s3_endpoint_url" {
  description = "MLOPS_S3_ENDPOINT_URL: regional S3 endpoint."
  value       = module.platform.plain_settings["MLOPS_S3_ENDPOINT_URL"]
}

output "mlops_s3_bucket" {
  description = "MLOPS_S3_BUCKET: the artifacts bucket."
  value       = module.platform.plain_settings["MLOPS_S3_BUCKET"]
}

output "mlops_s3_region" {
  description = "MLOPS_S3_REGION: region of the artifacts bucket (the environment's region)."
  value       = module.platform.plain_settings["MLOPS_S3_REGION"]
}

output "prefect_api_url" {
  description = "PREFECT_API_URL: Prefect server API inside the VPC, for workers and flow runs."
  value       = module.platform.plain_settings["PREFECT_API_URL"]
}

output "mlops_database_url_secret_arn" {
  description = "MLOPS_DATABASE_URL: ARN of the Secrets Manager secret holding postgresql:// URL of the mlops database (prediction log, audit trail, table sources)."
  value       = module.platform.secret_settings["MLOPS_DATABASE_URL"]
}

output "mlops_optuna_storage_secret_arn" {
  description = "MLOPS_OPTUNA_STORAGE: ARN of the Secrets Manager secret holding postgresql+psycopg:// URL of Optuna's storage."
  value       = module.platform.secret_settings["MLOPS_OPTUNA_STORAGE"]
}

output "mlops_feast__redis_connection_secret_arn" {
  description = "MLOPS_FEAST__REDIS_CONNECTION: ARN of the Secrets Manager secret holding Feast's Redis connection string (host:port,ssl=true,password=...)."
  value       = module.platform.secret_settings["MLOPS_FEAST__REDIS_CONNECTION"]
}

output "mlops_feast__registry_url_secret_arn" {
  description = "MLOPS_FEAST__REGISTRY_URL: ARN of the Secrets Manager secret holding postgresql+psycopg:// URL of Feast's SQL registry."
  value       = module.platform.secret_settings["MLOPS_FEAST__REGISTRY_URL"]
}

output "mlops_admin_token_secret_arn" {
  description = "MLOPS_ADMIN_TOKEN: ARN of the Secrets Manager secret holding the admin endpoints' token."
  value       = module.platform.secret_settings["MLOPS_ADMIN_TOKEN"]
}

output "mlops_serving__api_key_secret_arn" {
  description = "MLOPS_SERVING__API_KEY: ARN of the Secrets Manager secret holding the prediction endpoints' API key."
  value       = module.platform.secret_settings["MLOPS_SERVING__API_KEY"]
}

output "mlops_serving__prediction_log_url_secret_arn" {
  description = "MLOPS_SERVING__PREDICTION_LOG_URL: ARN of the Secrets Manager secret holding postgresql:// URL of the prediction log (the mlops database)."
  value       = module.platform.secret_settings["MLOPS_SERVING__PREDICTION_LOG_URL"]
}

# ------------------------------------------------------------------- operations

output "serving_url" {
  description = "Base URL of the prediction service."
  value       = module.platform.serving_url
}

output "prefect_ui_url" {
  description = "Prefect UI and API on the internal load balancer (through the VPN)."
  value       = module.platform.prefect_ui_url
}

output "mlflow_ui_url" {
  description = "MLflow UI on the internal load balancer (through the VPN)."
  value       = module.platform.mlflow_ui_url
}

output "dns_records" {
  description = "DNS records to create: host name => load balancer DNS name and Route 53 zone id."
  value       = module.platform.dns_records
}

output "ecs_cluster_name" {
  description = "Name of the ECS cluster."
  value       = module.platform.ecs_cluster_name
}

output "ecs_service_names" {
  description = "ECS service of each long-running workload."
  value       = module.platform.ecs_service_names
}

output "log_group_names" {
  description = "CloudWatch log group of each workload."
  value       = module.platform.log_group_names
}

output "prefect_ecs_job_variables" {
  description = "Defaults of the mlops-ecs work pool's base job template (docs/deployment.md)."
  value       = module.platform.prefect_ecs_job_variables
}

output "flow_run_task_definition_arn" {
  description = "Task definition of flow runs and of one-off mlops commands."
  value       = module.platform.flow_run_task_definition_arn
}

output "flow_run_network_configuration" {
  description = "Network configuration (JSON) for aws ecs run-task of the flow-run task definition."
  value       = module.platform.flow_run_network_configuration
}

output "db_bootstrap_task_definition_arn" {
  description = "Task definition of the one-off db-bootstrap task."
  value       = module.platform.db_bootstrap_task_definition_arn
}

output "db_bootstrap_network_configuration" {
  description = "Network configuration (JSON) for aws ecs run-task of the db-bootstrap task definition."
  value       = module.platform.db_bootstrap_network_configuration
}

output "artifacts_bucket_name" {
  description = "Name of the artifacts bucket."
  value       = module.platform.artifacts_bucket_name
}

output "database_instance_id" {
  description = "Identifier of the RDS instance."
  value       = module.platform.database_instance_id
}

output "kms_key_arn" {
  description = "ARN of the environment's KMS key."
  value       = module.platform.kms_key_arn
}
