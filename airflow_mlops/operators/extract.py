"""ExtractTrainingDataOperator: snapshot the training + holdout window of a model's data into MLflow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_mlops.links.mlflow import MLflowRunLink, run_url
from airflow_mlops.operators.base import MLOpsBaseOperator

DATA_ARTIFACT = "data/window.parquet"


def resolve_window_end(value: Any, context, model: str | None = None) -> datetime:
    """The end of the data window: an explicit value, else the run's data interval end (or logical date);
    a run triggered by a drift event has neither and uses the end of the window the drift was found in;
    else the run's ``run_after``."""
    if value:
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    for candidate in (context.get("data_interval_end"), context.get("logical_date")):
        if candidate is not None:
            return candidate
    if model is not None:
        from airflow_mlops.assets import triggering_drift_events

        ends = [event["extra"].get("window_end") for event in triggering_drift_events(context, model)]
        if any(ends):
            return max(datetime.fromisoformat(end) for end in ends if end)
    return context["dag_run"].run_after


class ExtractTrainingDataOperator(MLOpsBaseOperator):
    """Read ``[end - holdout_window - train_window, end)`` from the data connection and store it.

    The snapshot is a Parquet artifact of this task's MLflow run, so every later step (and anyone
    reproducing the run) reads exactly the same rows. The run records the source, the window, the row count,
    the schema and a content fingerprint.

    :param window_end: end of the window (templated); defaults to the run's data interval end.
    :param data_conn_id: overrides ``data.conn_id`` of the config.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "window_end", "data_conn_id")
    operator_extra_links = (MLflowRunLink(),)

    def __init__(self, *, window_end: str | datetime | None = None, data_conn_id: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_end = window_end
        self.data_conn_id = data_conn_id

    def execute(self, context) -> dict[str, Any]:
        import json

        from airflow_mlops.core.data_checks import DataProblem
        from airflow_mlops.core.fingerprint import dataframe_fingerprint, schema_of
        from airflow_mlops.core.windows import training_windows
        from airflow_mlops.hooks.data import SqlDataHook
        from airflow_mlops.hooks.mlflow import log_frame

        config = self.model_config
        data = config.data
        windows = training_windows(resolve_window_end(self.window_end, context, config.model), data.train_window,
                                   data.holdout_window)
        conn_id = self.data_conn_id or data.conn_id
        columns = list(dict.fromkeys([data.entity_id, data.timestamp_column, *data.features, data.target]))
        frame = SqlDataHook(data_conn_id=conn_id).read_window(
            columns=columns, timestamp_column=data.timestamp_column, start=windows.train_start,
            end=windows.end, table=data.table, query=data.query, order_by=[data.entity_id])
        source = data.table or "query"
        if frame.empty:
            raise DataProblem([f"no rows in {source} for [{windows.train_start}, {windows.end}) "
                               f"(connection {conn_id!r}): the window is empty"])
        fingerprint = dataframe_fingerprint(frame)
        self.log.info("Extracted %d rows from %s, fingerprint %s", len(frame), source, fingerprint[:12])
        with self.mlflow_hook.session() as client, self.tracked_run(client, context) as (run, _):
            run_id = run.info.run_id
            self.persist_links(context, run=run_url(self.ui_url, run.info.experiment_id, run_id))
            log_frame(client, run_id, frame, DATA_ARTIFACT)
            client.log_param(run_id, "source", data.table or data.query)
            client.log_param(run_id, "conn_id", conn_id)
            for key, value in windows.to_dict().items():
                client.log_param(run_id, f"window.{key}", value)
            client.set_tag(run_id, "mlops.data_fingerprint", fingerprint)
            client.set_tag(run_id, "mlops.rows", str(len(frame)))
            client.set_tag(run_id, "mlops.schema", json.dumps(schema_of(frame)))
            result = {"run_id": run_id, "artifact": DATA_ARTIFACT, "fingerprint": fingerprint,
                      "rows": int(len(frame)), "windows": windows.to_dict(), "source": source}
            self.finish_run(client, run_id, result)
        return result
