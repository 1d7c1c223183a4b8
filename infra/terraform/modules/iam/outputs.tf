output "execution_role_arns" {
  description = "ECS execution role ARN of each workload (prefect-server, prefect-worker, mlflow, serving, flow-run, db-bootstrap)."
  value       = { for key, role in aws_iam_role.execution : key => role.arn }
}

output "task_role_arns" {
  description = "ECS task role ARN of each workload that calls AWS (prefect-worker, flow-run, mlflow, serving)."
  value       = { for key, role in aws_iam_role.task : key => role.arn }
}
