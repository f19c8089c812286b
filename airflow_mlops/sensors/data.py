"""DataWindowSensor: wait until a model's data source holds the whole window a task is about to read."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator

from airflow_mlops.task_boundary import task_boundary
from airflow_mlops.task_context import ModelConfigMixin, resolve_window_end


class DataWindowSensor(ModelConfigMixin, BaseSensorOperator):
    """Succeed once the newest row of the model's data is at least ``window_end - lag``.

    A daily check at midnight should not compare a window whose last hours have not been loaded yet. The window
    counts as complete when the source has a row no older than ``lag`` before the window's end (rows arrive in
    batches; ``lag`` is the batch granularity). With ``deferrable=True`` the wait happens in the triggerer
    (:class:`~airflow_mlops.triggers.data.DataWindowTrigger`) and holds no worker slot.

    :param config: the model config (path or mapping, templated).
    :param window_end: end of the window (templated); defaults to the run's data interval end.
    :param lag: how old the newest row may be at the window's end (default 1 hour).
    :param data_conn_id: overrides ``data.conn_id``.
    """

    template_fields = ("config", "window_end", "data_conn_id")
    ui_color = "#fff3e0"

    def __init__(self, *, config: str | dict, window_end: str | datetime | None = None,
                 lag: timedelta = timedelta(hours=1), data_conn_id: str | None = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.window_end = window_end
        self.lag = lag
        self.data_conn_id = data_conn_id
        self.deferrable = deferrable

    @property
    def conn_id(self) -> str:
        return self.data_conn_id or self.model_config.data.conn_id

    def complete_at(self, context) -> datetime:
        """The time the newest row must reach, as naive UTC (how the data hook returns timestamps)."""
        from airflow_mlops.hooks.dialects import naive_utc

        return naive_utc(resolve_window_end(self.window_end, context, self.model_config.model) - self.lag)

    @task_boundary
    def poke(self, context) -> bool:
        from airflow_mlops.hooks.data import SqlDataHook

        data = self.model_config.data
        latest = SqlDataHook(data_conn_id=self.conn_id).latest_timestamp(
            timestamp_column=data.timestamp_column, table=data.table, query=data.query,
            timestamp_format=data.timestamp_format)
        target = self.complete_at(context)
        self.log.info("Newest row %s; the window is complete at %s", latest, target)
        return latest is not None and latest >= target

    @task_boundary
    def execute(self, context) -> None:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):  # check once before deferring: no trigger when the data is already there
            return None
        self.defer(trigger=self._trigger(context), method_name="execute_complete",
                   timeout=timedelta(seconds=self.timeout))
        return None

    def _trigger(self, context):
        from airflow_mlops.triggers.data import DataWindowTrigger

        data = self.model_config.data
        return DataWindowTrigger(data_conn_id=self.conn_id, timestamp_column=data.timestamp_column,
                                 complete_at=self.complete_at(context).isoformat(), table=data.table,
                                 query=data.query, poll_interval=self.poke_interval,
                                 timestamp_format=data.timestamp_format)

    @task_boundary
    def execute_complete(self, context, event: dict[str, Any] | None = None) -> None:
        from airflow.sdk.exceptions import AirflowException

        if not event or event.get("status") != "success":
            raise AirflowException(f"waiting for data failed: {(event or {}).get('message', 'no event')}")
        self.log.info("%s", event["message"])
