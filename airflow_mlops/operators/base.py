"""What every MLOps operator shares: the model config, the MLflow hook, idempotent MLflow runs, links, and the
task boundary that decides whether a failure is worth a retry.

Idempotency: a task's MLflow run is found by the tag ``mlops.idempotency_key`` (a digest of dag_id, run_id,
task_id and map_index), so a retry after a failure half-way reuses the same run instead of creating a second one.
Retries: an ``MLOpsError`` that is not ``retryable`` (config, data, validation, estimator, integrity, promotion
conflict) fails the task at once (``AirflowFailException``); MLflow or a database that cannot be reached is
retried. Heavy libraries are imported inside methods only: DAG files import this module at parse time.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_mlops.core import names
from airflow_mlops.links.mlflow import LINKS_XCOM_KEY
from airflow_mlops.task_boundary import task_boundary, translate_error
from airflow_mlops.task_context import (ModelConfigMixin, lineage_tags, pipeline_key, run_identity, task_key,
                                        trigger_tags)

# re-exported for code written against earlier releases
IDEMPOTENCY_TAG, PIPELINE_TAG, RESULT_TAG = names.IDEMPOTENCY_KEY, names.PIPELINE_KEY, names.RESULT
__all__ = ["MLOpsBaseOperator", "task_boundary", "translate_error"]

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

    @property
    def resolved_mlflow_conn_id(self) -> str:
        return self.mlflow_conn_id or self.model_config.mlflow.conn_id

    @cached_property
    def mlflow_hook(self):
        from airflow_mlops.hooks.mlflow import MLflowHook

        return MLflowHook(mlflow_conn_id=self.resolved_mlflow_conn_id)

    def preflight(self) -> None:
        """Before any data is read: MLflow must be usable (bounded wait, clear error naming the connection)."""
        self.mlflow_hook.ensure_reachable()

    # --- deployment state -----------------------------------------------------------------------------------

    def deployments(self, state_conn_id: str | None = None):
        """The model's deployment state (state connection) together with its MLflow aliases."""
        from airflow_mlops.deployment import Deployments

        return Deployments.of(self.model_config, self.mlflow_hook, state_conn_id)

    # --- idempotent MLflow runs -------------------------------------------------------------------------

    @staticmethod
    def run_identity(context) -> tuple[str, str]:
        return run_identity(context)

    def task_key(self, context) -> str:
        return task_key(context, self.task_id)

    def lineage_tags(self, context) -> dict[str, str]:
        return lineage_tags(context, self.model_config, self.task_id)

    def trigger_tags(self, context) -> dict[str, str]:
        return trigger_tags(context, self.model_config.model)

    def experiment_id(self) -> str:
        return self.mlflow_hook.experiment_id(self.model_config.experiment_name)

    def pipeline_run_id(self, experiment_id: str, context) -> str:
        """The parent run grouping all task runs of one DAG run (found or created by tag)."""
        dag_id, run_id = self.run_identity(context)
        tags = {names.DAG_ID: dag_id, names.RUN_ID: run_id, names.MODEL: self.model_config.model,
                **self.trigger_tags(context)}
        run, _ = self.mlflow_hook.find_or_create_run(experiment_id, key_tag=names.PIPELINE_KEY,
                                                     key=pipeline_key(context), tags=tags,
                                                     run_name=f"{dag_id} {run_id}")
        return run.info.run_id

    def task_run(self, context, *, run_name: str | None = None):
        """This task's MLflow run: the one a previous try created, or a new one. Returns (run, reused)."""
        hook = self.mlflow_hook
        experiment_id = self.experiment_id()
        key = self.task_key(context)
        existing = hook.runs_tagged(experiment_id, names.IDEMPOTENCY_KEY, key)
        if existing:
            run = hook._dedupe_runs(existing)
            if run.info.status != "RUNNING":
                with hook.session() as client:
                    client.update_run(run.info.run_id, status="RUNNING")
            self.log.info("Reusing MLflow run %s from an earlier try", run.info.run_id)
            return run, True
        parent = self.pipeline_run_id(experiment_id, context)
        tags = {"mlflow.parentRunId": parent, **self.lineage_tags(context)}
        run, reused = hook.find_or_create_run(experiment_id, key_tag=names.IDEMPOTENCY_KEY, key=key, tags=tags,
                                              run_name=run_name or self.task_id)
        self.log.info("%s MLflow run %s", "Reusing" if reused else "Created", run.info.run_id)
        return run, reused

    @contextmanager
    def tracked_run(self, context, *, run_name: str | None = None):
        """``task_run`` that marks the MLflow run FAILED if the block raises (a retry resumes it)."""
        run, reused = self.task_run(context, run_name=run_name)
        try:
            yield run, reused
        except Exception:
            self.mlflow_hook.finish_run(run.info.run_id, status="FAILED")
            raise

    def finish_run(self, run_id: str, result: dict | None = None, status: str = "FINISHED") -> None:
        self.mlflow_hook.finish_run(run_id, result, status)

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
