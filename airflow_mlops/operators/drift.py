"""Drift monitoring: check the latest window against the champion's reference, then maybe emit a drift event.

``DriftCheckOperator`` computes and stores the report; ``EmitDriftEventOperator`` turns a confirmed drift into
an event on the model's drift Asset (``mlops://<model>/drift``), which schedules the continuous-training DAG,
unless the cooldown or de-duplication holds it back. Keeping the two apart lets a team use the check alone
(alerting, dashboards) or put their own logic between check and trigger.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_mlops.assets import drift_asset
from airflow_mlops.core import names
from airflow_mlops.core.errors import MLOpsError
from airflow_mlops.links.mlflow import MLflowReportLink, MLflowRunLink, artifact_url, run_url
from airflow_mlops.operators.base import MLOpsBaseOperator, task_boundary
from airflow_mlops.task_context import resolve_window_end

DRIFT_JSON, DRIFT_HTML = names.DRIFT_JSON, names.DRIFT_HTML
# The history table (for the UI); times are ISO-8601 text in UTC, which sorts in time order in both dialects.
DRIFT_REPORT_COLUMNS = {
    "check_key": "TEXT", "model": "TEXT", "dag_id": "TEXT", "dag_run_id": "TEXT", "window_start": "TEXT",
    "window_end": "TEXT", "status": "TEXT", "dataset_drift": "INTEGER", "performance_drift": "INTEGER",
    "share": "DOUBLE PRECISION", "drifted_features": "TEXT", "champion_version": "TEXT", "mlflow_run_id": "TEXT",
    "report_uri": "TEXT", "created_at": "TEXT",
}


class NoReferenceError(MLOpsError):
    """There is nothing to compare with: no champion yet and no reference query."""


class DriftCheckOperator(MLOpsBaseOperator):
    """Compare the latest ``drift.window`` of data with the reference and store the drift report.

    Reference: the champion's training sample (stored with its MLflow training run), or ``reference_query``.
    The report (JSON and a self-contained HTML page with per-feature charts) is stored in this task's MLflow
    run and a summary row goes to the ``drift_reports`` table of the state connection (the history the UI
    shows). With a champion, also the drift of its score distribution and, on labelled rows, its performance
    against its holdout metric. Without a champion or reference the task is skipped.

    :param window_end: end of the window (templated); defaults to the run's data interval end.
    :param data_conn_id: overrides ``data.conn_id``; ``state_conn_id`` overrides the config's state connection.
    :param reference_query: SQL for the reference rows (templated); defaults to ``drift.reference_query``.
    :return: the report summary with ``window_end``, ``run_id``, ``champion_version`` (small, for XCom).
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "window_end", "data_conn_id", "state_conn_id",
                       "reference_query")
    template_fields_renderers = {**MLOpsBaseOperator.template_fields_renderers, "reference_query": "sql"}
    operator_extra_links = (MLflowRunLink(), MLflowReportLink())
    ui_color = "#f3e5f5"

    def __init__(self, *, window_end: str | datetime | None = None, data_conn_id: str | None = None,
                 state_conn_id: str | None = None, reference_query: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_end = window_end
        self.data_conn_id = data_conn_id
        self.state_conn_id = state_conn_id
        self.reference_query = reference_query

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.core.coercion import numeric_columns
        from airflow_mlops.core.drift import DriftInputError, DriftSettings, detect_drift
        from airflow_mlops.core.errors import ModelIntegrityError
        from airflow_mlops.core.fingerprint import dataframe_fingerprint
        from airflow_mlops.core.reports import drift_report_html
        from airflow_mlops.hooks.data import SqlDataHook
        from airflow_mlops.task_context import actor

        config = self.model_config
        data = config.data
        hook = self.mlflow_hook
        end = resolve_window_end(self.window_end, context, config.model)
        start = end - config.drift.window
        data_hook = SqlDataHook(data_conn_id=self.data_conn_id or data.conn_id)
        columns = list(dict.fromkeys([data.timestamp_column, *data.features, data.target]))
        current = data_hook.read_window(columns=columns, timestamp_column=data.timestamp_column, start=start,
                                        end=end, table=data.table, query=data.query, order_by=[data.entity_id],
                                        timestamp_format=data.timestamp_format)
        champion_version = self.deployments(self.state_conn_id).current(actor=actor(context)).champion
        try:
            reference, reference_source, champion_run = self._reference(data_hook, champion_version)
        except NoReferenceError as error:
            raise AirflowSkipException(str(error)) from None
        settings = DriftSettings.from_config(config.drift)
        # Text where a number belongs ('n/a') is read as missing and reported; infinities stay (a signal).
        current, unreadable = numeric_columns(current, data.numeric)
        reference, unreadable_reference = numeric_columns(reference, data.numeric)
        try:
            report = detect_drift(reference, current, features=data.features, categorical=data.categorical,
                                  settings=settings)
        except DriftInputError as error:
            # The same data gives the same mismatch: fail now (not retryable) instead of retrying.
            raise DriftInputError(f"cannot compare {reference_source} with the window: {error}") from error
        for side, counts in (("window", unreadable), ("reference", unreadable_reference)):
            if counts:
                report.reasons.append(f"{side}: values that are not numbers were read as missing: " + ", ".join(
                    f"{column} {count}" for column, count in counts.items()))
        integrity_error = None
        if champion_run is not None and report.n_current:
            integrity_error = self._model_signals(report, settings, champion_version, champion_run, reference,
                                                  current)
        context_info = {"window": f"[{start.isoformat()}, {end.isoformat()})", "reference": reference_source,
                        "champion version": champion_version or "none",
                        "current fingerprint": dataframe_fingerprint(current)[:16]}
        payload = dict(report.to_dict(), context=context_info)
        with self.tracked_run(context, run_name=f"drift {config.model}") as (run, _):
            run_id = run.info.run_id
            self.persist_links(context, run=run_url(self.ui_url, run.info.experiment_id, run_id),
                               report=artifact_url(self.ui_url, run_id, DRIFT_HTML))
            hook.log_json(run_id, payload, DRIFT_JSON)
            hook.log_text(run_id, drift_report_html(payload, config.model), DRIFT_HTML)
            with hook.session() as client:
                self._log_metrics(client, run_id, report)
                client.log_param(run_id, "window.start", start.isoformat())
                client.log_param(run_id, "window.end", end.isoformat())
                client.log_param(run_id, "reference", reference_source)
                client.set_tag(run_id, names.DRIFT_STATUS, report.status)
                client.set_tag(run_id, names.CHAMPION_VERSION, champion_version or "")
            summary = dict(report.summary(), window_start=start.isoformat(), window_end=end.isoformat(),
                           run_id=run_id, report=DRIFT_JSON, champion_version=champion_version,
                           reference=reference_source, model=config.model)
            self._store_history(context, summary)
            self.finish_run(run_id, summary)
        self.log.info("Drift check %s: %s", report.status, "; ".join(report.reasons))
        if integrity_error is not None:
            # The report is stored; a champion whose artifact fails its check must not go unnoticed.
            raise ModelIntegrityError(f"drift report stored, but {integrity_error}") from None
        return summary

    # --- pieces ---------------------------------------------------------------------------------------------

    def _reference(self, data_hook, champion_version: str | None):
        """(reference frame, where it came from, the champion's training run or None)."""
        config = self.model_config
        hook = self.mlflow_hook
        champion_run = None
        if champion_version is not None:
            version = hook.model_version(config.registered_model_name, champion_version)
            with hook.session() as client:
                champion_run = client.get_run(version.run_id)
        query = self.reference_query or config.drift.reference_query
        if query:
            return data_hook.read_sql(query), "reference_query", champion_run
        if champion_run is None:
            raise NoReferenceError(f"no champion of {config.registered_model_name!r} yet and no "
                                   "drift.reference_query: nothing to compare the window with")
        frame = hook.load_frame(champion_run.info.run_id, names.REFERENCE_ARTIFACT)
        return frame, f"champion v{champion_version} training sample ({len(frame)} rows)", champion_run

    def _model_signals(self, report, settings, champion_version: str, champion_run, reference,
                       current) -> str | None:
        """Prediction drift and, on labelled rows, performance drift of the champion (best effort). Returns the
        message of an integrity failure of the champion's artifact (the caller fails the task), else None."""
        from airflow_mlops.core.drift import performance_drift, score_drift
        from airflow_mlops.core.errors import ModelIntegrityError, is_transient
        from airflow_mlops.core.training import score

        config = self.model_config
        try:
            model = self.mlflow_hook.load_version_model(config.registered_model_name, champion_version,
                                                        allow_pickle=config.training.allow_pickle)
            current_scores = score(model, current, config)
            reference_scores = score(model, reference, config)
        except ModelIntegrityError as error:
            report.reasons.append(f"champion v{champion_version} was NOT loaded: {error}")
            return str(error)
        except Exception as error:  # e.g. the feature set changed since the champion was trained
            if is_transient(error):
                raise
            report.reasons.append(f"champion v{champion_version} cannot score the data ({error}); "
                                  "no prediction or performance drift")
            return None
        report.prediction = score_drift(reference_scores, current_scores, settings)
        metric = config.gate.metric
        holdout_value = champion_run.data.metrics.get(f"holdout_{metric}")
        if holdout_value is not None and config.data.target in current:
            report.performance = performance_drift(
                metric, current[config.data.target].to_numpy(dtype="float64", na_value=float("nan")),
                current_scores, holdout_value, margin=config.drift.performance_margin,
                confidence=config.gate.confidence, min_sample_size=settings.min_sample_size,
                seed=config.training.seed)
            if report.performance_drift:
                report.reasons.append(f"performance drift: {report.performance['reason']}")
        return None

    @staticmethod
    def _log_metrics(client, run_id: str, report) -> None:
        import math
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        values = {"drift_share": report.share, "drifted_features": len(report.drifted_features),
                  "rows_current": report.n_current, "rows_reference": report.n_reference}
        for item in report.features:
            if item.p_value is not None:
                values[f"p_value.{item.feature}"] = item.p_value
                values[f"effect.{item.feature}"] = item.effect_size
        if report.performance and "value" in report.performance:
            values[f"window_{report.performance['metric']}"] = report.performance["value"]
        finite = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
        client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in finite.items()])

    def _store_history(self, context, summary: dict[str, Any]) -> None:
        """One row per check in ``drift.reports_table`` (replaced on retry, so history has no duplicates)."""
        import json

        import pandas as pd

        from airflow_mlops.hooks.data import SqlDataHook

        dag_id, run_id = self.run_identity(context)
        row = {"model": summary["model"], "dag_id": dag_id, "dag_run_id": run_id,
               "window_start": summary["window_start"], "window_end": summary["window_end"],
               "status": summary["status"], "dataset_drift": int(summary["dataset_drift"]),
               "performance_drift": int(summary["performance_drift"]), "share": summary["share"],
               "drifted_features": json.dumps(summary["drifted_features"]),
               "champion_version": summary["champion_version"] or "", "mlflow_run_id": summary["run_id"],
               "report_uri": f"runs:/{summary['run_id']}/{DRIFT_JSON}",
               "created_at": pd.Timestamp.now(tz="UTC").isoformat()}
        hook = SqlDataHook(data_conn_id=self.state_conn_id or self.model_config.state_conn)
        table = self.model_config.drift.reports_table
        hook.ensure_table(table, DRIFT_REPORT_COLUMNS, index=("model", "window_end"))
        hook.replace_rows(pd.DataFrame([row])[[c for c in DRIFT_REPORT_COLUMNS if c != "check_key"]], table,
                          key_column="check_key", key=self.task_key(context))


class EmitDriftEventOperator(MLOpsBaseOperator):
    """Emit an event on the model's drift Asset when the check confirmed drift and the cooldown allows it.

    The Asset is both an outlet (the event) and an inlet (to read the previous event for the cooldown and
    de-duplication). When no event is due the task is *skipped*, and a skipped task emits no asset event. The
    event's extra carries the report summary, so the triggered retraining run knows what caused it.

    :param check: the result of the drift check task (usually ``check.output``).
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "check")
    ui_color = "#ede7f6"

    def __init__(self, *, check: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def preflight(self) -> None:  # reads only the asset events of this Airflow
        return None

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.core.drift_events import should_emit

        config = self.model_config
        if not self.check:
            raise AirflowSkipException("the drift check produced no report")
        asset = drift_asset(config.model)
        last_event = None
        latest = list(context["inlet_events"][asset].ascending(False).limit(1))
        if latest:
            last_event = {"extra": latest[0].extra, "timestamp": latest[0].timestamp}
        decision = should_emit(self.check, self.check["window_end"], config.drift.cooldown, last_event)
        self.log.info("Drift event decision: %s", decision.reason)
        if not decision.emit:
            raise AirflowSkipException(decision.reason)
        dag_id, run_id = self.run_identity(context)
        extra = {key: self.check.get(key) for key in (
            "status", "dataset_drift", "performance_drift", "share", "drifted_features", "window_start",
            "window_end", "champion_version", "model")}
        extra.update(drift_run_id=self.check.get("run_id"), source=f"{dag_id}/{run_id}")
        context["outlet_events"][asset].extra = extra
        return extra
