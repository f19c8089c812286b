"""Extra links shown on task instances: MLflow run, model version and stored reports."""
