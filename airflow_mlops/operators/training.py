"""TrainModelOperator: fit the configured estimator on the training window and log everything to MLflow.
RefitModelOperator: after a PASS, fit once more on train + holdout, so the registered model has seen the most
recent data (the drifted window, for a drift-triggered retrain)."""

from __future__ import annotations

from typing import Any

from airflow_mlops.core import names
from airflow_mlops.links.mlflow import MLflowRunLink, run_url
from airflow_mlops.operators.base import MLOpsBaseOperator, task_boundary

REFERENCE_ARTIFACT = names.REFERENCE_ARTIFACT  # re-exported for older imports


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


class _ModelLogging(MLOpsBaseOperator):
    """Logging a fitted pipeline as a verified model package, shared by training and refit."""

    def log_model(self, run_id: str, model, frame, context) -> dict[str, str]:
        """Save ``model`` as a code-model package, record its sha256/flavour/format, upload it; log the
        reference sample of ``frame`` (the future drift reference), lineage and package versions."""
        import json
        import tempfile

        from airflow_mlops.core.model_package import save_model_package
        from airflow_mlops.core.sampling import reservoir_sample
        from airflow_mlops.core.training import package_versions, pip_requirements, prepare_features

        config = self.model_config
        data = config.data
        hook = self.mlflow_hook
        sample = reservoir_sample(frame[[data.timestamp_column, *data.features, data.target]],
                                  config.training.reference_sample_size, seed=config.training.seed)
        hook.log_frame(run_id, sample, names.REFERENCE_ARTIFACT)
        requirements, warnings = pip_requirements(config.training.estimator,
                                                  serialization_format=config.training.serialization_format)
        for warning in warnings:
            self.log.warning("Model requirements: %s", warning)
        with tempfile.TemporaryDirectory(prefix="mlops-save-") as tmp:
            saved = save_model_package(model, f"{tmp}/{names.MODEL_ARTIFACT}",
                                       example=prepare_features(frame.head(100), config),
                                       pip_requirements=requirements,
                                       serialization_format=config.training.serialization_format)
            with hook.session() as client:
                client.log_artifacts(run_id, saved.path, names.MODEL_ARTIFACT)
        tags = {names.MODEL_ARTIFACT_PATH: names.MODEL_ARTIFACT, names.MODEL_SHA256: saved.sha256,
                names.MODEL_FLAVOR: saved.flavor, names.MODEL_FORMAT: saved.format,
                names.DATA_FINGERPRINT: self.data["fingerprint"], names.DATA_RUN_ID: self.data["run_id"],
                names.VALIDATION_RUN_ID: self.data.get("validation_run_id", ""),
                names.REFERENCE_ARTIFACT_TAG: names.REFERENCE_ARTIFACT,
                names.PACKAGE_VERSIONS: json.dumps(package_versions(), sort_keys=True)}
        with hook.session() as client:
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
            if warnings:
                client.set_tag(run_id, "mlops.requirements_warnings", " | ".join(warnings)[:4900])
        hook.log_json(run_id, config.model_dump(mode="json"), names.CONFIG_ARTIFACT)
        return tags

    def cached_model(self, run_id: str) -> tuple[dict, dict] | None:
        """(tags, metrics) of an earlier try of this task that logged a model for the same data."""
        with self.mlflow_hook.session() as client:
            recorded = client.get_run(run_id).data
        tags = recorded.tags
        if names.MODEL_SHA256 not in tags or tags.get(names.DATA_FINGERPRINT) != self.data["fingerprint"]:
            return None
        return tags, dict(recorded.metrics)


class TrainModelOperator(_ModelLogging):
    """Train on the window before the holdout, evaluate on the holdout, log the model to MLflow.

    Logged: estimator parameters and seed, holdout metrics, the model (a code-model package whose ``predict``
    returns the positive-class probability; sha256, flavour and format recorded as tags), the data fingerprint,
    config hash, code and package versions, and a bounded reservoir sample of the training data (the future
    drift reference). A retry of the same task reuses its MLflow run, and the logged model when the data is
    unchanged.

    :param data: the snapshot pointer from the extract or validate task.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "data")
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#fdf2d0"

    def __init__(self, *, data: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow_mlops.core.data_checks import check_training_frame
        from airflow_mlops.core.stats import compute_metrics
        from airflow_mlops.core.training import fit_model, score

        config = self.model_config
        data = config.data
        hook = self.mlflow_hook
        with self.tracked_run(context, run_name=f"train {config.model}") as (run, _):
            run_id = run.info.run_id
            self.persist_links(context, run=run_url(self.ui_url, run.info.experiment_id, run_id))
            cached = self.cached_model(run_id)
            if cached is not None:
                self.log.info("Model already logged in run %s for this data; not training again", run_id)
                metrics = {k.removeprefix("holdout_"): v for k, v in cached[1].items() if k.startswith("holdout_")}
                result = self._result(run_id, metrics)
                self.finish_run(run_id, result)
                return result

            frame = hook.load_frame(self.data["run_id"], self.data["artifact"])
            train, holdout = split_window(frame, self.data, data.timestamp_column)
            check_training_frame(train, data, what="training window")
            check_holdout(holdout, config)

            model = fit_model(train, config)
            metrics = compute_metrics(holdout[data.target].to_numpy(), score(model, holdout, config))
            params = {"estimator": config.training.estimator, "seed": config.training.seed,
                      "train_rows": len(train), "holdout_rows": len(holdout),
                      **{f"window.{k}": v for k, v in self.data["windows"].items()},
                      **{f"param.{k}": v for k, v in config.training.params.items()}}
            with hook.session() as client:
                for key, value in params.items():
                    client.log_param(run_id, key, value)
                for name, value in metrics.items():
                    client.log_metric(run_id, f"holdout_{name}", value)
            self.log_model(run_id, model, train, context)
            result = self._result(run_id, metrics)
            self.finish_run(run_id, result)
        return result

    def _result(self, run_id: str, metrics: dict) -> dict[str, Any]:
        return {"run_id": run_id, "model_uri": f"runs:/{run_id}/{names.MODEL_ARTIFACT}", "metrics": metrics,
                "data": self.data}


def refit_wanted(mode: str, *, verdict: str, decision: str, drift_triggered: bool) -> tuple[bool, str]:
    """Whether to refit on train + holdout after the gate, and why (pure, for the log and the tests)."""
    if verdict != "PASS" or decision != "promote":
        return False, f"no refit: the gate said {verdict} / {decision} (a refit follows a PASS only)"
    if mode == "never":
        return False, "no refit: training.refit is 'never'"
    if mode == "always":
        return True, "refit on train + holdout (training.refit: always)"
    if drift_triggered:
        return True, ("refit on train + holdout: this retrain was triggered by drift, and the holdout is the "
                      "drifted window")
    return False, "no refit: training.refit is 'auto' and this run was not triggered by drift"


class RefitModelOperator(_ModelLogging):
    """After the gate passed a challenger, fit the same estimator on train + holdout and log that model.

    Why: the holdout is the most recent data. For a drift-triggered retrain it *is* the drifted window, so a model
    trained without it has not learned the drift it was retrained for. The gate's verdict stays the evidence: it
    judged the same configuration out of time; the refit run records the evaluated run, its verdict and holdout
    metrics, and its reference sample covers train + holdout (the next drift check compares against the data the
    model learned from). ``training.refit``: ``auto`` (drift-triggered runs), ``always`` or ``never``. Without
    a refit the gate's result passes through unchanged.

    :param gate: the result of the evaluation gate task.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "gate")
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#fdf2d0"

    def __init__(self, *, gate: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate

    @property
    def data(self) -> dict:
        return self.gate["data"]

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow_mlops.core.training import fit_model
        from airflow_mlops.task_context import is_drift_triggered

        config = self.model_config
        wanted, why = refit_wanted(config.training.refit, verdict=self.gate["verdict"],
                                   decision=self.gate["decision"],
                                   drift_triggered=is_drift_triggered(context, config.model))
        self.log.info("%s", why)
        if not wanted:
            return dict(self.gate, refit=False, refit_reason=why)
        hook = self.mlflow_hook
        evaluated = self.gate["challenger_run_id"]
        with self.tracked_run(context, run_name=f"refit {config.model}") as (run, _):
            run_id = run.info.run_id
            self.persist_links(context, run=run_url(self.ui_url, run.info.experiment_id, run_id))
            if self.cached_model(run_id) is None:
                frame = hook.load_frame(self.data["run_id"], self.data["artifact"])
                model = fit_model(frame, config)
                with hook.session() as client:
                    evaluated_run = client.get_run(evaluated)
                    for key, value in evaluated_run.data.params.items():
                        if key not in ("train_rows", "holdout_rows"):
                            client.log_param(run_id, key, value)
                    client.log_param(run_id, "train_rows", len(frame))
                    # The out-of-time evidence is the evaluated model's: same configuration, judged on the holdout.
                    for name, value in evaluated_run.data.metrics.items():
                        client.log_metric(run_id, name, value)
                    client.set_tag(run_id, names.REFIT, "true")
                    client.set_tag(run_id, names.REFIT_OF, evaluated)
                    client.set_tag(run_id, names.GATE_VERDICT, self.gate["verdict"])
                    client.set_tag(evaluated, "mlops.refit_run_id", run_id)
                self.log_model(run_id, model, frame, context)
            result = dict(self.gate, refit=True, refit_reason=why, model_run_id=run_id,
                          model_uri=f"runs:/{run_id}/{names.MODEL_ARTIFACT}")
            self.finish_run(run_id, {k: v for k, v in result.items() if k != "data"})
        return result
