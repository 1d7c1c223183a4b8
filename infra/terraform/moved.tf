# State addresses from before modules/platform was folded into this root module (its
# module calls were module.platform.module.<name>, now module.<name>): with these, a
# plan against an existing state moves every object instead of replacing it. Once
# every environment's state has been applied with them, they can go.

moved {
  from = module.platform.module.kms
  to   = module.kms
}

moved {
  from = module.platform.module.network
  to   = module.network
}

moved {
  from = module.platform.module.storage
  to   = module.storage
}

moved {
  from = module.platform.module.database
  to   = module.database
}

moved {
  from = module.platform.module.secrets
  to   = module.secrets
}

moved {
  from = module.platform.module.cache
  to   = module.cache
}

moved {
  from = module.platform.module.ecs_cluster
  to   = module.ecs_cluster
}

moved {
  from = module.platform.module.iam
  to   = module.iam
}

moved {
  from = module.platform.module.serving_alb
  to   = module.serving_alb
}

moved {
  from = module.platform.module.ops_alb
  to   = module.ops_alb
}

moved {
  from = module.platform.module.prefect_server
  to   = module.prefect_server
}

moved {
  from = module.platform.module.mlflow
  to   = module.mlflow
}

moved {
  from = module.platform.module.serving
  to   = module.serving
}

moved {
  from = module.platform.module.prefect_worker
  to   = module.prefect_worker
}

moved {
  from = module.platform.module.flow_run
  to   = module.flow_run
}

moved {
  from = module.platform.module.db_bootstrap
  to   = module.db_bootstrap
}
