# The Fargate cluster every workload runs in, with Container Insights, ECS Exec
# sessions encrypted and logged (Exec stays off on the services unless turned on),
# and a private DNS namespace (Cloud Map) through which workloads find each other:
# prefect-server.<namespace>:4200, mlflow.<namespace>:5000.

resource "aws_cloudwatch_log_group" "exec" {
  name              = "${var.log_group_prefix}/ecs-exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = var.kms_key_arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
      }
    }
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
    base              = 1
  }
}

resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = var.namespace
  description = "${var.name}: service discovery of the ECS workloads"
  vpc         = var.vpc_id
}
