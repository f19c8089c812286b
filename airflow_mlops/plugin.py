"""Airflow UI plugin of airflow-mlops (entry point ``airflow.plugins``).

The models/aliases/gate/drift page is delivered by a later issue; today the plugin only registers the name,
so deployments that list plugins see it, and the thin ``plugins/`` file can detect the entry point copy.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

PLUGIN_NAME = "airflow_mlops"


class MLOpsPlugin(AirflowPlugin):
    name = PLUGIN_NAME
