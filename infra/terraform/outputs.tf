# One output per production setting (mlops/settings/, .env.example), named after its
# environment variable in lower case: `mlops_s3_bucket` is MLOPS_S3_BUCKET. Settings
# that hold a credential are outputs `<name>_secret_arn`: the Secrets Manager secret
# whose value is the setting. The ECS task definitions already inject all of them;
# docs/deployment.md shows how to build a .env for a laptop from these outputs.
# tests/unit/test_terraform.py checks the mapping is one to one.

output "mlops_profile" {
  description = "MLOPS_PROFILE: the settings profile: always production here."
  value       = local.plain_settings["MLOPS_PROFILE"]
}

output "mlops_tracking_uri" {
  description = "MLOPS_TRACKING_URI: MLflow tracking server (service discovery name inside the VPC)."
  value       = local.plain_settings["MLOPS_TRACKING_URI"]
}

output "mlops_feast__online_store" {
  description = "MLOPS_FEAST__ONLINE_STORE: Feast online store type: redis (ElastiCache)."
  value       = local.plain_settings["MLOPS_FEAST__ONLINE_STORE"]
}

output "mlops_s3_endpoint_url" {
  description = "MLOPS_S3_ENDPOINT_URL: regional S3 endpoint."
  value       = local.plain_settings["MLOPS_S3_ENDPOINT_URL"]
}

output "mlops_s3_bucket" {
  description = "MLOPS_S3_BUCKET: the artifacts bucket."
  value       = local.plain_settings["MLOPS_S3_BUCKET"]
}

output "mlops_s3_region" {
  description = "MLOPS_S3_REGION: region of the artifacts bucket (the environment's region)."
  value       = local.plain_settings["MLOPS_S3_REGION"]
}

output "prefect_api_url" {
  description = "PREFECT_API_URL: Prefect server API inside the VPC, for workers and flow runs."
  value       = local.plain_settings["PREFECT_API_URL"]
}

output "mlops_database_url_secret_arn" {
  description = "MLOPS_DATABASE_URL: ARN of the Secrets Manager secret holding postgresql:// URL of the mlops database (prediction log, audit trail, table sources)."
  value       = local.secret_settings["MLOPS_DATABASE_URL"]
}

output "mlops_optuna_storage_secret_arn" {
  description = "MLOPS_OPTUNA_STORAGE: ARN of the Secrets Manager secret holding postgresql+psycopg:// URL of Optuna's storage."
  value       = local.secret_settings["MLOPS_OPTUNA_STORAGE"]
}

output "mlops_feast__redis_connection_secret_arn" {
  description = "MLOPS_FEAST__REDIS_CONNECTION: ARN of the Secrets Manager secret holding Feast's Redis connection string (host:port,ssl=true,password=...)."
  value       = local.secret_settings["MLOPS_FEAST__REDIS_CONNECTION"]
}

output "mlops_feast__registry_url_secret_arn" {
  description = "MLOPS_FEAST__REGISTRY_URL: ARN of the Secrets Manager secret holding postgresql+psycopg:// URL of Feast's SQL registry."
  value       = local.secret_settings["MLOPS_FEAST__REGISTRY_URL"]
}

output "mlops_admin_token_secret_arn" {
  description = "MLOPS_ADMIN_TOKEN: ARN of the Secrets Manager secret holding the admin endpoints' token."
  value       = local.secret_settings["MLOPS_ADMIN_TOKEN"]
}

output "mlops_serving__api_key_secret_arn" {
  description = "MLOPS_SERVING__API_KEY: ARN of the Secrets Manager secret holding the prediction endpoints' API key."
  value       = local.secret_settings["MLOPS_SERVING__API_KEY"]
}

output "mlops_serving__prediction_log_url_secret_arn" {
  description = "MLOPS_SERVING__PREDICTION_LOG_URL: ARN of the Secrets Manager secret holding postgresql:// URL of the prediction log (the mlops database)."
  value       = local.secret_settings["MLOPS_SERVING__PREDICTION_LOG_URL"]
}

# ------------------------------------------------------------------- operations

output "serving_url" {
  description = "Base URL of the prediction service."
  value       = local.serving_url
}

output "prefect_ui_url" {
  description = "Prefect UI and API on the internal load balancer (through the VPN)."
  value       = "https://${var.prefect_hostname}"
}

output "mlflow_ui_url" {
  description = "MLflow UI on the internal load balancer (through the VPN)."
  value       = "https://${var.mlflow_hostname}"
}

output "dns_records" {
  description = "DNS records to create: host name => load balancer DNS name and Route 53 zone id (alias records)."
  value = merge(
    {
      (var.prefect_hostname) = { target = module.ops_alb.dns_name, zone_id = module.ops_alb.zone_id }
      (var.mlflow_hostname)  = { target = module.ops_alb.dns_name, zone_id = module.ops_alb.zone_id }
    },
    var.serving_hostname == null ? {} : {
      (var.serving_hostname) = { target = module.serving_alb.dns_name, zone_id = module.serving_alb.zone_id }
    },
  )
}

output "ecs_cluster_name" {
  description = "Name of the ECS cluster."
  value       = module.ecs_cluster.cluster_name
}

output "ecs_service_names" {
  description = "ECS service of each long-running workload."
  value = {
    prefect-server = module.prefect_server.service_name
    prefect-worker = module.prefect_worker.service_name
    mlflow         = module.mlflow.service_name
    serving        = module.serving.service_name
  }
}

output "log_group_names" {
  description = "CloudWatch log group of each workload."
  value = {
    prefect-server = module.prefect_server.log_group_name
    prefect-worker = module.prefect_worker.log_group_name
    mlflow         = module.mlflow.log_group_name
    serving        = module.serving.log_group_name
    flow-run       = module.flow_run.log_group_name
    db-bootstrap   = module.db_bootstrap.log_group_name
  }
}

# Where flow runs start (the ECS worker, or `aws ecs run-task` by hand): private subnets,
# no public IP, the flow-run security group. db-bootstrap differs in its security group.
locals {
  flow_run_network = {
    subnets        = module.network.private_subnet_ids
    securityGroups = [module.flow_run.security_group_id]
    assignPublicIp = "DISABLED"
  }
}

output "prefect_ecs_job_variables" {
  description = "Defaults of the mlops-ecs work pool's base job template (docs/deployment.md)."
  value = {
    cluster                         = module.ecs_cluster.cluster_arn
    task_definition_arn             = module.flow_run.task_definition_arn
    container_name                  = module.flow_run.container_name
    launch_type                     = "FARGATE"
    vpc_id                          = module.network.vpc_id
    configure_cloudwatch_logs       = false
    stream_output                   = false
    auto_deregister_task_definition = false
    network_configuration           = local.flow_run_network
  }
}

output "flow_run_task_definition_arn" {
  description = "Task definition of flow runs; also runs one-off `mlops` commands (aws ecs run-task with a command override)."
  value       = module.flow_run.task_definition_arn
}

output "flow_run_network_configuration" {
  description = "awsvpcConfiguration for `aws ecs run-task` of the flow-run task definition (JSON)."
  value       = jsonencode({ awsvpcConfiguration = local.flow_run_network })
}

output "db_bootstrap_task_definition_arn" {
  description = "Task definition of the one-off db-bootstrap task (creates the application role and databases)."
  value       = module.db_bootstrap.task_definition_arn
}

output "db_bootstrap_network_configuration" {
  description = "awsvpcConfiguration for `aws ecs run-task` of the db-bootstrap task definition (JSON)."
  value = jsonencode({
    awsvpcConfiguration = merge(local.flow_run_network, { securityGroups = [module.db_bootstrap.security_group_id] })
  })
}

output "artifacts_bucket_name" {
  description = "Name of the artifacts bucket."
  value       = module.storage.artifacts_bucket_name
}

output "database_instance_id" {
  description = "Identifier of the RDS instance (snapshots, point-in-time restores)."
  value       = module.database.instance_id
}

output "kms_key_arn" {
  description = "ARN of the environment's KMS key."
  value       = module.kms.key_arn
}
