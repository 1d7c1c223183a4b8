variable "name_prefix" {
  description = "Prefix of the secret names (mlops/<environment>)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the secrets."
  type        = string
}

variable "recovery_window_in_days" {
  description = "Days a deleted secret can still be restored (0 deletes at once; 7-30 otherwise)."
  type        = number
  default     = 30
}

variable "app_username" {
  description = "The application's PostgreSQL role (created by the db-bootstrap task)."
  type        = string
  default     = "mlops_app"
}

variable "databases" {
  description = "Names of the PostgreSQL databases, by purpose."
  type = object({
    mlops   = string
    mlflow  = string
    optuna  = string
    feast   = string
    prefect = string
  })
  default = {
    mlops   = "mlops"
    mlflow  = "mlflow"
    optuna  = "optuna"
    feast   = "feast"
    prefect = "prefect"
  }
}

variable "db_address" {
  description = "Host name of the PostgreSQL instance."
  type        = string
}

variable "db_port" {
  description = "Port of the PostgreSQL instance."
  type        = number
}

variable "redis_address" {
  description = "Host name of the Redis primary endpoint."
  type        = string
}

variable "redis_port" {
  description = "Port of Redis."
  type        = number
}
