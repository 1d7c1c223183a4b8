output "arn" {
  description = "ARN of the load balancer."
  value       = aws_lb.this.arn
}

output "arn_suffix" {
  description = "ARN suffix of the load balancer (CloudWatch metrics, request-count autoscaling)."
  value       = aws_lb.this.arn_suffix
}

output "dns_name" {
  description = "DNS name of the load balancer (point the service's host name at it)."
  value       = aws_lb.this.dns_name
}

output "zone_id" {
  description = "Route 53 zone id of the load balancer (for alias records)."
  value       = aws_lb.this.zone_id
}

output "https_listener_arn" {
  description = "ARN of the HTTPS listener services attach their rules to."
  value       = aws_lb_listener.https.arn
}

output "security_group_id" {
  description = "Security group of the load balancer (targets admit traffic from it)."
  value       = aws_security_group.this.id
}

output "web_acl_arn" {
  description = "ARN of the WAF web ACL, or null without WAF."
  value       = one(aws_wafv2_web_acl.this[*].arn)
}
