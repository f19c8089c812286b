"""Hooks: MLflow (connection type ``mlflow``) and SQL data access."""
