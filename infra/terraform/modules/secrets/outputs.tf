# Read through the versions: whoever injects a secret waits until its value exists.
output "secret_arns" {
  description = "ARN of every secret, by name (database-url, optuna-storage, feast-registry-url, redis-connection, mlflow-backend-store-uri, prefect-database-url, admin-token, serving-api-key, redis-auth-token, db-app-password)."
  value       = { for key, version in aws_secretsmanager_secret_version.this : key => version.arn }
}

output "redis_auth_token" {
  description = "The Redis AUTH token, handed to the cache module (the same value as the redis-auth-token secret)."
  value       = random_password.redis_auth.result
  sensitive   = true
}

output "app_username" {
  description = "The application's PostgreSQL role."
  value       = var.app_username
}

output "database_names" {
  description = "Names of the PostgreSQL databases, by purpose."
  value       = var.databases
}
