# Production: three zones, a NAT gateway per zone, a multi-AZ database with 30 days of
# point-in-time recovery, Redis with a replica and automatic failover, serving
# autoscaled between 2 and 10 tasks. Placeholders (account 123456789012, example.com,
# certificate ids) are replaced with the real values before `plan`.

environment = "production"
region      = "eu-west-1"

vpc_cidr           = "10.30.0.0/16"
availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
single_nat_gateway = false

db_instance_class        = "db.r6g.large"
db_allocated_storage     = 100
db_max_allocated_storage = 1000
db_multi_az              = true
db_backup_retention_days = 30

redis_node_type          = "cache.r6g.large"
redis_num_cache_clusters = 2

app_image            = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-loop:0.1.0"
mlflow_image         = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-loop:0.1.0"
prefect_worker_image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-prefect-worker:3.8.8"
ecr_repository_arns = [
  "arn:aws:ecr:eu-west-1:123456789012:repository/mlops-loop",
  "arn:aws:ecr:eu-west-1:123456789012:repository/mlops-prefect-worker",
]

serving_certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000003"
serving_hostname        = "api.mlops.example.com"
serving_allowed_cidrs   = ["0.0.0.0/0"]

ops_certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000004"
ops_allowed_cidrs   = ["10.100.0.0/16"]
prefect_hostname    = "prefect.mlops.example.com"
mlflow_hostname     = "mlflow.mlops.example.com"

prefect_worker_count = 2

serving_cpu       = 2048
serving_memory    = 4096
serving_workers   = 2
serving_min_count = 2
serving_max_count = 10

flow_run_cpu    = 4096
flow_run_memory = 16384

log_retention_days          = 365
secret_recovery_window_days = 30
