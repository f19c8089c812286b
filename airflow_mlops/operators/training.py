"""TrainModelOperator: fit the configured estimator on the training window and log everything to MLflow."""

from __future__ import annotations

from typing import Any

from airflow_mlops.links.mlflow import MLflowRunLink, run_url
from airflow_mlops.operators.base import MLOpsBaseOperator

REFERENCE_ARTIFACT = "reference/sample.parquet"
MODEL_URI_TAG = "mlops.model_uri"


def split_window(frame, data_pointer: dict, timestamp_column: str):
    """(train, holdout) split of a snapshot at the holdout start recorded by the extract task."""
    import pandas as pd

    from airflow_mlops.core.windows import TrainingWindows

    holdout_start = pd.Timestamp(TrainingWindows.from_dict(data_pointer["windows"]).holdout_start)
    if holdout_start.tzinfo is not None:
        holdout_start = holdout_start.tz_convert("UTC").tz_localize(None)
    stamps = frame[timestamp_column]
    return frame[stamps < holdout_start], frame[stamps >= holdout_start]


def check_holdout(holdout, config) -> None:
    from airflow_mlops.core.data_checks import DataProblem, target_problems

    if holdout.empty:
        raise DataProblem(["the holdout window is empty: no rows in the most recent "
                           f"{config.data.holdout_window} (data.holdout_window)"])
    problems = target_problems(holdout, config.data.target)
    if problems:
        raise DataProblem([f"holdout: {p}" for p in problems])


class TrainModelOperator(MLOpsBaseOperator):
    """Train on the window before the holdout, evaluate on the holdout, log the model to MLflow.

    Logged: estimator parameters and seed, holdout metrics, the model (scikit-learn flavour, with signature
    and explicit pip requirements), the data fingerprint, config hash, code and package versions, and a
    bounded reservoir sample of the training data (the future drift reference).
    A retry of the same task reuses its MLflow run, and reuses the logged model when the data is unchanged.

    :param data: the snapshot pointer from the extract or validate task.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "data")
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#fdf2d0"

    def __init__(self, *, data: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data

    def execute(self, context) -> dict[str, Any]:
        import json

        import mlflow
        import mlflow.sklearn

        from airflow_mlops.core.data_checks import check_training_frame
        from airflow_mlops.core.sampling import reservoir_sample
        from airflow_mlops.core.stats import compute_metrics
        from airflow_mlops.core.training import (fit_model, package_versions, pip_requirements,
                                                 prepare_features, score, skops_trusted_types)
        from airflow_mlops.hooks.mlflow import load_frame, log_frame, quiet_model_io

        config = self.model_config
        data = config.data
        with self.mlflow_hook.session() as client, self.tracked_run(client, context,
                                                                     run_name=f"train {config.model}") as (run, _):
            run_id = run.info.run_id
            self.persist_links(context, run=run_url(self.ui_url, run.info.experiment_id, run_id))
            cached = self._cached_result(client, run_id)
            if cached is not None:
                self.log.info("Model already logged in run %s for this data; not training again", run_id)
                self.finish_run(client, run_id, cached)
                return cached

            frame = load_frame(client, self.data["run_id"], self.data["artifact"])
            train, holdout = split_window(frame, self.data, data.timestamp_column)
            check_training_frame(train, data, what="training window")
            check_holdout(holdout, config)

            model = fit_model(train, config)
            holdout_scores = score(model, holdout, config)
            metrics = compute_metrics(holdout[data.target].to_numpy(), holdout_scores)

            params = {"estimator": config.training.estimator, "seed": config.training.seed,
                      "train_rows": len(train), "holdout_rows": len(holdout),
                      **{f"window.{k}": v for k, v in self.data["windows"].items()},
                      **{f"param.{k}": v for k, v in config.training.params.items()}}
            for key, value in params.items():
                client.log_param(run_id, key, value)
            for name, value in metrics.items():
                client.log_metric(run_id, f"holdout_{name}", value)

            sample = reservoir_sample(train[[data.timestamp_column, *data.features, data.target]],
                                      config.training.reference_sample_size, seed=config.training.seed)
            log_frame(client, run_id, sample, REFERENCE_ARTIFACT)

            from mlflow.models import infer_signature

            example = prepare_features(train.head(100), config)
            signature = infer_signature(example, model.predict_proba(example)[:, 1])
            with mlflow.start_run(run_id=run_id), quiet_model_io():
                info = mlflow.sklearn.log_model(model, name="model", signature=signature,
                                                pip_requirements=pip_requirements(config.training.estimator),
                                                skops_trusted_types=skops_trusted_types(model))
            tags = {MODEL_URI_TAG: info.model_uri,
                    "mlops.data_fingerprint": self.data["fingerprint"],
                    "mlops.data_run_id": self.data["run_id"],
                    "mlops.validation_run_id": self.data.get("validation_run_id", ""),
                    "mlops.reference_artifact": REFERENCE_ARTIFACT,
                    "mlops.package_versions": json.dumps(package_versions(), sort_keys=True)}
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
            client.log_dict(run_id, config.model_dump(mode="json"), "config/model.json")
            result = {"run_id": run_id, "model_uri": info.model_uri, "metrics": metrics, "data": self.data}
            self.finish_run(client, run_id, result)
        return result

    def _cached_result(self, client, run_id: str) -> dict | None:
        """The result of an earlier try of this task, if it logged a model for the same data."""
        recorded = client.get_run(run_id).data
        tags = recorded.tags
        if MODEL_URI_TAG not in tags or tags.get("mlops.data_fingerprint") != self.data["fingerprint"]:
            return None
        metrics = {k.removeprefix("holdout_"): v for k, v in recorded.metrics.items()
                   if k.startswith("holdout_")}
        return {"run_id": run_id, "model_uri": tags[MODEL_URI_TAG], "metrics": metrics, "data": self.data}
