# Remote state in S3 with S3-native locking (a lock file next to the state; Terraform
# >= 1.10, no DynamoDB table). The bucket is created once per account, outside this
# configuration (versioned, SSE-KMS, public access blocked), and holds the state of
# both environments.
#
# A partial configuration: the state key of each environment is in
# environments/<environment>.s3.tfbackend; the account's bucket, region and KMS key are
# filled in at init time. Re-run init (with -reconfigure) whenever you switch
# environment, e.g.
#
#   terraform -chdir=infra/terraform init -reconfigure \
#     -backend-config=environments/staging.s3.tfbackend \
#     -backend-config="bucket=<state-bucket>" \
#     -backend-config="region=<region>" \
#     -backend-config="kms_key_id=<state-kms-key-arn>"
#
# Older Terraform: replace use_lockfile with dynamodb_table = "<lock-table>".

terraform {
  backend "s3" {
    encrypt      = true
    use_lockfile = true
    # key        = set by environments/<environment>.s3.tfbackend
    # bucket     = "<state-bucket>"
    # region     = "<region>"
    # kms_key_id = "<state-kms-key-arn>"
  }
}
