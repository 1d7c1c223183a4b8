# ------------------------------------------------------------ production settings

output "plain_settings" {
  description = "Production settings that are not secret, by environment variable name (MLOPS_PROFILE, MLOPS_TRACKING_URI, ..., PREFECT_API_URL)."
  value       = local.plain_settings
}

output "secret_settings" {
  description = "Production settings held in Secrets Manager: environment variable name => secret ARN (injected into the tasks by ECS)."
  value       = local.secret_settings
}

# ---------------------------------------------------------------------- endpoints

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

# ------------------------------------------------------------------------- ECS

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

output "prefect_ecs_job_variables" {
  description = "Defaults for the ecs work pool's base job template: flow runs start as tasks of the terraform-managed flow-run task definition."
  value = {
    cluster                         = module.ecs_cluster.cluster_arn
    task_definition_arn             = module.flow_run.task_definition_arn
    container_name                  = module.flow_run.container_name
    launch_type                     = "FARGATE"
    vpc_id                          = module.network.vpc_id
    configure_cloudwatch_logs       = false
    stream_output                   = false
    auto_deregister_task_definition = false
    network_configuration = {
      subnets        = module.network.private_subnet_ids
      securityGroups = [module.flow_run.security_group_id]
      assignPublicIp = "DISABLED"
    }
  }
}

output "flow_run_task_definition_arn" {
  description = "Task definition of flow runs; also runs one-off `mlops` commands (aws ecs run-task with a command override)."
  value       = module.flow_run.task_definition_arn
}

output "flow_run_network_configuration" {
  description = "awsvpcConfiguration for `aws ecs run-task` of the flow-run task definition (JSON)."
  value = jsonencode({
    awsvpcConfiguration = {
      subnets        = module.network.private_subnet_ids
      securityGroups = [module.flow_run.security_group_id]
      assignPublicIp = "DISABLED"
    }
  })
}

output "db_bootstrap_task_definition_arn" {
  description = "Task definition of the one-off db-bootstrap task (creates the application role and databases)."
  value       = module.db_bootstrap.task_definition_arn
}

output "db_bootstrap_network_configuration" {
  description = "awsvpcConfiguration for `aws ecs run-task` of the db-bootstrap task definition (JSON)."
  value = jsonencode({
    awsvpcConfiguration = {
      subnets        = module.network.private_subnet_ids
      securityGroups = [module.db_bootstrap.security_group_id]
      assignPublicIp = "DISABLED"
    }
  })
}

# ------------------------------------------------------------------------ data

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
