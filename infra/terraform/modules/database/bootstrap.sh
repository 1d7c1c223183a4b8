#!/bin/sh
# Creates the application role and its databases (the instance starts with none but
# `postgres`). Idempotent: it creates what is missing, makes the role the owner of every
# database (so it owns their public schema) and resets the role's password to the
# current secret, so it is also how the application password is rotated.
# Runs as the one-off ECS task `<name>-db-bootstrap` (image: postgres client) with
#   PGHOST PGPORT PGUSER PGPASSWORD PGSSLMODE   the RDS master login (RDS-managed secret)
#   APP_USER APP_PASSWORD                       the application role and its secret
#   APP_DATABASES                               space-separated database names
set -eu
export PGDATABASE=postgres

psql -v ON_ERROR_STOP=1 -v app_user="$APP_USER" -v app_password="$APP_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'app_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user')
\gexec
ALTER ROLE :"app_user" WITH LOGIN PASSWORD :'app_password';
GRANT :"app_user" TO CURRENT_USER;
SQL

for db in $APP_DATABASES; do
  psql -v ON_ERROR_STOP=1 -v db="$db" -v app_user="$APP_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'app_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')
\gexec
ALTER DATABASE :"db" OWNER TO :"app_user";
SQL
done
echo "bootstrap done: role $APP_USER owns $APP_DATABASES"
