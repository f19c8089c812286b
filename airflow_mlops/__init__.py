"""airflow-mlops: continuous training, evaluation gates, registration and drift-driven retraining for Airflow 3.

This module must stay import-light: Airflow discovers providers (and calls :func:`get_provider_info`) before
its configuration exists, in every process of the environment.
"""

from __future__ import annotations

__version__ = "0.1.0"

PACKAGE_NAME = "airflow-provider-mlops"


def get_provider_info() -> dict:
    """Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "MLOps (continuous training, gates, drift)",
        "description": "Operators, sensors and ready-made DAGs for continuous training with MLflow, "
                       "Great Expectations validation, champion/challenger gates and drift-driven retraining.",
        "versions": [__version__],
        "hooks": [
            {"integration-name": "MLflow", "python-modules": ["airflow_mlops.hooks.mlflow"]},
            {"integration-name": "SQL data", "python-modules": ["airflow_mlops.hooks.data"]},
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_mlops.hooks.mlflow.MLflowHook",
                "hook-name": "MLflow",
                "connection-type": "mlflow",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "extra"],
                    "relabeling": {"host": "Tracking server (http[s]://host)", "login": "Username (basic auth)",
                                   "password": "Token or password"},
                    "placeholders": {"host": "http://mlflow:5000", "port": "5000"},
                },
                "conn-fields": {
                    "tracking_uri": {
                        "label": "Tracking URI",
                        "description": "Full tracking URI; overrides host/port (e.g. sqlite:///mlflow.db).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "registry_uri": {
                        "label": "Registry URI",
                        "description": "Model registry URI when it differs from the tracking URI.",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            }
        ],
        "extra-links": [
            "airflow_mlops.links.mlflow.MLflowRunLink",
            "airflow_mlops.links.mlflow.MLflowModelVersionLink",
            "airflow_mlops.links.mlflow.MLflowReportLink",
        ],
        # The UI plugin is registered once, by the ``airflow.plugins`` entry point: listing it here too makes
        # Airflow report "already registered" when providers are discovered eagerly.
    }
