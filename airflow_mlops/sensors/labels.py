"""CanaryLabelSensor: before a canary look, wait (deferred) until the step has enough matured labels.

Labels arrive late (``canary.label_delay``). The sensor counts the step's entities that have both arms' scores, were
scored at least ``label_delay`` before the look's data time, and have a label; it succeeds once there are
``canary.min_labels_per_step`` of them, or when ``canary.wait_for_labels`` has passed: then the look analyses what
there is and holds, saying how many labels are missing. It polls through the shared
:class:`~airflow_mlops.triggers.sql.SqlPollTrigger` and holds no worker slot while it waits.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator

from airflow_mlops.task_boundary import task_boundary
from airflow_mlops.task_context import ModelConfigMixin, resolve_window_end


class CanaryLabelSensor(ModelConfigMixin, BaseSensorOperator):
    """:param config: the model config. :param window_end: the look's data time (templated; default: the run's
    data interval end)."""

    template_fields = ("config", "window_end")
    ui_color = "#fff3e0"

    def __init__(self, *, config: str | dict, window_end: Any = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.window_end = window_end
        self.deferrable = deferrable

    def _count_sql(self, context) -> tuple[str, list] | None:
        from airflow_mlops.deployment import state_store
        from airflow_mlops.hooks.canary import LabelSource, matured_label_count_sql
        from airflow_mlops.hooks.data import SqlDataHook

        config = self.model_config
        state = state_store(config)
        row = state.get(config.model)
        if row is None or not row.canary_active:
            return None
        labels = LabelSource.of(config, SqlDataHook(data_conn_id=config.data.conn_id).database)
        end = resolve_window_end(self.window_end, context, config.model)
        return matured_label_count_sql(state, labels, config.model, row.canary_id, row.step,
                                       end - config.canary.label_delay)

    def _enough(self, query: tuple[str, list] | None) -> bool:
        from airflow_mlops.hooks.data import SqlDataHook

        if query is None:
            self.log.info("No canary running, or labels in another database: nothing to wait for")
            return True
        count = int(SqlDataHook(data_conn_id=self.model_config.state_conn).read_sql(*query).iloc[0, 0])
        self.log.info("%d matured labels; %d needed", count, self.model_config.canary.min_labels_per_step)
        return count >= self.model_config.canary.min_labels_per_step

    @task_boundary
    def poke(self, context) -> bool:
        return self._enough(self._count_sql(context))

    @task_boundary
    def execute(self, context) -> None:
        from airflow_mlops.triggers.sql import SqlPollTrigger

        if not self.deferrable:
            return super().execute(context)
        query = self._count_sql(context)
        if self._enough(query):
            return None
        config = self.model_config
        wait = config.canary.wait_for_labels
        sql, params = query
        deadline = (datetime.now(timezone.utc) + wait).isoformat()
        self.defer(trigger=SqlPollTrigger(data_conn_id=config.state_conn, sql=sql, params=params,
                                          threshold=config.canary.min_labels_per_step, deadline=deadline,
                                          poll_interval=max(1.0, min(300.0, wait.total_seconds() / 20)),
                                          what="matured labels"),
                   method_name="execute_complete", timeout=wait + timedelta(minutes=5))
        return None

    @task_boundary
    def execute_complete(self, context, event: dict[str, Any] | None = None) -> None:
        from airflow.sdk.exceptions import AirflowException

        if not event or event.get("status") not in ("success", "timeout"):
            raise AirflowException(f"waiting for labels failed: {(event or {}).get('message', 'no event')}")
        self.log.info("%s", event["message"])
