# Staging: the production design at a smaller size (single NAT, single-AZ database,
# one Redis node, fewer and smaller tasks). Placeholders (account 123456789012,
# example.com, certificate ids) are replaced with the real values before `plan`.

environment = "staging"
region      = "eu-west-1"

vpc_cidr           = "10.20.0.0/16"
availability_zones = ["eu-west-1a", "eu-west-1b"]
single_nat_gateway = true

db_instance_class        = "db.t4g.medium"
db_allocated_storage     = 20
db_max_allocated_storage = 100
db_multi_az              = false
db_backup_retention_days = 7

redis_node_type          = "cache.t4g.small"
redis_num_cache_clusters = 1

app_image            = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-loop:0.1.0"
mlflow_image         = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-loop:0.1.0"
prefect_worker_image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-prefect-worker:3.8.8"
ecr_repository_arns = [
  "arn:aws:ecr:eu-west-1:123456789012:repository/mlops-loop",
  "arn:aws:ecr:eu-west-1:123456789012:repository/mlops-prefect-worker",
]

serving_certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000001"
serving_hostname        = "api.staging.mlops.example.com"
serving_allowed_cidrs   = ["0.0.0.0/0"]

ops_certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000002"
ops_allowed_cidrs   = ["10.100.0.0/16"]
prefect_hostname    = "prefect.staging.mlops.example.com"
mlflow_hostname     = "mlflow.staging.mlops.example.com"

prefect_worker_count = 1

serving_cpu       = 1024
serving_memory    = 2048
serving_workers   = 1
serving_min_count = 1
serving_max_count = 3

flow_run_cpu    = 2048
flow_run_memory = 8192

log_retention_days          = 365
secret_recovery_window_days = 7
