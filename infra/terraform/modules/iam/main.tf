# Least-privilege roles of the ECS tasks, in one place so they can be reviewed together.
#
# Every workload has an execution role (used by ECS to pull its image, write its log
# group and read exactly the secrets injected into it) and, when its code calls AWS,
# a task role with only what that code needs:
#
#   workload        task role may
#   prefect-server  (no task role: it talks to PostgreSQL only)
#   prefect-worker  run, watch and stop flow-run tasks of one task definition family in
#                   this cluster; pass the two flow-run roles to ECS
#   flow-run        read and write the artifacts bucket (raw batches, Feast files, models)
#   mlflow          read and write mlartifacts/ in the bucket (proxied artifact store)
#   serving         read mlartifacts/ in the bucket (model files)
#   db-bootstrap    (no task role: it talks to PostgreSQL only)

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # Settings of the production profile that come from Secrets Manager.
  app_secrets = ["database-url", "optuna-storage", "feast-registry-url", "redis-connection", "admin-token"]

  # Secret names (keys of var.secret_arns) each workload's execution role may read.
  execution_secrets = {
    "prefect-server" = ["prefect-database-url"]
    "prefect-worker" = []
    "mlflow"         = ["mlflow-backend-store-uri"]
    "serving"        = concat(local.app_secrets, ["serving-api-key"])
    "flow-run"       = local.app_secrets
    "db-bootstrap"   = ["db-app-password"]
  }

  # Secrets not managed by the secrets module, by workload.
  extra_secret_arns = {
    "db-bootstrap" = [var.db_master_secret_arn]
  }

  workloads_with_task_role = toset(["prefect-worker", "flow-run", "mlflow", "serving"])

  bucket_models_prefix = "mlartifacts/"
  cluster_task_arn     = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${var.cluster_name}/*"
  flow_run_family_arn  = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${var.flow_run_task_family}:*"
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# ----------------------------------------------------------------- execution roles

resource "aws_iam_role" "execution" {
  for_each = local.execution_secrets

  name               = "${var.name}-${each.key}-exec"
  description        = "ECS execution role of ${each.key}: image pull, its log group, its secrets"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  for_each = local.execution_secrets

  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = var.ecr_repository_arns
  }

  statement {
    sid       = "WriteOwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${var.log_group_prefix}/${each.key}:*"]
  }

  dynamic "statement" {
    for_each = length(each.value) + length(lookup(local.extra_secret_arns, each.key, [])) > 0 ? [1] : []

    content {
      sid     = "ReadInjectedSecrets"
      actions = ["secretsmanager:GetSecretValue"]
      resources = concat(
        [for secret in each.value : var.secret_arns[secret]],
        lookup(local.extra_secret_arns, each.key, []),
      )
    }
  }

  dynamic "statement" {
    for_each = length(each.value) + length(lookup(local.extra_secret_arns, each.key, [])) > 0 ? [1] : []

    content {
      sid       = "DecryptInjectedSecrets"
      actions   = ["kms:Decrypt"]
      resources = [var.kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  for_each = local.execution_secrets

  name   = "ecs-execution"
  role   = aws_iam_role.execution[each.key].id
  policy = data.aws_iam_policy_document.execution[each.key].json
}

# ---------------------------------------------------------------------- task roles

resource "aws_iam_role" "task" {
  for_each = local.workloads_with_task_role

  name               = "${var.name}-${each.key}-task"
  description        = "ECS task role of ${each.key}"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "flow_run" {
  statement {
    sid       = "ListBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.bucket_arn]
  }

  statement {
    sid = "ReadWriteObjects"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = ["${var.bucket_arn}/*"]
  }

  statement {
    sid       = "UseBucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "mlflow" {
  statement {
    sid       = "ListModelsPrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.bucket_models_prefix, "${local.bucket_models_prefix}*"]
    }
  }

  statement {
    sid = "ReadWriteModelsPrefix"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = ["${var.bucket_arn}/${local.bucket_models_prefix}*"]
  }

  statement {
    sid       = "UseBucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "serving" {
  statement {
    sid       = "ListModelsPrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.bucket_models_prefix, "${local.bucket_models_prefix}*"]
    }
  }

  statement {
    sid       = "ReadModels"
    actions   = ["s3:GetObject"]
    resources = ["${var.bucket_arn}/${local.bucket_models_prefix}*"]
  }

  statement {
    sid       = "DecryptWithBucketKey"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

# The ECS worker of the `mlops-ecs` work pool starts each flow run as a task of the
# terraform-managed flow-run task definition (job variable task_definition_arn), so it
# never registers task definitions of its own.
data "aws_iam_policy_document" "prefect_worker" {
  statement {
    sid       = "RunFlowRunTasks"
    actions   = ["ecs:RunTask"]
    resources = [local.flow_run_family_arn]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  statement {
    sid       = "TagFlowRunTasks"
    actions   = ["ecs:TagResource"]
    resources = [local.cluster_task_arn]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    sid       = "WatchAndStopFlowRunTasks"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.cluster_task_arn]
  }

  statement {
    sid       = "ReadTaskDefinitionsAndNetwork"
    actions   = ["ecs:DescribeTaskDefinition", "ec2:DescribeSubnets", "ec2:DescribeVpcs"]
    resources = ["*"]
  }

  statement {
    sid       = "PassFlowRunRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.task["flow-run"].arn, aws_iam_role.execution["flow-run"].arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

locals {
  task_policies = {
    "prefect-worker" = data.aws_iam_policy_document.prefect_worker.json
    "flow-run"       = data.aws_iam_policy_document.flow_run.json
    "mlflow"         = data.aws_iam_policy_document.mlflow.json
    "serving"        = data.aws_iam_policy_document.serving.json
  }
}

resource "aws_iam_role_policy" "task" {
  for_each = local.workloads_with_task_role

  name   = "${each.key}-task"
  role   = aws_iam_role.task[each.key].id
  policy = local.task_policies[each.key]
}
