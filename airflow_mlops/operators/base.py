"""What every MLOps operator shares: the model config, the MLflow hook, idempotent MLflow runs, links.

Idempotency: a task's MLflow run is found by the tag ``mlops.idempotency_key`` (a digest of dag_id, run_id,
task_id), so a retry after a failure half-way reuses the same run instead of creating a second one.
Heavy libraries are imported inside methods only: DAG files import this module at parse time.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_mlops.core.config import ModelConfig, load_config, parse_config
from airflow_mlops.links.mlflow import LINKS_XCOM_KEY

TAG_PREFIX = "mlops."
IDEMPOTENCY_TAG = "mlops.idempotency_key"
PIPELINE_TAG = "mlops.pipeline_key"
RESULT_TAG = "mlops.result"


def idempotency_key(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]


class ModelConfigMixin:
    """``model_config`` from ``self.config``: a path to the model YAML, the parsed mapping, or a ModelConfig."""

    config: Any
    task_id: str

    @cached_property
    def model_config(self) -> ModelConfig:
        if isinstance(self.config, ModelConfig):
            return self.config
        if isinstance(self.config, dict):
            return parse_config(self.config, f"config of task {self.task_id}")
        return load_config(self.config)


class MLOpsBaseOperator(ModelConfigMixin, BaseOperator):
    """Base of the MLOps operators.

    :param config: the model config: a path to its YAML file or the already parsed mapping (templated).
    :param mlflow_conn_id: MLflow connection; defaults to the config's ``mlflow.conn_id``.
    """

    template_fields: tuple[str, ...] = ("config", "mlflow_conn_id")
    template_fields_renderers = {"config": "json"}
    ui_color = "#e8f4f8"

    def __init__(self, *, config: str | dict, mlflow_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def mlflow_hook(self):
        from airflow_mlops.hooks.mlflow import MLflowHook

        return MLflowHook(mlflow_conn_id=self.mlflow_conn_id or self.model_config.mlflow.conn_id)

    # --- idempotent MLflow runs -------------------------------------------------------------------------

    @staticmethod
    def run_identity(context) -> tuple[str, str]:
        ti = context["ti"]
        return ti.dag_id, ti.run_id

    def task_key(self, context) -> str:
        dag_id, run_id = self.run_identity(context)
        return idempotency_key(dag_id, run_id, self.task_id)

    def lineage_tags(self, context) -> dict[str, str]:
        from airflow_mlops import __version__

        dag_id, run_id = self.run_identity(context)
        config = self.model_config
        # The DAG bundle's version (a git commit for git bundles) pins the DAG code that ran.
        bundle_version = getattr(context.get("dag_run"), "bundle_version", None) or "unversioned"
        return {"mlops.bundle_version": str(bundle_version),
                "mlops.dag_id": dag_id, "mlops.run_id": run_id, "mlops.task_id": self.task_id,
                "mlops.model": config.model, "mlops.config_hash": config.config_hash(),
                "mlops.code_version": f"airflow-provider-mlops=={__version__}", **self.trigger_tags(context)}

    def trigger_tags(self, context) -> dict[str, str]:
        """What started this DAG run; for a drift-triggered retrain, the drift event(s) behind it."""
        from airflow_mlops.assets import triggering_drift_events

        events = triggering_drift_events(context, self.model_config.model)
        if events:
            return {"mlops.trigger": "drift_event",
                    "mlops.drift_event": json.dumps(events[-1], sort_keys=True, default=str)[:4900],
                    "mlops.drift_events": str(len(events))}
        run_type = getattr(context.get("dag_run"), "run_type", None)
        return {"mlops.trigger": str(getattr(run_type, "value", run_type) or "unknown")}

    def experiment_id(self, client) -> str:
        from mlflow.exceptions import MlflowException

        name = self.model_config.experiment_name
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        root = self.mlflow_hook.settings.artifact_root
        location = f"{root.rstrip('/')}/{name.replace('/', '_')}" if root else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created concurrently by another task
            return client.get_experiment_by_name(name).experiment_id

    def _find_run(self, client, experiment_id: str, tag: str, value: str):
        runs = client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = '{value}'", max_results=2)
        return runs[0] if runs else None

    def pipeline_run_id(self, client, experiment_id: str, context) -> str:
        """The parent run grouping all task runs of one DAG run (found or created by tag)."""
        dag_id, run_id = self.run_identity(context)
        key = idempotency_key(dag_id, run_id)
        existing = self._find_run(client, experiment_id, PIPELINE_TAG, key)
        if existing is not None:
            return existing.info.run_id
        tags = {PIPELINE_TAG: key, "mlops.dag_id": dag_id, "mlops.run_id": run_id,
                "mlops.model": self.model_config.model, **self.trigger_tags(context)}
        return client.create_run(experiment_id, tags=tags, run_name=f"{dag_id} {run_id}").info.run_id

    def task_run(self, client, context, *, run_name: str | None = None):
        """This task's MLflow run: the one a previous try created, or a new one. Returns (run, reused)."""
        experiment_id = self.experiment_id(client)
        key = self.task_key(context)
        existing = self._find_run(client, experiment_id, IDEMPOTENCY_TAG, key)
        if existing is not None:
            if existing.info.status != "RUNNING":
                client.update_run(existing.info.run_id, status="RUNNING")
            self.log.info("Reusing MLflow run %s from an earlier try", existing.info.run_id)
            return existing, True
        parent = self.pipeline_run_id(client, experiment_id, context)
        tags = {IDEMPOTENCY_TAG: key, "mlflow.parentRunId": parent, **self.lineage_tags(context)}
        run = client.create_run(experiment_id, tags=tags, run_name=run_name or self.task_id)
        self.log.info("Created MLflow run %s", run.info.run_id)
        return run, False

    @contextmanager
    def tracked_run(self, client, context, *, run_name: str | None = None):
        """``task_run`` that marks the MLflow run FAILED if the block raises (a retry resumes it)."""
        run, reused = self.task_run(client, context, run_name=run_name)
        try:
            yield run, reused
        except Exception:
            client.set_terminated(run.info.run_id, status="FAILED")
            raise

    @staticmethod
    def finish_run(client, run_id: str, result: dict | None = None, status: str = "FINISHED") -> None:
        if result is not None:
            client.set_tag(run_id, RESULT_TAG, json.dumps(result, sort_keys=True, default=str)[:5000])
        client.set_terminated(run_id, status=status)

    # --- links ------------------------------------------------------------------------------------------

    def persist_links(self, context, **links: str) -> None:
        """Store link targets once the remote objects exist (read by the extra links at task end)."""
        ti = context["ti"]
        current = dict(getattr(self, "_links", {}))
        current.update({k: v for k, v in links.items() if v})
        self._links = current
        ti.xcom_push(key=LINKS_XCOM_KEY, value=current)

    @property
    def ui_url(self) -> str | None:
        return self.mlflow_hook.settings.ui_url
