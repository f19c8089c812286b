"""DataWindowTrigger: fires when a data source holds rows up to a point in time (a window is complete)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DataWindowTrigger(BaseTrigger):
    """Poll the newest timestamp of a table or query until it reaches ``complete_at``.

    :param data_conn_id: sqlite or postgres connection (an id, never credentials).
    :param timestamp_column: column holding each row's time.
    :param complete_at: ISO time (naive = UTC) the newest row must reach.
    :param table: or ``query``: the source, as in the model config.
    :param poll_interval: seconds between polls.
    """

    def __init__(self, *, data_conn_id: str, timestamp_column: str, complete_at: str, table: str | None = None,
                 query: str | None = None, poll_interval: float = 60.0) -> None:
        super().__init__()
        self.data_conn_id = data_conn_id
        self.timestamp_column = timestamp_column
        self.complete_at = complete_at
        self.table = table
        self.query = query
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"data_conn_id": self.data_conn_id, "timestamp_column": self.timestamp_column,
                 "complete_at": self.complete_at, "table": self.table, "query": self.query,
                 "poll_interval": self.poll_interval})

    def _latest(self) -> datetime | None:
        from airflow_mlops.hooks.data import SqlDataHook

        return SqlDataHook(data_conn_id=self.data_conn_id).latest_timestamp(
            timestamp_column=self.timestamp_column, table=self.table, query=self.query)

    async def run(self):
        from asgiref.sync import sync_to_async

        target = datetime.fromisoformat(self.complete_at).replace(tzinfo=None)
        source = self.table or "query"
        try:
            while True:
                # The database drivers block: run them in a thread, never on the triggerer's event loop.
                latest = await sync_to_async(self._latest)()
                if latest is not None and latest >= target:
                    yield TriggerEvent({"status": "success", "latest": latest.isoformat(),
                                        "message": f"{source} has rows up to {latest.isoformat()}"})
                    return
                self.log.info("%s: newest row %s, waiting for %s", source, latest, target)
                await asyncio.sleep(self.poll_interval)
        except Exception as error:  # reported to the task, which fails with this message
            yield TriggerEvent({"status": "error", "message": f"{type(error).__name__}: {error}"})
