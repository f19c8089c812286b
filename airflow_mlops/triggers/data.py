"""DataWindowTrigger: fires when a data source holds rows up to a point in time (a window is complete).

A :class:`~airflow_mlops.triggers.sql.SqlPollTrigger` on the newest readable timestamp of a table or query.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.triggers.sql import SqlPollTrigger


class DataWindowTrigger(SqlPollTrigger):
    """Poll the newest timestamp of a table or query until it reaches ``complete_at``.

    :param data_conn_id: sqlite or postgres connection (an id, never credentials).
    :param timestamp_column: column holding each row's time.
    :param complete_at: ISO time (naive = UTC) the newest row must reach.
    :param table: or ``query``: the source, as in the model config.
    :param poll_interval: seconds between polls.
    :param timestamp_format: how the source stores times (``iso``, ``epoch_seconds``, ``epoch_milliseconds``).
    """

    def __init__(self, *, data_conn_id: str, timestamp_column: str, complete_at: str, table: str | None = None,
                 query: str | None = None, poll_interval: float = 60.0, timestamp_format: str = "iso") -> None:
        super().__init__(data_conn_id=data_conn_id, sql="", threshold=complete_at, kind="time",
                         poll_interval=poll_interval, what=f"the newest row of {table or 'the query'}")
        self.timestamp_column = timestamp_column
        self.complete_at = complete_at
        self.table = table
        self.query = query
        self.timestamp_format = timestamp_format

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"data_conn_id": self.data_conn_id, "timestamp_column": self.timestamp_column,
                 "complete_at": self.complete_at, "table": self.table, "query": self.query,
                 "poll_interval": self.poll_interval, "timestamp_format": self.timestamp_format})

    def poll(self):
        from airflow_mlops.hooks.data import SqlDataHook

        return SqlDataHook(data_conn_id=self.data_conn_id).latest_timestamp(
            timestamp_column=self.timestamp_column, table=self.table, query=self.query,
            timestamp_format=self.timestamp_format)
