# One ECS Fargate workload: task definition, log group, security group and (unless
# create_service is false, for one-off tasks such as flow runs) a service with
# optional service discovery, load balancer rule and autoscaling.
#
# Containers run with a read-only root file system; the paths in scratch_paths are
# writable task-local volumes (Fargate has no tmpfs). Secrets are injected by ARN.
# The desired count follows min_count..max_count through Application Auto Scaling,
# so terraform and the scaling policies never fight over it.

data "aws_region" "current" {}

locals {
  full_name = "${var.name_prefix}-${var.name}"
  log_group = "${var.log_group_prefix}/${var.name}"
  max_count = coalesce(var.max_count, var.min_count)

  scratch_volumes = { for index, path in var.scratch_paths : "scratch-${index}" => path }

  container = merge(
    {
      name                   = var.container_name
      image                  = var.image
      essential              = true
      readonlyRootFilesystem = true
      environment            = [for key, value in var.environment : { name = key, value = value }]
      secrets                = [for key, arn in var.secrets : { name = key, valueFrom = arn }]
      portMappings           = var.container_port == null ? [] : [{ containerPort = var.container_port, protocol = "tcp" }]
      mountPoints            = [for volume, path in local.scratch_volumes : { sourceVolume = volume, containerPath = path, readOnly = false }]
      linuxParameters        = { initProcessEnabled = true }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = var.name
        }
      }
    },
    { for key, value in { command = var.command } : key => value if value != null },
  )
}

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_ecs_task_definition" "this" {
  family                   = local.full_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = var.execution_role_arn
  task_role_arn            = var.task_role_arn
  container_definitions    = jsonencode([local.container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  dynamic "ephemeral_storage" {
    for_each = var.ephemeral_storage_gib == null ? [] : [var.ephemeral_storage_gib]

    content {
      size_in_gib = ephemeral_storage.value
    }
  }

  dynamic "volume" {
    for_each = local.scratch_volumes

    content {
      name = volume.key
    }
  }
}

# ------------------------------------------------------------------ security group

resource "aws_security_group" "this" {
  name        = local.full_name
  description = "${local.full_name}: its container port from named callers, HTTPS and listed VPC ports out"
  vpc_id      = var.vpc_id

  tags = { Name = local.full_name }
}

resource "aws_vpc_security_group_ingress_rule" "callers" {
  for_each = var.container_port == null ? {} : merge(
    var.ingress_security_group_ids,
    var.load_balancer == null ? {} : { "load-balancer" = var.load_balancer.security_group_id },
  )

  security_group_id            = aws_security_group.this.id
  description                  = "Port ${var.container_port} from ${each.key}"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

# AWS APIs (ECR, Secrets Manager, CloudWatch Logs, ECS, STS) through the NAT gateway,
# S3 through the gateway endpoint.
resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.this.id
  description       = "HTTPS to AWS APIs"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "vpc" {
  for_each = toset([for port in var.egress_vpc_ports : tostring(port)])

  security_group_id = aws_security_group.this.id
  description       = "Port ${each.key} inside the VPC"
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = tonumber(each.key)
  to_port           = tonumber(each.key)
}

# --------------------------------------------------------------- load balancer rule

resource "aws_lb_target_group" "this" {
  #checkov:skip=CKV_AWS_378:TLS ends at the HTTPS listener; the hop to the task stays in private subnets, and the task's security group admits only the load balancer's.
  count = var.load_balancer == null ? 0 : 1

  name                 = substr(local.full_name, 0, 32)
  port                 = var.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    path                = var.load_balancer.health_check_path
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener_rule" "this" {
  count = var.load_balancer == null ? 0 : 1

  listener_arn = var.load_balancer.listener_arn
  priority     = var.load_balancer.priority

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this[0].arn
  }

  dynamic "condition" {
    for_each = length(var.load_balancer.host_headers) > 0 ? [var.load_balancer.host_headers] : []

    content {
      host_header {
        values = condition.value
      }
    }
  }

  condition {
    path_pattern {
      values = var.load_balancer.path_patterns
    }
  }
}

# -------------------------------------------------------------------------- service

resource "aws_service_discovery_service" "this" {
  count = var.create_service && var.service_discovery != null ? 1 : 0

  name = var.name

  dns_config {
    namespace_id   = var.service_discovery.namespace_id
    routing_policy = "MULTIVALUE"

    dns_records {
      type = "A"
      ttl  = 10
    }
  }
}

resource "aws_ecs_service" "this" {
  count = var.create_service ? 1 : 0

  name                               = local.full_name
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.min_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  enable_execute_command             = false
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  deployment_minimum_healthy_percent = var.deployment_minimum_healthy_percent
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = var.load_balancer == null ? null : var.health_check_grace_period_seconds

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.this.id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  dynamic "load_balancer" {
    for_each = var.load_balancer == null ? [] : [1]

    content {
      target_group_arn = aws_lb_target_group.this[0].arn
      container_name   = var.container_name
      container_port   = var.container_port
    }
  }

  dynamic "service_registries" {
    for_each = var.service_discovery == null ? [] : [1]

    content {
      registry_arn = aws_service_discovery_service.this[0].arn
    }
  }

  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener_rule.this]
}

# ---------------------------------------------------------------------- autoscaling

resource "aws_appautoscaling_target" "this" {
  count = var.create_service ? 1 : 0

  service_namespace  = "ecs"
  resource_id        = "service/${split("/", var.cluster_arn)[1]}/${aws_ecs_service.this[0].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = local.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  count = var.create_service && var.scaling != null ? 1 : 0

  name               = "${local.full_name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  resource_id        = aws_appautoscaling_target.this[0].resource_id
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.scaling.cpu_target_percent
    scale_in_cooldown  = var.scaling.scale_in_cooldown_seconds
    scale_out_cooldown = var.scaling.scale_out_cooldown_seconds

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  count = var.create_service && var.scaling != null && var.load_balancer != null ? 1 : 0

  name               = "${local.full_name}-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  resource_id        = aws_appautoscaling_target.this[0].resource_id
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.scaling.requests_per_target
    scale_in_cooldown  = var.scaling.scale_in_cooldown_seconds
    scale_out_cooldown = var.scaling.scale_out_cooldown_seconds

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${var.load_balancer.arn_suffix}/${aws_lb_target_group.this[0].arn_suffix}"
    }
  }
}
