# One root module for every environment: one call of modules/platform with the values of
# the environment chosen at plan time (-var-file=environments/<environment>.tfvars; its
# state key: environments/<environment>.s3.tfbackend at init). The provider and its
# default tags are in versions.tf, the state backend in backend.tf, the production
# settings in outputs.tf.

module "platform" {
  source = "./modules/platform"

  environment                        = var.environment
  log_retention_days                 = var.log_retention_days
  kms_deletion_window_days           = var.kms_deletion_window_days
  secret_recovery_window_days        = var.secret_recovery_window_days
  vpc_cidr                           = var.vpc_cidr
  availability_zones                 = var.availability_zones
  single_nat_gateway                 = var.single_nat_gateway
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  force_destroy_buckets              = var.force_destroy_buckets
  db_engine_version                  = var.db_engine_version
  db_instance_class                  = var.db_instance_class
  db_allocated_storage               = var.db_allocated_storage
  db_max_allocated_storage           = var.db_max_allocated_storage
  db_multi_az                        = var.db_multi_az
  db_backup_retention_days           = var.db_backup_retention_days
  db_deletion_protection             = var.db_deletion_protection
  redis_node_type                    = var.redis_node_type
  redis_num_cache_clusters           = var.redis_num_cache_clusters
  app_image                          = var.app_image
  mlflow_image                       = var.mlflow_image
  prefect_worker_image               = var.prefect_worker_image
  db_bootstrap_image                 = var.db_bootstrap_image
  ecr_repository_arns                = var.ecr_repository_arns
  serving_certificate_arn            = var.serving_certificate_arn
  serving_hostname                   = var.serving_hostname
  serving_allowed_cidrs              = var.serving_allowed_cidrs
  serving_waf_rate_limit             = var.serving_waf_rate_limit
  ops_certificate_arn                = var.ops_certificate_arn
  ops_allowed_cidrs                  = var.ops_allowed_cidrs
  prefect_hostname                   = var.prefect_hostname
  mlflow_hostname                    = var.mlflow_hostname
  alb_deletion_protection            = var.alb_deletion_protection
  work_pool_name                     = var.work_pool_name
  prefect_worker_count               = var.prefect_worker_count
  prefect_server_cpu                 = var.prefect_server_cpu
  prefect_server_memory              = var.prefect_server_memory
  mlflow_cpu                         = var.mlflow_cpu
  mlflow_memory                      = var.mlflow_memory
  serving_cpu                        = var.serving_cpu
  serving_memory                     = var.serving_memory
  serving_workers                    = var.serving_workers
  serving_min_count                  = var.serving_min_count
  serving_max_count                  = var.serving_max_count
  serving_cpu_target_percent         = var.serving_cpu_target_percent
  serving_requests_per_target        = var.serving_requests_per_target
  flow_run_cpu                       = var.flow_run_cpu
  flow_run_memory                    = var.flow_run_memory
  flow_run_ephemeral_storage_gib     = var.flow_run_ephemeral_storage_gib
}
