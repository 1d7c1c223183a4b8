output "task_definition_arn" {
  description = "ARN (with revision) of the task definition."
  value       = aws_ecs_task_definition.this.arn
}

output "task_definition_family" {
  description = "Family of the task definition."
  value       = aws_ecs_task_definition.this.family
}

output "container_name" {
  description = "Name of the container in the task definition."
  value       = var.container_name
}

output "security_group_id" {
  description = "Security group of the tasks."
  value       = aws_security_group.this.id
}

output "service_name" {
  description = "Name of the ECS service, or null for a one-off task definition."
  value       = one(aws_ecs_service.this[*].name)
}

output "log_group_name" {
  description = "CloudWatch log group of the workload."
  value       = aws_cloudwatch_log_group.this.name
}

output "discovery_name" {
  description = "Service discovery name of the workload (<name>), or null without service discovery."
  value       = var.create_service && var.service_discovery != null ? var.name : null
}
