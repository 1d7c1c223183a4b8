# One root module for every environment: the production profile of one environment,
# composed from the single-purpose modules under modules/, with the values of the
# environment chosen at plan time (-var-file=environments/<environment>.tfvars; its
# state key: environments/<environment>.s3.tfbackend at init), so what is tested in
# staging is what runs in production. The provider and its default tags are in
# versions.tf, the state backend in backend.tf, the production settings in outputs.tf.
#
#   internet ──HTTPS──► ALB serving (WAF) ──► serving (ECS, autoscaled)
#   VPN ──HTTPS──► ALB ops (internal) ──► prefect-server, mlflow (UIs and APIs)
#   prefect-worker ──RunTask──► flow-run tasks (training, drift monitor, canary)
#   all tasks ──► RDS PostgreSQL, ElastiCache Redis, S3 (artifacts), Secrets Manager
#
# Workloads find each other through Cloud Map: prefect-server.<namespace>:4200,
# mlflow.<namespace>:5000.

locals {
  name             = "mlops-${var.environment}"
  log_group_prefix = "/mlops/${var.environment}"
  namespace        = "${local.name}.internal"
  region           = var.region

  ports = {
    postgres = 5432
    redis    = 6379
    prefect  = 4200
    mlflow   = 5000
    serving  = 8000
  }

  prefect_api_url = "http://prefect-server.${local.namespace}:${local.ports.prefect}/api"
  tracking_uri    = "http://mlflow.${local.namespace}:${local.ports.mlflow}"
  serving_url     = var.serving_hostname == null ? "https://${module.serving_alb.dns_name}" : "https://${var.serving_hostname}"
  secret          = module.secrets.secret_arns

  # The production settings (mlops/settings/): plain values and Secrets Manager ARNs.
  # Every key is an environment variable of the flow-run and serving containers and
  # one output (outputs.tf; tests/unit/test_terraform.py keeps them in step).
  plain_settings = {
    MLOPS_PROFILE             = "production"
    MLOPS_TRACKING_URI        = local.tracking_uri
    MLOPS_FEAST__ONLINE_STORE = "redis"
    MLOPS_S3_ENDPOINT_URL     = "https://s3.${local.region}.amazonaws.com"
    MLOPS_S3_BUCKET           = module.storage.artifacts_bucket_name
    MLOPS_S3_REGION           = local.region
    PREFECT_API_URL           = local.prefect_api_url
  }

  secret_settings = {
    MLOPS_DATABASE_URL                = local.secret["database-url"]
    MLOPS_OPTUNA_STORAGE              = local.secret["optuna-storage"]
    MLOPS_FEAST__REDIS_CONNECTION     = local.secret["redis-connection"]
    MLOPS_FEAST__REGISTRY_URL         = local.secret["feast-registry-url"]
    MLOPS_ADMIN_TOKEN                 = local.secret["admin-token"]
    MLOPS_SERVING__API_KEY            = local.secret["serving-api-key"]
    MLOPS_SERVING__PREDICTION_LOG_URL = local.secret["database-url"]
  }

  # The flow-run container does not answer prediction requests: no serving API key.
  # Serving never talks to Prefect: no PREFECT_API_URL.
  flow_run_secrets = { for key, arn in local.secret_settings : key => arn if key != "MLOPS_SERVING__API_KEY" }
  serving_secrets  = local.secret_settings
  serving_settings = { for key, value in local.plain_settings : key => value if key != "PREFECT_API_URL" }

  # Writable scratch space of the Python workloads (their root file system is read-only).
  python_scratch_env = {
    HOME               = "/tmp"
    MLOPS_HOME         = "/tmp/mlops"
    PREFECT_HOME       = "/tmp/prefect"
    AWS_DEFAULT_REGION = local.region
  }
}

# ------------------------------------------------------------- foundation (no ECS)

module "kms" {
  source = "./modules/kms"

  name                    = local.name
  deletion_window_in_days = var.kms_deletion_window_days
  log_group_name_patterns = [
    "${local.log_group_prefix}/*",
    "/aws/rds/instance/${local.name}/*",
    "aws-waf-logs-${local.name}*",
  ]
}

module "network" {
  source = "./modules/network"

  name               = local.name
  cidr_block         = var.vpc_cidr
  availability_zones = var.availability_zones
  single_nat_gateway = var.single_nat_gateway
  kms_key_arn        = module.kms.key_arn
  log_group_prefix   = local.log_group_prefix
  log_retention_days = var.log_retention_days
}

module "storage" {
  source = "./modules/storage"

  name                               = local.name
  kms_key_arn                        = module.kms.key_arn
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  log_retention_days                 = var.log_retention_days
  force_destroy                      = var.force_destroy_buckets
}

module "database" {
  source = "./modules/database"

  name                  = local.name
  vpc_id                = module.network.vpc_id
  subnet_ids            = module.network.data_subnet_ids
  kms_key_arn           = module.kms.key_arn
  engine_version        = var.db_engine_version
  instance_class        = var.db_instance_class
  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  multi_az              = var.db_multi_az
  backup_retention_days = var.db_backup_retention_days
  deletion_protection   = var.db_deletion_protection
  log_retention_days    = var.log_retention_days
  port                  = local.ports.postgres

  client_security_group_ids = {
    prefect-server = module.prefect_server.security_group_id
    mlflow         = module.mlflow.security_group_id
    serving        = module.serving.security_group_id
    flow-run       = module.flow_run.security_group_id
    db-bootstrap   = module.db_bootstrap.security_group_id
  }
}

module "secrets" {
  source = "./modules/secrets"

  name_prefix             = "mlops/${var.environment}"
  kms_key_arn             = module.kms.key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  db_address              = module.database.address
  db_port                 = module.database.port
  redis_address           = module.cache.primary_endpoint_address
  redis_port              = module.cache.port
}

module "cache" {
  source = "./modules/cache"

  name               = local.name
  vpc_id             = module.network.vpc_id
  subnet_ids         = module.network.data_subnet_ids
  kms_key_arn        = module.kms.key_arn
  auth_token         = module.secrets.redis_auth_token
  node_type          = var.redis_node_type
  num_cache_clusters = var.redis_num_cache_clusters
  port               = local.ports.redis
  log_group_prefix   = local.log_group_prefix
  log_retention_days = var.log_retention_days

  client_security_group_ids = {
    serving  = module.serving.security_group_id
    flow-run = module.flow_run.security_group_id
  }
}

module "ecs_cluster" {
  source = "./modules/ecs_cluster"

  name               = local.name
  vpc_id             = module.network.vpc_id
  namespace          = local.namespace
  kms_key_arn        = module.kms.key_arn
  log_group_prefix   = local.log_group_prefix
  log_retention_days = var.log_retention_days
}

module "iam" {
  source = "./modules/iam"

  name                 = local.name
  bucket_arn           = module.storage.artifacts_bucket_arn
  kms_key_arn          = module.kms.key_arn
  secret_arns          = module.secrets.secret_arns
  db_master_secret_arn = module.database.master_user_secret_arn
  ecr_repository_arns  = var.ecr_repository_arns
  cluster_arn          = module.ecs_cluster.cluster_arn
  cluster_name         = module.ecs_cluster.cluster_name
  flow_run_task_family = "${local.name}-flow-run"
  log_group_prefix     = local.log_group_prefix
}

# ----------------------------------------------------------------- load balancers

module "serving_alb" {
  source = "./modules/load_balancer"

  name                = "${local.name}-serving"
  internal            = false
  vpc_id              = module.network.vpc_id
  vpc_cidr_block      = module.network.vpc_cidr_block
  subnet_ids          = module.network.public_subnet_ids
  ingress_cidr_blocks = var.serving_allowed_cidrs
  target_ports        = [local.ports.serving]
  certificate_arn     = var.serving_certificate_arn
  access_logs_bucket  = module.storage.logs_bucket_name
  deletion_protection = var.alb_deletion_protection
  enable_waf          = true
  waf_rate_limit      = var.serving_waf_rate_limit
  kms_key_arn         = module.kms.key_arn
  log_retention_days  = var.log_retention_days
}

module "ops_alb" {
  source = "./modules/load_balancer"

  name                = "${local.name}-ops"
  internal            = true
  vpc_id              = module.network.vpc_id
  vpc_cidr_block      = module.network.vpc_cidr_block
  subnet_ids          = module.network.private_subnet_ids
  ingress_cidr_blocks = var.ops_allowed_cidrs
  target_ports        = [local.ports.prefect, local.ports.mlflow]
  certificate_arn     = var.ops_certificate_arn
  access_logs_bucket  = module.storage.logs_bucket_name
  deletion_protection = var.alb_deletion_protection
  enable_waf          = false
  kms_key_arn         = module.kms.key_arn
  log_retention_days  = var.log_retention_days
}

# ----------------------------------------------------------------------- workloads

module "prefect_server" {
  source = "./modules/service"

  name               = "prefect-server"
  name_prefix        = local.name
  cluster_arn        = module.ecs_cluster.cluster_arn
  vpc_id             = module.network.vpc_id
  vpc_cidr_block     = module.network.vpc_cidr_block
  subnet_ids         = module.network.private_subnet_ids
  image              = var.app_image
  command            = ["prefect", "server", "start"]
  cpu                = var.prefect_server_cpu
  memory             = var.prefect_server_memory
  container_port     = local.ports.prefect
  execution_role_arn = module.iam.execution_role_arns["prefect-server"]
  log_group_prefix   = local.log_group_prefix
  log_retention_days = var.log_retention_days
  kms_key_arn        = module.kms.key_arn
  egress_vpc_ports   = [local.ports.postgres]
  service_discovery  = { namespace_id = module.ecs_cluster.namespace_id }

  environment = {
    HOME                             = "/tmp"
    PREFECT_HOME                     = "/tmp/prefect"
    PREFECT_SERVER_API_HOST          = "0.0.0.0"
    PREFECT_SERVER_API_PORT          = tostring(local.ports.prefect)
    PREFECT_SERVER_UI_API_URL        = "https://${var.prefect_hostname}/api"
    PREFECT_SERVER_ANALYTICS_ENABLED = "false"
  }

  secrets = {
    PREFECT_SERVER_DATABASE_CONNECTION_URL = local.secret["prefect-database-url"]
  }

  ingress_security_group_ids = {
    prefect-worker = module.prefect_worker.security_group_id
    flow-run       = module.flow_run.security_group_id
  }

  load_balancer = {
    listener_arn      = module.ops_alb.https_listener_arn
    arn_suffix        = module.ops_alb.arn_suffix
    security_group_id = module.ops_alb.security_group_id
    priority          = 100
    host_headers      = [var.prefect_hostname]
    health_check_path = "/api/health"
  }
}

module "mlflow" {
  source = "./modules/service"

  name               = "mlflow"
  name_prefix        = local.name
  cluster_arn        = module.ecs_cluster.cluster_arn
  vpc_id             = module.network.vpc_id
  vpc_cidr_block     = module.network.vpc_cidr_block
  subnet_ids         = module.network.private_subnet_ids
  image              = var.mlflow_image
  command            = ["mlflow", "server"]
  cpu                = var.mlflow_cpu
  memory             = var.mlflow_memory
  container_port     = local.ports.mlflow
  execution_role_arn = module.iam.execution_role_arns["mlflow"]
  task_role_arn      = module.iam.task_role_arns["mlflow"]
  log_group_prefix   = local.log_group_prefix
  log_retention_days = var.log_retention_days
  kms_key_arn        = module.kms.key_arn
  egress_vpc_ports   = [local.ports.postgres]
  service_discovery  = { namespace_id = module.ecs_cluster.namespace_id }

  # mlflow server reads its options from MLFLOW_* variables; artifacts are proxied,
  # so clients need no S3 credentials of their own.
  environment = {
    HOME                         = "/tmp"
    AWS_DEFAULT_REGION           = local.region
    MLFLOW_HOST                  = "0.0.0.0"
    MLFLOW_PORT                  = tostring(local.ports.mlflow)
    MLFLOW_SERVE_ARTIFACTS       = "true"
    MLFLOW_ARTIFACTS_DESTINATION = "s3://${module.storage.artifacts_bucket_name}/mlartifacts"
    MLFLOW_SERVER_ALLOWED_HOSTS  = "mlflow.${local.namespace},mlflow.${local.namespace}:${local.ports.mlflow},${var.mlflow_hostname},10.*,172.*,192.168.*"
  }

  secrets = {
    MLFLOW_BACKEND_STORE_URI = local.secret["mlflow-backend-store-uri"]
  }

  ingress_security_group_ids = {
    serving  = module.serving.security_group_id
    flow-run = module.flow_run.security_group_id
  }

  load_balancer = {
    listener_arn      = module.ops_alb.https_listener_arn
    arn_suffix        = module.ops_alb.arn_suffix
    security_group_id = module.ops_alb.security_group_id
    priority          = 200
    host_headers      = [var.mlflow_hostname]
    health_check_path = "/health"
  }
}

module "serving" {
  source = "./modules/service"

  name               = "serving"
  name_prefix        = local.name
  cluster_arn        = module.ecs_cluster.cluster_arn
  vpc_id             = module.network.vpc_id
  vpc_cidr_block     = module.network.vpc_cidr_block
  subnet_ids         = module.network.private_subnet_ids
  image              = var.app_image
  command            = ["python", "-m", "serving.cli", "serve", "--host", "0.0.0.0", "--port", tostring(local.ports.serving)]
  cpu                = var.serving_cpu
  memory             = var.serving_memory
  container_port     = local.ports.serving
  execution_role_arn = module.iam.execution_role_arns["serving"]
  task_role_arn      = module.iam.task_role_arns["serving"]
  log_group_prefix   = local.log_group_prefix
  log_retention_days = var.log_retention_days
  kms_key_arn        = module.kms.key_arn
  egress_vpc_ports   = [local.ports.postgres, local.ports.redis, local.ports.mlflow]
  min_count          = var.serving_min_count
  max_count          = var.serving_max_count
  environment        = merge(local.python_scratch_env, local.serving_settings, { MLOPS_SERVING__WORKERS = tostring(var.serving_workers) })
  secrets            = local.serving_secrets

  load_balancer = {
    listener_arn      = module.serving_alb.https_listener_arn
    arn_suffix        = module.serving_alb.arn_suffix
    security_group_id = module.serving_alb.security_group_id
    priority          = 100
    host_headers      = var.serving_hostname == null ? [] : [var.serving_hostname]
    health_check_path = "/healthz"
  }

  scaling = {
    cpu_target_percent  = var.serving_cpu_target_percent
    requests_per_target = var.serving_requests_per_target
  }
}

module "prefect_worker" {
  source = "./modules/service"

  name               = "prefect-worker"
  name_prefix        = local.name
  cluster_arn        = module.ecs_cluster.cluster_arn
  vpc_id             = module.network.vpc_id
  vpc_cidr_block     = module.network.vpc_cidr_block
  subnet_ids         = module.network.private_subnet_ids
  image              = var.prefect_worker_image
  command            = ["prefect", "worker", "start", "--pool", var.work_pool_name, "--type", "ecs"]
  cpu                = 512
  memory             = 1024
  execution_role_arn = module.iam.execution_role_arns["prefect-worker"]
  task_role_arn      = module.iam.task_role_arns["prefect-worker"]
  log_group_prefix   = local.log_group_prefix
  log_retention_days = var.log_retention_days
  kms_key_arn        = module.kms.key_arn
  egress_vpc_ports   = [local.ports.prefect]
  min_count          = var.prefect_worker_count

  environment = {
    HOME               = "/tmp"
    PREFECT_HOME       = "/tmp/prefect"
    PREFECT_API_URL    = local.prefect_api_url
    AWS_DEFAULT_REGION = local.region
  }
}

# Flow runs: the worker starts one task of this definition per flow run (job variable
# task_definition_arn of the work pool); the worker sets the command.
module "flow_run" {
  source = "./modules/service"

  name                  = "flow-run"
  name_prefix           = local.name
  create_service        = false
  container_name        = "prefect"
  cluster_arn           = module.ecs_cluster.cluster_arn
  vpc_id                = module.network.vpc_id
  vpc_cidr_block        = module.network.vpc_cidr_block
  subnet_ids            = module.network.private_subnet_ids
  image                 = var.app_image
  cpu                   = var.flow_run_cpu
  memory                = var.flow_run_memory
  ephemeral_storage_gib = var.flow_run_ephemeral_storage_gib
  execution_role_arn    = module.iam.execution_role_arns["flow-run"]
  task_role_arn         = module.iam.task_role_arns["flow-run"]
  log_group_prefix      = local.log_group_prefix
  log_retention_days    = var.log_retention_days
  kms_key_arn           = module.kms.key_arn
  egress_vpc_ports      = [local.ports.postgres, local.ports.redis, local.ports.prefect, local.ports.mlflow]
  environment           = merge(local.python_scratch_env, local.plain_settings)
  secrets               = local.flow_run_secrets
}

# One-off: creates the application role and databases (modules/database/bootstrap.sh).
module "db_bootstrap" {
  source = "./modules/service"

  name               = "db-bootstrap"
  name_prefix        = local.name
  create_service     = false
  cluster_arn        = module.ecs_cluster.cluster_arn
  vpc_id             = module.network.vpc_id
  vpc_cidr_block     = module.network.vpc_cidr_block
  subnet_ids         = module.network.private_subnet_ids
  image              = var.db_bootstrap_image
  command            = ["sh", "-c", module.database.bootstrap_script]
  cpu                = 256
  memory             = 512
  execution_role_arn = module.iam.execution_role_arns["db-bootstrap"]
  log_group_prefix   = local.log_group_prefix
  log_retention_days = var.log_retention_days
  kms_key_arn        = module.kms.key_arn
  egress_vpc_ports   = [local.ports.postgres]

  environment = {
    PGHOST        = module.database.address
    PGPORT        = tostring(module.database.port)
    PGSSLMODE     = "require"
    APP_USER      = module.secrets.app_username
    APP_DATABASES = join(" ", values(module.secrets.database_names))
  }

  secrets = {
    PGUSER       = "${module.database.master_user_secret_arn}:username::"
    PGPASSWORD   = "${module.database.master_user_secret_arn}:password::"
    APP_PASSWORD = local.secret["db-app-password"]
  }
}
