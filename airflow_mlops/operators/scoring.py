"""BatchScoringOperator: score a batch of rows with the champion, and during a canary with both models.

Rows are read and scored in chunks (memory bounded by ``scoring.chunk_size``, not by the batch). During a canary,
every score of both arms goes to the prediction log of the state connection (the canary's evidence); the published
score of each entity goes to the predictions table (``<model>_predictions`` in the scoring connection), which is
what consumers read.
During a canary the entity's traffic bucket (:func:`airflow_mlops.core.canary.bucket`, with the canary's salt)
decides whose score is published at the current weight; weight 0 (shadow) publishes the champion everywhere.
Retrying a scoring run replaces its rows (one transaction per table): never a duplicate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_mlops.core import names
from airflow_mlops.hooks.canary import data_time
from airflow_mlops.operators.base import MLOpsBaseOperator, task_boundary
from airflow_mlops.task_context import map_index, resolve_window_end, run_identity


class BatchScoringOperator(MLOpsBaseOperator):
    """Score the rows of ``[end - scoring.window, end)`` from ``scoring.table``/``query`` (default: the model's
    data source) with the deployment's models, verified before they are loaded.

    Bad input: a row without an entity id, or an entity id twice in one batch, fails the task without writing
    anything; rows with values that are not numbers are not scored and are counted in the result.

    :param window_end: end of the batch window (templated); defaults to the run's data interval end.
    :return: counts per arm, the versions, the weight and the scoring run id.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "window_end")
    ui_color = "#e3f2fd"

    def __init__(self, *, window_end: str | datetime | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_end = window_end

    def scoring_run(self, context) -> str:
        dag_id, run_id = run_identity(context)
        index = map_index(context)
        return f"{dag_id}/{run_id}/{self.task_id}" + (f"/{index}" if index >= 0 else "")

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.batch_scoring import score_batch
        from airflow_mlops.hooks.data import SqlDataHook
        from airflow_mlops.task_context import actor

        config = self.model_config
        deployments = self.deployments()
        deployment = deployments.current(actor=actor(context))
        if deployment.champion is None:
            raise AirflowSkipException(f"{config.model} has no champion yet: nothing to score with")
        deployments.reconcile()  # aliases that a crash (or a failed move) left behind follow the state again
        end = resolve_window_end(self.window_end, context, config.model)
        models = self._models(deployment)
        source = SqlDataHook(data_conn_id=config.scoring.conn_id or config.data.conn_id)
        run = self.scoring_run(context)
        counts = score_batch(config=config, state=self.deployments().state, source_db=source.database,
                             deployment=deployment, models=models, run=run, end=end)
        scored_at = data_time(end)
        result = {"scoring_run": run, "window_end": scored_at, "champion_version": deployment.champion,
                  "challenger_version": models.get(names.CHALLENGER, (None,))[0],
                  "weight": deployment.weight if deployment.canary_active else None,
                  "phase": deployment.phase, **counts}
        self.log.info("Scored %s", result)
        return result

    def _models(self, deployment) -> dict[str, tuple[str, Any]]:
        """{arm: (version, verified pipeline)}; the challenger only while a canary runs."""
        from airflow_mlops.core.errors import ModelIntegrityError, is_transient

        config = self.model_config
        wanted = {names.CHAMPION: deployment.champion}
        if deployment.canary_active and deployment.challenger:
            wanted[names.CHALLENGER] = deployment.challenger
        models = {}
        for arm, version in wanted.items():
            try:
                models[arm] = (version, self.mlflow_hook.load_version_model(
                    config.registered_model_name, version, allow_pickle=config.training.allow_pickle))
            except Exception as error:
                if is_transient(error):
                    raise
                raise ModelIntegrityError(
                    f"the {arm} of {config.model} (version {version}) cannot be loaded: {error}"
                    + ("; roll the canary back (airflow-mlops rollback)" if arm == names.CHALLENGER else "")
                ) from error
        return models
