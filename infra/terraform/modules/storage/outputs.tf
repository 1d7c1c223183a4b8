output "artifacts_bucket_name" {
  description = "Name of the artifacts bucket (MLOPS_S3_BUCKET)."
  value       = aws_s3_bucket.artifacts.id
}

output "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket (scopes the task roles' S3 access)."
  value       = aws_s3_bucket.artifacts.arn
}

output "artifacts_bucket_regional_domain_name" {
  description = "Regional domain name of the artifacts bucket."
  value       = aws_s3_bucket.artifacts.bucket_regional_domain_name
}

output "logs_bucket_name" {
  description = "Name of the access-log bucket (load balancer logs go under alb/)."
  value       = aws_s3_bucket.logs.id
}
