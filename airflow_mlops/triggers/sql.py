"""SqlPollTrigger: poll one scalar SQL value until it reaches a threshold (the shared trigger of the pack's sensors).

The data-window sensor polls the newest readable timestamp of a source until the window is complete; the canary's
label sensor polls the number of matured labels until a look has enough. Both are "wait until this number (or
time) is big enough", so they share this trigger. The database drivers block: every poll runs in a thread, never on
the triggerer's event loop. The trigger holds connection ids and SQL, never credentials.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class SqlPollTrigger(BaseTrigger):
    """:param data_conn_id: sqlite or postgres connection. :param sql: a SELECT of one value (written with the
    dialect's ``PARAM`` tokens). :param params: its bound values (JSON primitives). :param threshold: fire when the
    value is ``>=`` this (a number, or an ISO time when ``kind`` is ``time``). :param deadline: ISO UTC time after
    which the trigger fires with ``status: timeout`` (None = wait forever). :param what: names the value in
    messages."""

    def __init__(self, *, data_conn_id: str, sql: str, threshold: float | str, params: list | None = None,
                 kind: str = "number", poll_interval: float = 60.0, deadline: str | None = None,
                 what: str = "value") -> None:
        super().__init__()
        self.data_conn_id = data_conn_id
        self.sql = sql
        self.params = list(params or [])
        self.threshold = threshold
        self.kind = kind
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.what = what

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"data_conn_id": self.data_conn_id, "sql": self.sql, "threshold": self.threshold,
                 "params": self.params, "kind": self.kind, "poll_interval": self.poll_interval,
                 "deadline": self.deadline, "what": self.what})

    def _convert(self, value):
        if value is None:
            return None
        if self.kind == "time":
            import pandas as pd

            from airflow_mlops.hooks.database import to_naive_utc

            return to_naive_utc(pd.Series([value])).iloc[0].to_pydatetime()
        return float(value)

    def _target(self):
        if self.kind == "time":
            return datetime.fromisoformat(str(self.threshold)).replace(tzinfo=None)
        return float(self.threshold)

    def poll(self):
        """The current value (blocking: call it in a thread)."""
        import pandas as pd

        from airflow_mlops.hooks.data import SqlDataHook

        frame = SqlDataHook(data_conn_id=self.data_conn_id).read_sql(self.sql, self.params)
        value = frame.iloc[0, 0] if len(frame) and len(frame.columns) else None
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return None
        return self._convert(value)

    async def run(self):
        from asgiref.sync import sync_to_async

        target = self._target()
        deadline = datetime.fromisoformat(self.deadline) if self.deadline else None
        try:
            while True:
                value = await sync_to_async(self.poll)()
                shown = value.isoformat() if hasattr(value, "isoformat") else value
                if value is not None and value >= target:
                    yield TriggerEvent({"status": "success", "value": shown,
                                        "message": f"{self.what} reached {shown} (needed {self.threshold})"})
                    return
                if deadline is not None and datetime.now(timezone.utc) >= deadline:
                    yield TriggerEvent({"status": "timeout", "value": shown,
                                        "message": f"{self.what} is {shown} at the deadline (needed {self.threshold})"})
                    return
                self.log.info("%s is %s, waiting for %s", self.what, shown, self.threshold)
                await asyncio.sleep(self.poll_interval)
        except Exception as error:  # reported to the task, which fails with this message
            yield TriggerEvent({"status": "error", "message": f"{type(error).__name__}: {error}"})
