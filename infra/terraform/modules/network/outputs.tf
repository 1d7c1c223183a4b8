output "vpc_id" {
  description = "Id of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "CIDR block of the VPC (security groups open service ports to it only)."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets: load balancers and NAT gateways."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets: ECS tasks (outbound through NAT)."
  value       = aws_subnet.private[*].id
}

output "data_subnet_ids" {
  description = "Isolated subnets: RDS and ElastiCache (no route out of the VPC)."
  value       = aws_subnet.data[*].id
}

output "nat_public_ips" {
  description = "Public addresses the tasks' outbound traffic leaves from (for allow-lists elsewhere)."
  value       = aws_eip.nat[*].public_ip
}
