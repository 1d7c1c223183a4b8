output "address" {
  description = "Host name of the instance (inside the VPC)."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Port of the instance."
  value       = aws_db_instance.this.port
}

output "instance_id" {
  description = "Identifier of the instance (for snapshots and restores)."
  value       = aws_db_instance.this.identifier
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = aws_security_group.this.id
}

output "master_user_secret_arn" {
  description = "ARN of the RDS-managed secret holding the master user name and password (JSON)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "bootstrap_script" {
  description = "Shell script (bootstrap.sh) that creates the application role and databases."
  value       = file("${path.module}/bootstrap.sh")
}
