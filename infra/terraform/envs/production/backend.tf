# Remote state in S3 with S3-native locking (a lock file next to the state; Terraform
# >= 1.10, no DynamoDB table). The bucket is created once per account, outside this
# configuration (versioned, SSE-KMS, public access blocked). Fill in the placeholders
# at init time, e.g.
#
#   terraform init \
#     -backend-config="bucket=<state-bucket>" \
#     -backend-config="region=<region>" \
#     -backend-config="kms_key_id=<state-kms-key-arn>"
#
# Older Terraform: replace use_lockfile with dynamodb_table = "<lock-table>".

terraform {
  backend "s3" {
    key          = "mlops-loop/production/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
    # bucket     = "<state-bucket>"
    # region     = "<region>"
    # kms_key_id = "<state-kms-key-arn>"
  }
}
