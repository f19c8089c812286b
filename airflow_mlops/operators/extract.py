"""ExtractTrainingDataOperator: snapshot the training + holdout window of a model's data into MLflow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_mlops.core import names
from airflow_mlops.links.mlflow import MLflowReportLink, MLflowRunLink, artifact_url, run_url
from airflow_mlops.operators.base import MLOpsBaseOperator, task_boundary
from airflow_mlops.task_context import resolve_window_end

# re-exported: older code imported them from here
DATA_ARTIFACT = names.DATA_ARTIFACT
__all__ = ["DATA_ARTIFACT", "ExtractTrainingDataOperator", "resolve_window_end"]


class ExtractTrainingDataOperator(MLOpsBaseOperator):
    """Read ``[end - holdout_window - train_window, end)`` from the data connection and store it.

    The snapshot is a Parquet artifact of this task's MLflow run, so every later step (and anyone
    reproducing the run) reads exactly the same rows. The run records the source, the window, the row count,
    the schema and a content fingerprint.

    Rows the pack cannot read are never dropped silently: rows whose timestamp cannot be parsed (they belong to
    no window) and rows with values that are not numbers in numeric columns (text such as ``'n/a'``, ``inf``)
    are counted per column in ``data/read_report.json``; under ``validation.policy: quarantine`` they go to the
    quarantine table and the run goes on, otherwise the task fails (without retrying) naming them.

    :param window_end: end of the window (templated); defaults to the run's data interval end.
    :param data_conn_id: overrides ``data.conn_id`` of the config.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "window_end", "data_conn_id")
    operator_extra_links = (MLflowRunLink(), MLflowReportLink())

    def __init__(self, *, window_end: str | datetime | None = None, data_conn_id: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_end = window_end
        self.data_conn_id = data_conn_id

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        import json

        import pandas as pd

        from airflow_mlops.core.coercion import REASON_COLUMN, coerce_to_config
        from airflow_mlops.core.data_checks import DataProblem
        from airflow_mlops.core.fingerprint import dataframe_fingerprint, schema_of
        from airflow_mlops.core.windows import training_windows
        from airflow_mlops.hooks.data import SqlDataHook

        config = self.model_config
        data = config.data
        windows = training_windows(resolve_window_end(self.window_end, context, config.model), data.train_window,
                                   data.holdout_window)
        conn_id = self.data_conn_id or data.conn_id
        hook = SqlDataHook(data_conn_id=conn_id)
        columns = data.window_columns
        read = hook.read_window_report(
            columns=columns, timestamp_column=data.timestamp_column, start=windows.train_start, end=windows.end,
            table=data.table, query=data.query, order_by=[data.entity_id], timestamp_format=data.timestamp_format)
        coerced = coerce_to_config(read.frame, data)
        source = data.table or "query"
        report = self._read_report(read, coerced, source, windows)
        rejected = coerced.rejected
        if read.unreadable_count:
            unreadable = read.unreadable.assign(**{REASON_COLUMN: f"{data.timestamp_column} cannot be read as a "
                                                                  f"timestamp ({data.timestamp_format})"})
            rejected = pd.concat([unreadable, rejected.astype(object)], ignore_index=True)
        frame = coerced.frame
        with self.tracked_run(context) as (run, _):
            run_id = run.info.run_id
            hook_mlflow = self.mlflow_hook
            self.persist_links(context, run=run_url(self.ui_url, run.info.experiment_id, run_id),
                               report=artifact_url(self.ui_url, run_id, names.EXTRACT_REPORT))
            hook_mlflow.log_json(run_id, report, names.EXTRACT_REPORT)
            if len(rejected):
                if config.validation.policy != "quarantine":
                    self.finish_run(run_id, {"rejected": int(len(rejected))}, status="FAILED")
                    raise DataProblem(report["problems"] + [
                        f"{len(rejected)} row(s) cannot be used; nothing was dropped: fix the source, or set "
                        "validation.policy: quarantine to set them aside (report: "
                        f"{names.EXTRACT_REPORT} in MLflow run {run_id})"])
                from airflow_mlops.quarantine import quarantine_rows

                written = quarantine_rows(hook.database, config.quarantine_table, rejected,
                                          key=self.task_key(context))
                self.log.warning("Quarantined %d unreadable row(s) into %s: %s", written, config.quarantine_table,
                                 "; ".join(report["problems"]))
            if frame.empty:
                self.finish_run(run_id, {"rows": 0}, status="FAILED")
                raise DataProblem([f"no rows in {source} for [{windows.train_start}, {windows.end}) "
                                   f"(connection {conn_id!r}): the window is empty"])
            fingerprint = dataframe_fingerprint(frame)
            self.log.info("Extracted %d rows from %s, fingerprint %s", len(frame), source, fingerprint[:12])
            hook_mlflow.log_frame(run_id, frame, names.DATA_ARTIFACT)
            with hook_mlflow.session() as client:
                client.log_param(run_id, "source", data.table or data.query)
                client.log_param(run_id, "conn_id", conn_id)
                for key, value in windows.to_dict().items():
                    client.log_param(run_id, f"window.{key}", value)
                client.set_tag(run_id, names.DATA_FINGERPRINT, fingerprint)
                client.set_tag(run_id, names.ROWS, str(len(frame)))
                client.set_tag(run_id, names.SCHEMA, json.dumps(schema_of(frame)))
            result = {"run_id": run_id, "artifact": names.DATA_ARTIFACT, "fingerprint": fingerprint,
                      "rows": int(len(frame)), "windows": windows.to_dict(), "source": source,
                      "rejected": int(len(rejected)), "conn_id": conn_id}
            self.finish_run(run_id, result)
        return result

    @staticmethod
    def _read_report(read, coerced, source: str, windows) -> dict[str, Any]:
        problems = list(coerced.problems)
        if read.unreadable_count:
            examples = read.unreadable.iloc[:3].to_dict("records")
            problems.insert(0, f"{read.unreadable_count} row(s) of {source} have a timestamp that cannot be read "
                               f"(null or not a recognised format; e.g. {examples}): they belong to no window")
        return {"source": source, "window": windows.to_dict(), "rows_in_window": int(len(read.frame)),
                "rows_used": int(len(coerced.frame)), "unreadable_timestamps": int(read.unreadable_count),
                "bad_values": coerced.counts, "rejected_rows": int(len(coerced.rejected)) + read.unreadable_count,
                "problems": problems}
