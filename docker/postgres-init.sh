#!/bin/bash
# First start of the postgres service: one database per concern, each with its own role.
# airflow (metadata, Celery results) is created by the image from POSTGRES_USER/POSTGRES_DB.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE mlflow LOGIN PASSWORD '${MLFLOW_DB_PASSWORD}';
CREATE DATABASE mlflow OWNER mlflow;
CREATE ROLE mlops LOGIN PASSWORD '${MLOPS_DB_PASSWORD}';
CREATE DATABASE mlops OWNER mlops;
SQL
